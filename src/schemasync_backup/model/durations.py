"""Durations: the one grammar that settings, retention rules, grace periods and arguments read.

``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"500ms"``, ``"1d12h"`` (parts add up, spaces
and case do not matter), or a plain number of seconds. Never negative.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|[wdhms])")
_WHOLE = re.compile(rf"\s*(?:{_PART.pattern}\s*)+")
_NUMBER = re.compile(r"\s*\d+(?:\.\d+)?\s*")
_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: What a refusal says: the accepted spellings.
GRAMMAR = ('expected a duration like "30s", "5m", "168h" or "7d" (units ms, s, m for minutes, h, d, w; parts '
           'add up, e.g. "1d12h"; a plain number is seconds)')


def parse_duration(value: str | timedelta | float) -> timedelta:
    """The duration ``value`` spells; :class:`ValueError` (saying why) for anything else."""
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(GRAMMAR)
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(GRAMMAR)
        duration = timedelta(seconds=value)
    elif _NUMBER.fullmatch(value):
        duration = timedelta(seconds=float(value))
    elif _WHOLE.fullmatch(value.lower()):
        duration = timedelta(seconds=sum(float(number) * _SECONDS[unit]
                                         for number, unit in _PART.findall(value.lower())))
    else:
        raise ValueError(GRAMMAR)
    if duration < timedelta():
        raise ValueError("a duration must not be negative")
    return duration


def format_duration(duration: timedelta | float) -> str:
    """The shortest exact spelling :func:`parse_duration` reads back: ``7d``, ``1d12h``, ``90s`` -> ``1m30s``."""
    total = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    seconds = int(total)
    if seconds != total:
        return f"{total:.6f}".rstrip("0") + "s"  # timedelta's resolution; never an exponent
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
