"""Test helpers for snakepit and for users testing their own adapters (see docs/testing.md)."""

from __future__ import annotations

__all__: list[str] = []
