"""A prefix names a range of UUIDs; a page's cursor round-trips."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from debug_sink.read.workflows import cursor, parse_cursor, uuid_range


class TestPrefixRange:
    """uuid_range gives the lowest and highest UUID with the prefix, hyphens ignored."""

    def test_ranges(self) -> None:
        low, high = uuid_range("5F0C2A8E-3b")
        assert str(low) == "5f0c2a8e-3b00-0000-0000-000000000000"
        assert str(high) == "5f0c2a8e-3bff-ffff-ffff-ffffffffffff"
        full = "5f0c2a8e-3b1d-4c7a-9e2f-6d8b1a4c3e21"
        assert uuid_range(full) == (uuid.UUID(full), uuid.UUID(full))

    @pytest.mark.parametrize("text", ["", "-", "xyz", "5f0c2a8e3b1d4c7a9e2f6d8b1a4c3e21a"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a correlation id"):
            uuid_range(text)


class TestCursor:
    def test_round_trip(self) -> None:
        at = datetime(2026, 11, 1, 12, 0, 34, 450_000, tzinfo=UTC)
        corr = uuid.uuid4()
        assert parse_cursor(cursor(at, corr)) == (at, corr)

    @pytest.mark.parametrize("text", ["2026-11-01T12:00:00", "x/y", "2026-11-01T12:00:00/abc"])
    def test_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="not a cursor"):
            parse_cursor(text)
