"""Adapters shipped with snakepit, used by the demo, the docs and the tests."""

__all__: list[str] = []
