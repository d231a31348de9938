"""FHIR date and dateTime values (possibly partial) as aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a FHIR ``date``/``dateTime``/``instant``; partial dates take their first instant.

    Returns None for anything that is not a real date, so one bad value costs one resource
    its date rather than the hook its answer.
    """
    if not value:
        return None
    value = value.strip()
    partial = _PARTIAL.match(value)
    try:
        if partial:
            year, month, day = partial.groups()
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: str | None) -> date | None:
    """Parse a FHIR ``date`` (birthDate); partial dates take their first day."""
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def age_in_years(birth: date, on: date) -> int:
    """Completed years between `birth` and `on`."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
