"""The array operations a backend provides, against the NumPy reference."""
from __future__ import annotations


import numpy

from .fixtures import CAPABILITIES, ConformanceFixtures, _parametrize


class OperationsConformance(ConformanceFixtures):
    """Every operation of :class:`charrnn.backend.Backend` against the reference."""

    def test_asarray_to_numpy_round_trip(self, impl, dtype, rng):
        """Host data reaches the device and comes back unchanged, in the backend's dtype; a
        transposed view comes back transposed; ``uint8`` ids stay integers."""
        host = rng.standard_normal((3, 4)).astype(dtype)
        dev = self.device(impl, host)
        back = self.host(impl, dev)
        assert back.shape == (3, 4)
        assert back.dtype == numpy.dtype(dtype), f"asarray(dtype={dtype}) gave {back.dtype}"
        numpy.testing.assert_array_equal(back, host, err_msg="asarray -> to_numpy changed values")
        numpy.testing.assert_array_equal(self.host(impl, dev.T), host.T,
                                         err_msg="to_numpy of a transposed view")
        ids = numpy.array([3, 0, 2, 2, 7, 255], dtype=numpy.uint8)
        back_ids = self.host(impl, impl.asarray(ids))
        assert back_ids.dtype.kind in "iu", f"integer ids came back as {back_ids.dtype}"
        numpy.testing.assert_array_equal(back_ids, ids)

    def test_to_float_and_synchronize(self, impl, dtype, tol, rng):
        """``to_float`` gives a Python float, of a device scalar and of a Python float (a resumed
        trainer's smooth loss is one until the next update); ``synchronize`` returns."""
        host = rng.standard_normal(50).astype(dtype)
        dev = self.device(impl, host)
        value = impl.to_float(dev.sum())
        assert type(value) is float, f"to_float returned {type(value).__name__}, not float"
        self.assert_close(value, host.astype(numpy.float64).sum(), tol, "to_float of a sum")
        # A resumed trainer's smooth loss is a Python float until the next update.
        assert impl.to_float(2.5) == 2.5
        impl.synchronize()

    def test_zeros(self, impl, dtype):
        """Zeros of the shape asked (an int or a tuple), in the backend's dtype unless told."""
        for shape, expected in ((7, (7,)), ((2, 3), (2, 3)), ((2, 1, 3), (2, 1, 3))):
            z = self.host(impl, impl.zeros(shape))
            assert z.shape == expected
            assert z.dtype == numpy.dtype(dtype), f"zeros gave {z.dtype} on a {dtype} backend"
            assert not z.any()
        z = self.host(impl, impl.zeros((4,), dtype=dtype))
        assert z.dtype == numpy.dtype(dtype) and not z.any()

    def test_describe_and_capabilities(self, backend_class):
        """``describe()`` is one non-empty line; ``supports()`` answers a bool for every name in
        :data:`CAPABILITIES`."""
        text = backend_class.describe()
        assert isinstance(text, str) and text.strip(), "describe() must return a non-empty line"
        assert "\n" not in text.strip(), "describe() must return one line"
        for capability in CAPABILITIES:
            assert isinstance(backend_class.supports(capability), bool)

    @_parametrize("axis", [-1, 0], ids=["rows", "columns"])
    @_parametrize("logits", ["ordinary", "large"])
    def test_softmax(self, impl, reference, dtype, tol, rng, logits, axis):
        """Along either axis, in place and returned, as the reference computes it. Large logits
        (a row at 1000, a row of equal large logits) overflow a softmax that does not subtract
        the maximum first."""
        K = 12
        O = rng.standard_normal((6, K)) * 3.0
        if logits == "large":
            # exp overflows without the max subtraction, in float32 and float64 alike.
            O += numpy.array([1000.0, -1000.0, 500.0, 0.0, 800.0, -400.0])[:, None]
            O[3, :] = 750.0  # a row of equal large logits
            O[5, 0] = 400.0  # one logit dominating a row
        O = self.round_to(dtype, O)
        if axis == 0:
            O = numpy.ascontiguousarray(O.T)
        what = f"softmax ({logits} logits, axis={axis})"

        def run(be):
            O_dev = self.device(be, O)
            returned = be.softmax(O_dev) if axis == -1 else be.softmax(O_dev, axis=axis)
            return self.host(be, O_dev), self.host(be, returned)

        expected, _ = run(reference)
        in_place, returned = run(impl)
        assert numpy.isfinite(in_place).all(), f"{what} is not finite"
        self.assert_close(in_place, expected, tol, f"{what}, in place")
        self.assert_close(returned, expected, tol, f"{what}, returned")
        self.assert_close(in_place.astype(numpy.float64).sum(axis=axis), numpy.ones(6), tol,
                          f"{what} sums to 1")

    @_parametrize("id_dtype", ["uint8", "int64"])
    def test_segment_sum(self, impl, reference, dtype, tol, rng, id_dtype):
        """Rows summed by id, with repeated and absent ids, from ``uint8`` and ``int64`` ids, into
        a view of a larger array that must not be written outside. The return value is None or
        the sorted distinct ids, since optimizers update only those rows."""
        K, m = 9, self.hidden
        ids = numpy.array([3, 1, 3, 3, 0, K - 1, 1, 3], dtype=id_dtype)  # repeats; 2, 4-7 absent
        values = self.round_to(dtype, rng.standard_normal((ids.size, m)))

        def run(be):
            # ``out`` is a view into a larger flat array, as an embedding's gradient is.
            flat = self.device(be, numpy.full(K * m + 5, 7.0))
            out = flat[2 : 2 + K * m].reshape(K, m)
            returned = be.segment_sum(be.asarray(ids), self.device(be, values), out)
            distinct = None if returned is None else self.host(be, returned)
            return self.host(be, flat), self.host(be, out), distinct

        _, expected, _ = run(reference)
        flat, out, distinct = run(impl)
        self.assert_close(out, expected, tol, "segment_sum: out")
        absent = [k for k in range(K) if k not in set(ids.tolist())]
        assert not out[absent].any(), "segment_sum: rows no id names must be zero"
        numpy.testing.assert_array_equal(flat[:2], [7.0, 7.0],
                                         err_msg="segment_sum wrote outside out")
        numpy.testing.assert_array_equal(flat[-3:], [7.0, 7.0, 7.0],
                                         err_msg="segment_sum wrote outside out")
        if distinct is not None:  # a backend may return the distinct ids, sorted, or None
            numpy.testing.assert_array_equal(distinct, numpy.unique(ids), err_msg=(
                "segment_sum returned something other than None or the sorted distinct ids"))

    def test_clip_(self, impl, reference, dtype, rng):
        """In place, and equal to the reference bit for bit: clipping is exact."""
        host = self.round_to(dtype, rng.standard_normal(60) * 8.0)
        host[:4] = [5.0, -5.0, 5.5, -7.25]
        dev = self.device(impl, host)
        impl.clip_(dev, -5.0, 5.0)
        ref = self.device(reference, host)
        reference.clip_(ref, -5.0, 5.0)
        numpy.testing.assert_array_equal(self.host(impl, dev), self.host(reference, ref),
                                         err_msg="clip_ is exact and in place")

    @_parametrize("scale", [8.0, 0.01])
    @_parametrize("size", [300, 250_007])
    def test_clip_norm_(self, impl, reference, dtype, tol, rng, scale, size):
        """Above the limit the norm is scaled down to it and the norm before scaling is returned;
        within it the array is left exactly as it was. At 300 entries and at a model's size
        (the trainer passes the whole flat gradient, with ``clip_norm * seq_length`` as the
        limit), where a norm summed in float32 without care, or over a part, goes wrong."""
        host = self.round_to(dtype, rng.standard_normal(size) * scale)
        norm = float(numpy.sqrt(numpy.dot(host.astype(numpy.float64), host.astype(numpy.float64))))
        limit = 5.0 * (size / 300) ** 0.5  # above the norm at scale 0.01, below it at 8
        dev = self.device(impl, host)
        returned = float(self.host(impl, impl.clip_norm_(dev, limit)))
        ref = self.device(reference, host)
        reference.clip_norm_(ref, limit)
        self.assert_close(returned, norm, tol, "clip_norm_: the norm before scaling")
        self.assert_close(self.host(impl, dev), self.host(reference, ref), tol, "clip_norm_")
        after = numpy.linalg.norm(self.host(impl, dev).astype(numpy.float64))
        assert after <= limit * (1 + 1e-5), f"clip_norm_ left a norm of {after} > {limit}"
        if norm <= limit:
            numpy.testing.assert_array_equal(self.host(impl, dev), host,
                                             err_msg="clip_norm_ changed a gradient within the limit")

    def test_dropout_mask(self, impl, dtype):
        """Only 0 and ``1 / (1 - p)``, in the backend's dtype, about ``p`` of them 0; the same
        mask from two generators in the same state, so that a resumed run drops the units an
        uninterrupted one would; and a mask that changes from one draw to the next, the
        generator advancing with each, so that every update drops other units."""
        p, shape = 0.25, (64, 4, 32)
        masks = [self.host(impl, impl.dropout_mask(numpy.random.default_rng(5), shape, p))
                 for _ in range(2)]
        mask = masks[0]
        assert mask.shape == shape and mask.dtype == numpy.dtype(dtype), (
            f"dropout_mask gave {mask.shape} {mask.dtype}, expected {shape} {dtype}")
        kept = numpy.dtype(dtype).type(1.0 / (1.0 - p))
        assert numpy.isin(mask, [0.0, kept]).all(), "dropout_mask holds values other than 0 and 1/(1-p)"
        dropped = float((mask == 0).mean())
        assert abs(dropped - p) < 0.03, f"dropout_mask dropped {dropped:.3f} of the units, not ~{p}"
        numpy.testing.assert_array_equal(masks[1], mask, err_msg=(
            "dropout_mask must follow from the generator's state alone (resumed runs repeat it)"))
        rng = numpy.random.default_rng(5)
        before = rng.bit_generator.state["state"]["state"]
        first = self.host(impl, impl.dropout_mask(rng, shape, p)).copy()
        after = rng.bit_generator.state["state"]["state"]
        second = self.host(impl, impl.dropout_mask(rng, shape, p))
        assert after != before, ("dropout_mask did not draw from the generator it was given: "
                                 "a checkpoint of it would not bring the masks back")
        changed = float((first != second).mean())
        assert changed > 0.2, (f"two successive dropout masks differ in {changed:.1%} of the "
                               "units: each update must drop other units")


# -- every registered model ------------------------------------------------------------------
