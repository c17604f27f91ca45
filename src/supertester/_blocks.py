"""The base of the toolkit's objects that open a block with both ``with`` and ``async with``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Block"]


class Block:
    """Both context-manager protocols over three hooks.

    A subclass says what entering does (``_begin``; ``in_loop`` is True under
    ``async with``, where an event loop runs) and what leaving does with the
    block's exception (``_end``; ``_end_async`` under ``async with``, by default
    the same).
    """

    def _begin(self, *, in_loop: bool) -> None:
        raise NotImplementedError

    def _end(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    async def _end_async(self, exc: BaseException | None) -> None:
        self._end(exc)

    def __enter__(self) -> Self:
        self._begin(in_loop=False)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc)

    async def __aenter__(self) -> Self:
        self._begin(in_loop=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._end_async(exc)
