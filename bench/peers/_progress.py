"""One line on stderr per scenario and subject: what runs, then what it measured."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        stream: TextIO | None = None,
        enabled: bool = True,
        started_at: float | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._t0 = 0.0
        self._open = False
        #: wall-clock start of the whole run (children share their parent's)
        self.started_at = started_at if started_at is not None else time.time()

    def begin(self, scenario: str, subject: str) -> None:
        self._t0 = time.perf_counter()
        self._open = True
        self._write(f"{self._clock()} {scenario:<10} {subject:<21} ")

    def end(self, summary: str) -> None:
        if not self._open:
            return
        self._open = False
        self._write(f"{summary}  ({time.perf_counter() - self._t0:.1f} s)\n")

    def note(self, text: str) -> None:
        if self._open:
            self._write("\n")
            self._open = False
        self._write(f"{self._clock()} {text}\n")

    def _clock(self) -> str:
        elapsed = int(time.time() - self.started_at)
        return f"[{elapsed // 60:02d}:{elapsed % 60:02d}]"

    def _write(self, text: str) -> None:
        if self.enabled:
            self._stream.write(text)
            self._stream.flush()
