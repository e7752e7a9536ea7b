"""The timestamp column type: aware datetimes in, stored as UTC, aware UTC out on every database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from intake.db.base import UTCDateTime


def test_binds_aware_datetimes_as_utc_and_refuses_naive_ones() -> None:
    kind = UTCDateTime()
    paris = dt.datetime(2026, 7, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    bound = kind.process_bind_param(paris, sqlite.dialect())
    assert bound == paris and bound is not None and bound.tzinfo == dt.UTC and bound.hour == 12
    assert kind.process_bind_param(None, sqlite.dialect()) is None
    with pytest.raises(TypeError):
        kind.process_bind_param(dt.datetime(2026, 7, 1, 12, 0), sqlite.dialect())


def test_reads_a_zoneless_value_as_utc() -> None:
    kind = UTCDateTime()
    assert kind.process_result_value(dt.datetime(2026, 7, 1, 12, 0), sqlite.dialect()) == dt.datetime(
        2026, 7, 1, 12, 0, tzinfo=dt.UTC
    )
    aware = dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC)
    assert kind.process_result_value(aware, postgresql.dialect()) is aware
    assert str(kind.compile(dialect=postgresql.dialect())) == "TIMESTAMP WITH TIME ZONE"
