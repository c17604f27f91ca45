"""Every public module's face: ``__all__`` sorted, complete and resolvable; one privacy rule.

The rule: inside a package, an implementation module is ``_x.py``, and the package's public
names are exported from its ``__init__`` (``__all__``). A module inside a package keeps a
public name only when something names it by path rather than importing it (an adapter spec,
a pytest entry point). The top-level modules of ``snakepit`` and ``supertester`` are public.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import types

import pytest

import snakepit
import supertester

# Modules inside a package that keep a public name because something names them by path.
NAMED_BY_PATH = {
    "snakepit.examples.showcase": "adapter spec snakepit.examples.showcase:Showcase",
    "snakepit.testing.adapters": "adapter specs snakepit.testing.adapters:<Class>",
    "snakepit.testing.plugin": "the pytest11 entry point in pyproject.toml",
}
# The generated protobuf stubs follow protoc's names.
_GENERATED = "snakepit._proto"


def _walk(package: types.ModuleType) -> list[pkgutil.ModuleInfo]:
    return sorted(
        pkgutil.walk_packages(package.__path__, package.__name__ + "."), key=lambda m: m.name
    )


ALL_MODULES = [m for pkg in (snakepit, supertester) for m in _walk(pkg)]
PUBLIC_MODULES = ["snakepit", "supertester"] + [
    m.name for m in ALL_MODULES if not any(part.startswith("_") for part in m.name.split("."))
]
PACKAGES = {"snakepit", "supertester"} | {m.name for m in ALL_MODULES if m.ispkg}


def _sort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then everything else, each alphabetically
    return (0 if name.isupper() else 1, name)


def _is_type_variable(value: ast.expr) -> bool:
    # T = TypeVar("T"): a name for annotations, not part of what the module offers
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in {"TypeVar", "ParamSpec", "TypeVarTuple"}
    )


def _defined_here(module: types.ModuleType) -> set[str]:
    """Public names the module's own source binds at top level (not under TYPE_CHECKING)."""
    source = inspect.getsource(module)
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and not _is_type_variable(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


class TestPublicModules:
    @pytest.mark.parametrize("name", PUBLIC_MODULES)
    def test_all_is_sorted_and_every_name_resolves(self, name: str) -> None:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__: list its public names"
        exported = list(module.__all__)
        if name == "snakepit":
            # the error classes first (re-exported as a block from snakepit.errors), then the rest
            assert exported[: len(snakepit.errors.__all__)] == snakepit.errors.__all__
            exported = exported[len(snakepit.errors.__all__) :]
        assert exported == sorted(exported, key=_sort_key), f"{name}.__all__ is not sorted"
        assert len(set(module.__all__)) == len(module.__all__), f"{name}.__all__ repeats a name"
        missing = [n for n in module.__all__ if getattr(module, n, None) is None]
        assert not missing, f"{name}.__all__ lists names it does not have: {missing}"

    @pytest.mark.parametrize("name", PUBLIC_MODULES)
    def test_every_public_name_defined_there_is_exported(self, name: str) -> None:
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__: list its public names"
        if name in PACKAGES:
            # a package's face: whatever of the package it binds is exported (or a submodule)
            public = {
                n
                for n, value in vars(module).items()
                if not n.startswith("_")
                and not isinstance(value, types.ModuleType)
                and (getattr(value, "__module__", None) or "").startswith(name)
            }
        else:
            public = _defined_here(module)
        unlisted = sorted(public - set(module.__all__))
        assert not unlisted, (
            f"{name} defines public names missing from __all__: {unlisted}; export them, or "
            "rename them with a leading underscore"
        )


class TestPrivacyRule:
    @pytest.mark.parametrize(
        "name",
        [
            m.name
            for m in ALL_MODULES
            if m.name.count(".") >= 2 and not m.name.startswith(_GENERATED)
        ],
    )
    def test_modules_inside_packages_are_private_unless_named_by_path(self, name: str) -> None:
        leaf = name.rsplit(".", 1)[1]
        parent = name.rsplit(".", 1)[0]
        is_package = name in PACKAGES
        assert leaf.startswith("_") or is_package or name in NAMED_BY_PATH, (
            f"{name} is an implementation module with a public name: rename it "
            f"{parent}._{leaf} and export its public names from {parent}.__init__"
        )

    def test_a_public_module_is_found_by_the_walk(self) -> None:
        """The walk sees the modules it must judge (so the rule cannot pass vacuously)."""
        walked = {m.name for m in ALL_MODULES}
        assert {"snakepit.worker._handle", "snakepit.testing.adapters", "supertester.clock"} <= (
            walked
        )
        assert "snakepit.worker" in PUBLIC_MODULES and "snakepit.worker._handle" not in (
            PUBLIC_MODULES
        )
