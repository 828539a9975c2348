"""The one grammar of a point in time: ISO 8601, a duration ago, or now/today/yesterday (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemasync_backup.errors import InvalidInputError
from schemasync_backup.model.durations import format_duration
from schemasync_backup.model.moments import moment

NOW = datetime(2026, 11, 25, 14, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    ("2026-11-25T14:00:00Z", datetime(2026, 11, 25, 14, tzinfo=UTC)),
    ("2026-11-25T16:00:00+02:00", datetime(2026, 11, 25, 14, tzinfo=UTC)),
    ("24h", NOW - timedelta(hours=24)),
    ("90m", NOW - timedelta(minutes=90)),
    ("7d", NOW - timedelta(days=7)),
    ("2w", NOW - timedelta(weeks=2)),
    (" 1d12h ", NOW - timedelta(days=1, hours=12)),
    ("now", NOW),
    ("Today", datetime(2026, 11, 25, tzinfo=UTC)),
    ("yesterday", datetime(2026, 11, 24, tzinfo=UTC)),
])
def test_accepted_forms(text: str, expected: datetime) -> None:
    assert moment(text, NOW) == expected


def test_a_datetime_is_taken_as_utc() -> None:
    assert moment(datetime(2026, 1, 1, 12), NOW) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert moment(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=1))), NOW) == datetime(
        2026, 1, 1, 11, tzinfo=UTC)


@pytest.mark.parametrize("text", ["nope", "", "24", "-1h", "tomorrow", "2026-13-01", "24 hours"])
def test_refusals_say_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"ISO 8601.*duration ago.*yesterday") as caught:
        moment(text, NOW)
    assert isinstance(caught.value, ValueError) and caught.value.subject == text


@given(st.timedeltas(min_value=timedelta(), max_value=timedelta(days=3650)).map(
    lambda delta: timedelta(seconds=int(delta.total_seconds()))))
def test_any_spelled_duration_counts_back_from_now(ago: timedelta) -> None:
    assert moment(format_duration(ago), NOW) == NOW - ago
