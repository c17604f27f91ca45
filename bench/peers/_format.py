"""Numbers as the table shows them."""

from __future__ import annotations

MB = 1e6
MiB = 1024 * 1024


def scaled(value: float, unit: str) -> float:
    """A value kept in SI units (s, B, B/s) converted to ``unit``."""
    if unit == "µs":
        return value * 1e6
    if unit == "ms":
        return value * 1e3
    if unit == "MB/s":
        return value / MB
    if unit == "MiB":
        return value / MiB
    return value


def number(value: float) -> str:
    """Three significant figures, thousands separated, no exponent."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude == 0:
        return "0"
    return f"{value:.3g}"


def quantity(value: float, unit: str) -> str:
    shown = scaled(value, unit)
    if unit == "calls":
        return f"{shown:g}"
    return f"{number(shown)} {unit}"


def ratio(value: float, baseline: float) -> str:
    if baseline == 0:
        return ""
    r = value / baseline
    return f"\u00d7{r:.2f}" if r < 10 else f"\u00d7{r:.1f}"
