"""snakepit: a supervised pool of external worker processes with sessions, gRPC and streaming."""

from __future__ import annotations

from snakepit.errors import *  # noqa: F403 - the error classes are part of the public face
from snakepit.errors import __all__ as _errors_all

__version__ = "0.1.0"

__all__ = [*_errors_all, "__version__"]
