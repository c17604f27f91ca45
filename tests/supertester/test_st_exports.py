"""The public face: ``supertester.__all__`` is exactly what the modules export, and it is cheap."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import supertester

PUBLIC_MODULES = sorted(
    name
    for _, name, _ in pkgutil.iter_modules(supertester.__path__)
    if not name.startswith("_") and name != "pytest_plugin"
)


class TestExports:
    def test_all_is_sorted_and_every_name_resolves(self) -> None:
        assert supertester.__all__ == sorted(
            supertester.__all__, key=lambda n: (not n.isupper(), n)
        )
        for name in supertester.__all__:
            assert getattr(supertester, name) is not None
        assert set(supertester.__all__) <= set(dir(supertester))

    @pytest.mark.parametrize("module_name", PUBLIC_MODULES)
    def test_every_public_name_of_a_module_is_exported(self, module_name: str) -> None:
        module = importlib.import_module(f"supertester.{module_name}")
        missing = set(module.__all__) - set(supertester.__all__)
        assert not missing, (
            f"supertester.{module_name} exports {missing}; add them to supertester.__all__"
        )
        for name in module.__all__:
            if name in supertester.__all__:
                assert getattr(supertester, name) is getattr(module, name)

    def test_an_unknown_name_is_an_attribute_error(self) -> None:
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            _ = supertester.nope  # type: ignore[attr-defined]

    def test_the_plugin_imports_without_the_toolkit(self) -> None:
        code = (
            "import sys, supertester.pytest_plugin\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('supertester.'))\n"
            "print(loaded)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "['supertester.pytest_plugin']"

    def test_the_toolkit_never_imports_snakepit(self) -> None:
        code = (
            "import sys, supertester\n"
            "[getattr(supertester, n) for n in supertester.__all__]\n"
            "import supertester.pytest_plugin\n"
            "print(any(m == 'snakepit' or m.startswith('snakepit.') for m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "False"
