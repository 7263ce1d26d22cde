"""A sweep started again in its directory must ask for the same search; a different one is
refused in words that name the options, not the file's internal fields."""
from __future__ import annotations

import pytest

from charrnn.errors import CharrnnError


@pytest.mark.parametrize("key, value, words", [
    ("fixed", {"model": "gru"}, "other --set values"),
    ("space", {"eta": {"kind": "float"}}, "other --param ranges"),
    ("budget_argv", ["--iterations", "99"], "another --iterations or --time-limit"),
])
def test_another_search_in_the_same_directory_is_named_by_its_options(tmp_path, key, value,
                                                                       words):
    from charrnn.plugins.sweep.cli import _settings

    wanted = {"fixed": {"model": "lstm"}, "space": {"eta": {"kind": "float", "log": True}},
              "budget_argv": ["--iterations", "100"], "trials": 4}
    _settings(str(tmp_path), wanted)
    assert _settings(str(tmp_path), {**wanted, "trials": 8})["trials"] == 8
    with pytest.raises(CharrnnError, match=f"was started with {words}; run its own command") \
            as caught:
        _settings(str(tmp_path), {**wanted, key: value})
    assert "differs" not in str(caught.value) and key not in str(caught.value)
