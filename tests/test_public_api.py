"""Every member's public face: ``__all__`` lists exactly what its ``__init__`` exports."""

from __future__ import annotations

import importlib
import types

import pytest

MEMBERS = [
    "core",
    "core.fastapi",
    "edge",
    "orders",
    "inventory",
    "notifications",
    "payments",
    "console",
    "cli",
    "operator",
    "operator.kube",
]


@pytest.mark.parametrize("member", MEMBERS)
def test_all_is_complete_and_importable(member: str) -> None:
    module = importlib.import_module(f"flotilla.{member}")
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert set(module.__all__) == public
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for name in module.__all__:
        assert getattr(module, name) is not None
