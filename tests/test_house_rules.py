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


# What a worker process may load of snakepit: the adapter SDK and the worker mains (every
# module of snakepit.adapter, found by walking the package), the wire contract, the codec,
# the errors, and the adapters it is pointed at. Anything else of snakepit is the host side.
_WORKER_SIDE_PACKAGES = (
    "snakepit._proto",
    "snakepit._wire",
    "snakepit.adapter",
    "snakepit.examples",
)
_WORKER_SIDE_MODULES = {
    "snakepit",
    "snakepit._trace_context",
    "snakepit._variables",
    "snakepit.codec",
    "snakepit.errors",
    "snakepit.testing",  # the package's __init__ is lazy: it imports none of its helpers
    "snakepit.testing.adapters",
}
# The gRPC worker's service is the one worker module that imports gRPC.
_GRPC_WORKER = ("snakepit.adapter._service",)
_ISOLATION_PROBE = """
import importlib, json, pkgutil, sys
import snakepit.adapter
names = sorted(m.name for m in pkgutil.walk_packages(snakepit.adapter.__path__, "snakepit.adapter."))
grpc_worker = set(json.loads(sys.argv[1]))
for name in names:
    if name not in grpc_worker:
        importlib.import_module(name)
importlib.import_module("snakepit.examples.showcase")
importlib.import_module("snakepit.testing.adapters")
local = sorted(m for m in sys.modules if m == "grpc" or m.startswith("grpc."))
for name in sorted(grpc_worker):
    importlib.import_module(name)
print(json.dumps({"walked": names, "grpc_in_local_worker": local,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "snakepit")}))
"""


def _worker_side(module: str) -> bool:
    return module in _WORKER_SIDE_MODULES or any(
        module == pkg or module.startswith(pkg + ".") for pkg in _WORKER_SIDE_PACKAGES
    )


class TestWorkerIsolation:
    def test_the_worker_side_loads_nothing_of_the_host_side(self) -> None:
        """Every module of snakepit.adapter (walked, so a new worker module is covered
        without a word here), the worker mains, the fork server's template and the adapters
        workers load, imported together, load no module of the host side: no pool, no
        handle, no bridge, no config; and no gRPC but for the gRPC worker's service."""
        import json

        out = subprocess.run(
            [sys.executable, "-c", _ISOLATION_PROBE, json.dumps(_GRPC_WORKER)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        probe = json.loads(out)
        assert {"snakepit.adapter._local", "snakepit.adapter._main"} <= set(probe["walked"])
        assert set(_GRPC_WORKER) <= set(probe["walked"]), "a gRPC worker module moved"
        host_side = [m for m in probe["loaded"] if not _worker_side(m)]
        assert not host_side, (
            f"the worker side imports host-side modules {host_side}; import them lazily on "
            "the host, or move what both sides need into snakepit._wire"
        )
        assert probe["grpc_in_local_worker"] == [], probe["grpc_in_local_worker"]

    def test_the_probe_sees_a_host_module(self) -> None:
        """The allowlist judges names as meant (so the rule cannot pass vacuously)."""
        assert _worker_side("snakepit.adapter._local") and _worker_side("snakepit._wire._framing")
        assert not _worker_side("snakepit.pool._pool") and not _worker_side("snakepit.config")
        assert not _worker_side("snakepit.testing._pools") and not _worker_side("snakepit.worker")


# The pure decision modules of the pool, imported on their own (the package's __init__
# exports Pool, so the probe stands a bare package in for it): they must load nothing that
# runs workers, no transport and no gRPC, so that their unit tests need no loop or process.
_PURE_DECISIONS = ("_supervision", "_scheduler", "_restarts", "_actions")
_PURE_PROBE = r"""
import importlib, json, sys, types
import snakepit
pool = types.ModuleType("snakepit.pool")
pool.__path__ = [snakepit.__path__[0] + "/pool"]
sys.modules["snakepit.pool"] = pool
for name in json.loads(sys.argv[1]):
    importlib.import_module("snakepit.pool." + name)
print(json.dumps(sorted(sys.modules)))
"""


def _impure(modules: list[str]) -> list[str]:
    """Of ``modules``, those a pure decision module must not load: worker handles and
    transports, the pool's I/O side, gRPC."""
    return [
        m
        for m in modules
        if m.split(".")[0] == "grpc"
        or m.startswith("snakepit.worker")
        or m in ("snakepit.pool._pool", "snakepit.pool._engine", "snakepit.pool._routines")
    ]


class TestPureDecisions:
    def test_the_decision_modules_load_no_worker_code(self) -> None:
        """Supervision, the scheduler, the restart policy and the actions import no worker
        handle, transport or gRPC."""
        import json

        out = subprocess.run(
            [sys.executable, "-c", _PURE_PROBE, json.dumps(_PURE_DECISIONS)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        loaded = json.loads(out)
        assert {f"snakepit.pool.{name}" for name in _PURE_DECISIONS} <= set(loaded)
        assert not _impure(loaded), (
            f"a pure decision module loads {_impure(loaded)}: pass it plain values (ready: "
            "bool, not a WorkerState from a handle module) or import under TYPE_CHECKING"
        )

    def test_the_probe_sees_worker_code(self) -> None:
        """The check flags what it should (so the rule cannot pass vacuously)."""
        loaded = ["snakepit.errors", "snakepit.worker._handle", "grpc._channel", "asyncio"]
        assert _impure(loaded) == ["snakepit.worker._handle", "grpc._channel"]


# The architecture page names every module under src/ in its map, and says why each long one
# is long. A module is named as `src/...py` in backticks (the form TestDocs checks exists).
_ARCHITECTURE = ROOT / "docs" / "architecture.md"
_NAMED_MODULE = re.compile(r"`(src/[\w./-]+\.py)`")
_LONG = 420  # lines; "~400" with room for a docstring's growth


def _section(text: str, heading: str) -> str:
    """The text under the level-2 ``heading`` of a markdown page, up to the next one."""
    start = text.find(f"\n## {heading}\n")
    assert start != -1, f"docs/architecture.md has no section '## {heading}'"
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _modules() -> dict[str, int]:
    """Every module under src/snakepit and src/supertester (not the generated stubs), with its
    length in lines."""
    found = {}
    for package in ("snakepit", "supertester"):
        for path in sorted((ROOT / "src" / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith("src/snakepit/_proto/"):
                found[rel] = len(path.read_text().splitlines())
    return found


def _unmapped(text: str, modules: dict[str, int]) -> tuple[list[str], list[str]]:
    """The modules the map does not name, and the long ones the "long" section does not."""
    mapped = set(_NAMED_MODULE.findall(_section(text, "The map")))
    explained = set(_NAMED_MODULE.findall(_section(text, "Why these modules are long")))
    missing = sorted(set(modules) - mapped)
    unexplained = sorted(m for m, lines in modules.items() if lines > _LONG and m not in explained)
    return missing, unexplained


class TestArchitectureMap:
    def test_every_module_is_on_the_map_and_every_long_one_says_why(self) -> None:
        """docs/architecture.md names every module under src/ in "The map", and every module
        over 420 lines in "Why these modules are long"."""
        missing, unexplained = _unmapped(_ARCHITECTURE.read_text(), _modules())
        assert not missing, (
            "modules missing from the map in docs/architecture.md (add a line each: "
            f"`path`: what it is, in one sentence): {missing}"
        )
        assert not unexplained, (
            "modules over 420 lines without a sentence under 'Why these modules are long' in "
            f"docs/architecture.md (split them, or say why they are long): {unexplained}"
        )

    def test_the_check_sees_a_missing_module(self) -> None:
        """A module the map leaves out, and a long module the page does not explain, are
        reported (so the rule cannot pass vacuously)."""
        assert "src/snakepit/pool/_engine.py" in _modules(), "the walk found no modules"
        page = (
            "# Architecture\n\n## The map\n\n- `src/snakepit/a.py`: one.\n- `src/snakepit/b.py`: two."
            "\n\n## Why these modules are long\n\n- `src/snakepit/a.py`: why.\n\n## Decisions\n"
        )
        modules = {"src/snakepit/a.py": _LONG + 1, "src/snakepit/b.py": _LONG + 1}
        assert _unmapped(page, modules) == ([], ["src/snakepit/b.py"])
        modules["src/snakepit/c.py"] = 10
        assert _unmapped(page, modules) == (["src/snakepit/c.py"], ["src/snakepit/b.py"])
