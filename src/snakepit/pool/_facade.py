"""Pool's facades over other parts: plain functions, sessions and their store, and host tools.

``Pool`` inherits these methods. Plain functions run through
``snakepit._executor``; sessions are handles on the pool's session store; host
tools are functions of the host that worker code may call.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar, cast

from snakepit.bridge._memory import validate_session_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from snakepit.bridge._host_tools import HostToolRegistry
    from snakepit.events import Event
    from snakepit.pool._pool import Pool
    from snakepit.pool._session import Session, Sessions

__all__ = ["Facade"]

P = ParamSpec("P")
T = TypeVar("T")


class Facade:
    """``Pool``'s plain functions, sessions and host tools."""

    _host_tools: HostToolRegistry
    _sessions: Sessions | None
    _affinity: dict[str, str]

    @classmethod
    def for_functions(
        cls,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        **options: Any,
    ) -> Self:
        """A pool whose workers run plain functions: ``await pool.submit(fn, *args)``.

        Its adapter is the built-in function runner and its ``timeout`` defaults to None
        (set one to bound each function). ``initializer(*initargs)`` runs once in every
        worker process; if it raises, ``start()`` raises ``WorkerStartupError``.

        Raises:
            ValueError: an option is invalid.
            TypeError: ``initializer`` is not callable.
            SerializationError: the initializer or its arguments cannot be pickled.
        """
        from snakepit._executor import function_pool_options

        return cls(**function_pool_options(initializer, initargs, options))

    async def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker and return its value (``for_functions`` pools).

        The function and arguments are pickled (lambdas and closures with cloudpickle).
        What ``fn`` raises is raised here as itself, with the worker's traceback as its
        ``__cause__``; if it cannot be unpickled here, a ``ToolError`` carries it.

        Raises:
            BaseException: what ``fn`` raised.
            SerializationError: the call or its value cannot be pickled.
            ToolNotFoundError: the pool was not made by ``Pool.for_functions``.
            ExecutionTimeoutError, WorkerCrashedError, CapacityError, PoolClosedError:
                as :meth:`execute`.
        """
        from snakepit._executor import callable_name, encode_call, run_function

        value: T = await run_function(
            cast("Pool", self), encode_call(fn, args, kwargs), callable_name(fn)
        )
        return value

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> AsyncIterator[T]:
        """``async for value in pool.map(fn, xs)``: ``fn`` over the iterables, in order.

        A few calls per worker run ahead of the consumer; closing the iterator cancels
        them. ``timeout`` bounds the whole map, from the first ``__anext__``.

        Raises:
            ValueError: ``chunksize`` < 1 (on iteration).
            TimeoutError: the results took longer than ``timeout``.
            BaseException: the first failing call's error, at its place in the order.
        """
        from snakepit._executor import map_functions

        return map_functions(
            cast("Pool", self), fn, iterables, timeout=timeout, chunksize=chunksize
        )

    # -- sessions and host tools ---------------------------------------------------------------

    def session(self, session_id: str | None = None) -> Session:
        """A handle on one session: its calls (affinity to its worker) and its variables.

        Use it directly or as ``async with pool.session("user-1") as s:``. The session
        is created in the pool's store on first use (a call, ``initialize()`` or
        ``variables.register``) and expires after ``session_ttl`` seconds unused.

        Args:
            session_id: ``[A-Za-z0-9_.:-]{1,128}``; None for a fresh generated id.

        Raises:
            ValueError: ``session_id`` is malformed.
        """
        from snakepit.pool._session import Session

        if session_id is None:
            session_id = f"s-{uuid.uuid4().hex[:12]}"
        return Session(cast("Pool", self), validate_session_id(session_id))

    @property
    def sessions(self) -> Sessions:
        """The pool's live sessions: ``await pool.sessions.list()``, ``.get(id)``, ``.delete(id)``."""
        if self._sessions is None:
            from snakepit.pool._session import Sessions

            self._sessions = Sessions(cast("Pool", self))
        return self._sessions

    def register_host_tool(
        self, name: str, fn: Callable[..., Any], *, description: str | None = None
    ) -> None:
        """Make ``fn`` callable from worker code: ``ctx.call_host_tool(name, {...})``.

        ``fn`` is called with the keyword arguments the worker sends; a sync
        ``fn`` runs on a thread, an ``async`` one on the pool's loop. Its return
        value goes back to the worker (JSON values and bytes); what it raises
        arrives in the worker as ``HostToolError`` with the host traceback.

        Args:
            name: ``[A-Za-z_][A-Za-z0-9_.-]{0,127}``, unique in this pool.
            fn: a function or coroutine function.
            description: reported by ``ListHostTools``; default: the docstring's first line.

        Raises:
            InvalidValueError: the name is malformed or already registered (a ``ValueError``).
            TypeError: ``fn`` is not callable.
        """
        self._host_tools.register(name, fn, description=description)

    def unregister_host_tool(self, name: str) -> bool:
        """Remove a host tool; True when it was registered."""
        return self._host_tools.unregister(name)

    @property
    def host_tools(self) -> list[str]:
        """The names of the registered host tools, sorted."""
        return self._host_tools.names()

    def _on_session_gone(self, event: Event) -> None:
        self._affinity.pop(getattr(event, "session_id", ""), None)

    def affinity_worker(self, session_id: str) -> str | None:
        """The worker a session last ran on, if any."""
        return self._affinity.get(session_id)

    def forget_session(self, session_id: str) -> None:
        self._affinity.pop(session_id, None)
