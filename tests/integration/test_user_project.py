"""docs/testing.md's example project, built from the page itself and run by pytest in a
subprocess, as a user would, in pytest-asyncio's strict and auto modes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_FILE_BLOCK = re.compile(r"^`([\w./]+)`:\n\n```\w*\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _project_files() -> dict[str, str]:
    section = DOC.read_text().split("### A complete example", 1)[1].split("\n## ", 1)[0]
    files = dict(_FILE_BLOCK.findall(section))
    assert set(files) == {"pyproject.toml", "mytools.py", "test_mytools.py"}, files
    return files


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_documented_project_passes_in_both_asyncio_modes(tmp_path: Path, mode: str) -> None:
    project = tmp_path / "project"
    for name, text in _project_files().items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "pyproject.toml":
            assert 'asyncio_mode = "strict"' in text
            text = text.replace('asyncio_mode = "strict"', f'asyncio_mode = "{mode}"')
        path.write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        # no xdist or random order in the child: it is one small project
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:randomly", "-q"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout, done.stdout
    assert "warning" not in done.stdout.lower(), done.stdout
