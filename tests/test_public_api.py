"""Every member's public face: ``__all__`` lists exactly what its ``__init__`` exports."""

from __future__ import annotations

import importlib
import types

import pytest

pytestmark = pytest.mark.integration

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
    for name in module.__all__:
        getattr(module, name)  # NOTE: loads what flotilla.core exports lazily
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


def test_core_imports_its_concerns_on_first_use_and_types_them() -> None:
    """``flotilla.core`` loads Dramatiq's and SQLAlchemy's modules lazily (so the edge and the
    console need neither); every lazy name is also imported for type checkers, from the same
    module."""
    import ast
    from pathlib import Path

    import flotilla.core as core

    source = ast.parse(Path(core.__file__).read_text())
    typed = {
        alias.name: node.module
        for block in source.body
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = {name: module for name, (module, _) in core._LAZY.items()}
    assert typed == lazy
    assert set(lazy) <= set(core.__all__)


MEMBER_PACKAGES = {
    "flotilla-edge": "flotilla.edge",
    "flotilla-orders": "flotilla.orders",
    "flotilla-inventory": "flotilla.inventory",
    "flotilla-notifications": "flotilla.notifications",
    "flotilla-payments": "flotilla.payments",
    "flotilla-console": "flotilla.console",
    "flotilla-cli": "flotilla.cli",
    "flotilla-operator": "flotilla.operator",
}


def _closure(distribution: str) -> set[str]:
    """Every distribution ``distribution`` installs (its extras' requirements followed)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[tuple[str, frozenset[str]]] = set()
    found: set[str] = set()
    todo = [(distribution, frozenset[str]())]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        found.add(canonicalize_name(name))
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in extras or {""}):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    return found


#: run in a fresh interpreter: hide every third-party package outside the allowed list (as if
#: not installed), then import each module of the member
_WALK_WITHOUT = """
import importlib, importlib.abc, json, pkgutil, sys
package_name, hidden = sys.argv[1], set(json.loads(sys.argv[2]))

class NotInstalled(importlib.abc.MetaPathFinder):
    # finds nothing hidden: find_spec is None and import raises, as if it were absent

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            return None
        return self.finder.find_spec(name, path, target)

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()

    def find_distributions(self, *args, **kwargs):  # importlib.metadata asks finders too
        return getattr(self.finder, "find_distributions", lambda *a, **k: [])(*args, **kwargs)

sys.meta_path[:] = [NotInstalled(finder) for finder in sys.meta_path]
package = importlib.import_module(package_name)
for module in pkgutil.walk_packages(package.__path__, package_name + "."):
    importlib.import_module(module.name)
"""


@pytest.mark.parametrize("distribution", sorted(MEMBER_PACKAGES))
def test_a_member_imports_only_what_its_dependencies_install(distribution: str) -> None:
    """Each module of a member imports with every package outside its dependency closure
    hidden, as its image (which installs just that closure) has them: nothing it imports is
    missing there, and no concern's extra is forced on a member that does not name it.
    Optional imports (pydantic's email-validator, PyJWT's cryptography) may fail quietly."""
    import json
    import subprocess
    import sys
    from importlib import metadata

    from packaging.utils import canonicalize_name

    allowed = _closure(distribution)
    hidden = sorted(
        module
        for module, owners in metadata.packages_distributions().items()
        if module != "flotilla"
        and module not in sys.stdlib_module_names
        and not {canonicalize_name(d) for d in owners} & allowed
    )
    package = MEMBER_PACKAGES[distribution]
    done = subprocess.run(
        [sys.executable, "-c", _WALK_WITHOUT, package, json.dumps(hidden)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"{package} without its non-dependencies: {done.stderr[-800:]}"
