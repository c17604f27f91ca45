"""The house rules that keep the suite deterministic, checked mechanically."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import snakepit

ROOT = Path(__file__).resolve().parents[1]
# Written so that this file does not match its own pattern.
_SLEEP = re.compile(r"\b(time|asyncio|anyio|trio)\s*\.\s*sl" r"eep\s*\(")
_SLEEP_IMPORT = re.compile(r"from\s+(time|asyncio|anyio|trio)\s+import\s+[^#\n]*\bsl" r"eep\b")


class TestZeroSleep:
    def test_no_test_file_sleeps(self) -> None:
        """No file under tests/ calls or imports a sleep: tests synchronise on events instead."""
        offenders = []
        for path in sorted((ROOT / "tests").rglob("*.py")):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if _SLEEP.search(line) or _SLEEP_IMPORT.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
        assert not offenders, (
            "sleeps found in tests (use a Mailbox, a future or FakeClock):\n" + "\n".join(offenders)
        )

    def test_the_scan_catches_a_sleep(self) -> None:
        """The scan's patterns match the forms a sleep takes (so the rule cannot pass vacuously)."""
        word = "sleep"  # split so that this file does not trip the scan
        samples = [f"time.{word}(1)", f"await asyncio.{word}(0.1)", f"from time import {word}"]
        assert all(_SLEEP.search(s) or _SLEEP_IMPORT.search(s) for s in samples)


class TestExports:
    def test_all_names_exist(self) -> None:
        """Every name in snakepit.__all__ is importable from snakepit."""
        missing = [name for name in snakepit.__all__ if not hasattr(snakepit, name)]
        assert not missing

    def test_public_names_are_in_all(self) -> None:
        """Every public attribute of snakepit (not a submodule) is listed in __all__."""
        import types

        public = {
            name
            for name, value in vars(snakepit).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and name != "annotations"  # from __future__ import annotations
        }
        assert public <= set(snakepit.__all__), public - set(snakepit.__all__)


class TestProtoStubs:
    def test_committed_stubs_are_fresh(self, tmp_path: Path) -> None:
        """Regenerating the stubs from proto/ gives exactly the committed files."""
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "gen-proto"), str(tmp_path)],
            check=True,
            capture_output=True,
            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        )
        committed = ROOT / "src" / "snakepit" / "_proto"
        generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
        assert generated, "gen-proto produced nothing"
        stale = [
            str(rel)
            for rel in generated
            if not (committed / rel).is_file()
            or (committed / rel).read_bytes() != (tmp_path / rel).read_bytes()
        ]
        assert not stale, f"stale stubs (run scripts/gen-proto and commit): {stale}"


# A repository path in docs: a relative link, or `dir/file.ext` in backticks.
_DOC_LINK = re.compile(r"\]\(([^)#:\s]+)\)")
_DOC_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|proto|toml|txt|json|sh))`")


class TestDocs:
    def test_docs_cite_only_files_in_the_repository(self) -> None:
        """Every file README.md and docs/ link to or name by path exists here."""
        missing = []
        for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
            text = doc.read_text()
            for target in _DOC_LINK.findall(text):
                if not (doc.parent / target).exists():
                    missing.append(f"{doc.relative_to(ROOT)}: link {target}")
            for path in _DOC_PATH.findall(text):
                if not (ROOT / path).exists():
                    missing.append(f"{doc.relative_to(ROOT)}: {path}")
        assert not missing, "docs cite files that do not exist:\n" + "\n".join(missing)


class TestWorkerIsolation:
    def test_the_worker_side_loads_nothing_of_the_host_side(self) -> None:
        """Everything a worker process imports (the adapter SDK, both worker mains, the fork
        server's template) loads no module of the host side: no pool, no handle, no bridge,
        no gRPC for a local worker."""
        probe = (
            "import sys\n"
            "import snakepit.adapter, snakepit.adapter._local, snakepit.adapter._main\n"
            "import snakepit.adapter._forkserver, snakepit.examples.showcase\n"
            "host = ('snakepit.pool', 'snakepit.worker', 'snakepit.bridge', 'snakepit.config',\n"
            "        'snakepit.cli', 'snakepit.testing._pools', 'snakepit._executor', 'grpc')\n"
            "print(sorted(m for m in sys.modules if m.startswith(host)))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]", out
