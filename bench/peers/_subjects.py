"""The contenders, by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.peers._peers import (
    LokySubject,
    MultiprocessingPoolSubject,
    PebbleSubject,
    ProcessPoolExecutorSubject,
)
from bench.peers._snakepit import SnakepitSubject

if TYPE_CHECKING:
    from bench.peers._subject import Subject


def all_subjects() -> list[Subject]:
    return [
        SnakepitSubject("local"),
        SnakepitSubject("grpc"),
        ProcessPoolExecutorSubject(),
        MultiprocessingPoolSubject(),
        PebbleSubject(),
        LokySubject(),
    ]


def subject_named(name: str) -> Subject:
    for subject in all_subjects():
        if subject.name == name:
            return subject
    raise KeyError(name)
