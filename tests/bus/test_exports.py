"""Every public name of `dkl.bus` resolves, and nothing private leaks into `__all__`."""

from __future__ import annotations

import dkl.bus


def test_all_names_resolve() -> None:
    assert dkl.bus.__all__ == sorted(dkl.bus.__all__, key=lambda n: (not n.isupper(), n))
    for name in dkl.bus.__all__:
        assert not name.startswith("_")
        assert getattr(dkl.bus, name) is not None
