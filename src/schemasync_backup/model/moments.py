"""Moments: the one grammar for a point in time that listing filters (``created_after``, ...) read.

An ISO 8601 time (``2026-11-25``, ``2026-11-25T14:00:00Z``; without a zone it is UTC), a duration
ago in the grammar of :mod:`.durations` (``24h``, ``90m``, ``7d``, ``2w``), or one of the words
``now``, ``today`` and ``yesterday`` (UTC midnights), so an operator writes what a guide writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from schemasync_backup.errors import InvalidInputError
from schemasync_backup.model.durations import parse_duration

#: What a refusal says: the accepted spellings.
GRAMMAR = ('use an ISO 8601 time (e.g. 2026-11-25 or 2026-11-25T14:00:00Z; UTC without a zone), a duration ago '
           '(e.g. 24h, 90m, 7d, 2w) or one of now, today, yesterday (UTC midnights)')


def moment(value: datetime | str, now: datetime | None = None) -> datetime:
    """The UTC time ``value`` names, relative ones counted back from ``now`` (default: the clock);
    :class:`InvalidInputError` saying the accepted forms for anything else."""
    if isinstance(value, datetime):
        return _utc(value)
    if not isinstance(value, str):
        raise InvalidInputError(f"invalid time {value!r}: {GRAMMAR}", subject=value)
    current = _utc(now or datetime.now(UTC))
    word = value.strip().lower()
    midnight = datetime.combine(current.date(), time(), UTC)
    named = {"now": current, "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if word in named:
        return named[word]
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        pass
    # A plain number would be read as seconds ago: too easily a typo of a date, so only unit forms count.
    if word and not word.replace(".", "", 1).isdigit():
        try:
            return current - parse_duration(word)
        except ValueError:
            pass
    raise InvalidInputError(f"invalid time {value!r}: {GRAMMAR}", subject=value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
