"""The snakepit pytest plugin (entry point ``pytest11: snakepit``): fixtures for pools and workers."""

from __future__ import annotations
