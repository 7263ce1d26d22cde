"""Whether a checkpoint fits the model being built (its names, shapes and state)."""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy

from ..model import shape_options
from .format import Checkpoint
from .messages import Refusal


def validate_against_model(ckpt: Checkpoint, model: Any, batch: Optional[int] = None) -> None:
    """Refuse, in one line, a checkpoint whose parameters do not fit ``model``.

    ``model`` is a built :class:`~charrnn.model.Model` (its parameter names and shapes, what
    :meth:`~charrnn.model.Model.missing_param` fills in, the size of flat optimizer arrays, and
    the state for ``batch`` streams, default the header's ``batch_size``, are checked), or a
    model class: then only the shapes its ``param_shapes`` gives for the checkpoint's vocabulary
    and options are compared, before anything is allocated.
    """
    refuse = Refusal(ckpt.path or "the checkpoint")
    options = ckpt.model_options
    if isinstance(model, type):
        expected = model.param_shapes(len(ckpt.vocab), hidden=int(options.get("hidden", 100)),
                                      layers=int(options.get("layers", 1)),
                                      **shape_options(options))
        missing_ok: Callable[[str], bool] = lambda name: True  # the instance check decides
        name, K = getattr(model, "name", None), len(ckpt.vocab)
    else:
        expected, name, K = model.shapes, model.name, model.K
        missing_ok = lambda n: model.missing_param(n) is not None
    if name is not None and ckpt.model_name != name:
        raise refuse.header(f"it holds a {ckpt.model_name!r} model, not {name!r}")
    if len(ckpt.vocab) != K:
        raise refuse.header(f"its vocabulary has {len(ckpt.vocab)} characters, but the model "
                            f"reads {K}")
    for pname in ckpt.params:
        if pname not in expected:
            raise refuse.header(f"it holds parameter {pname!r}, which the {ckpt.model_name} "
                                "model does not have")
    for pname, shape in expected.items():
        if pname not in ckpt.params:
            if not missing_ok(pname):
                raise refuse.header(f"it lacks parameter {pname!r} of the {ckpt.model_name} "
                                    "model")
        elif tuple(ckpt.params[pname].shape) != tuple(shape):
            raise refuse.array(f"param.{pname}", f"has shape {list(ckpt.params[pname].shape)}, "
                                                 f"but the model's is {list(shape)}")
    if isinstance(model, type):
        return
    for key, value in ckpt.optimizer.items():
        if isinstance(value, numpy.ndarray) and value.shape != (model.size,):
            raise refuse.array(f"optim.{key}", f"has shape {list(value.shape)}, not "
                                               f"[{model.size}] (one entry per parameter)")
    streams = batch if batch is not None else int(ckpt.meta.get("batch_size") or 1)
    zero = model.zero_state(streams)
    if len(ckpt.state) != len(zero):
        raise refuse.header(f"it holds {len(ckpt.state)} state arrays, but the "
                            f"{ckpt.model_name} model has {len(zero)}")
    for i, (saved, fresh) in enumerate(zip(ckpt.state, zero)):
        if tuple(saved.shape) != tuple(fresh.shape):
            raise refuse.array(f"state.{i}", f"has shape {list(saved.shape)}, but the model's "
                                             f"state for {streams} streams is "
                                             f"{list(fresh.shape)}")
