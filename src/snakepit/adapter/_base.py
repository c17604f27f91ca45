"""The ``Adapter`` base class: any Python class whose ``@tool`` methods become remotely callable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from snakepit.adapter._tools import ToolInfo, collect_tools

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["Adapter"]


class Adapter:
    """Base class for adapters; subclass it and mark methods with ``@tool``.

    One instance lives in each worker process. ``setup()`` runs once before
    the worker reports ready (load a model, open a library); a failure there is
    reported to the host as a startup error with the traceback. ``teardown()``
    runs on a graceful shutdown.

    Example::

        class Models(Adapter):
            def setup(self) -> None:
                self.model = load_model()

            @tool
            def predict(self, features: list) -> float:
                return self.model.predict(features)
    """

    _tools_cache: ClassVar[dict[type, dict[str, ToolInfo]]] = {}

    def setup(self) -> Awaitable[None] | None:
        """Called once per worker process before it is ready (sync or async)."""
        return None

    def teardown(self) -> Awaitable[None] | None:
        """Called once on a graceful shutdown (sync or async)."""
        return None

    @classmethod
    def tools(cls) -> dict[str, ToolInfo]:
        """This class's tools by public name."""
        cached = Adapter._tools_cache.get(cls)
        if cached is None:
            cached = Adapter._tools_cache[cls] = collect_tools(cls)
        return cached

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        collect_tools(cls)  # fail at class creation on a malformed tool, not in the worker later
