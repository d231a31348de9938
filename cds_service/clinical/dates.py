"""FHIR date and dateTime values (possibly partial) as aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
#: Years a date may have and still be a date here: "9999-12-31T23:59:59-01:00" is valid
#: FHIR, but past year 9999 in UTC, and a day added to the last years overflows; such a date
#: is treated as no date (never an error).
YEARS = range(2, 9999)


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a FHIR ``date``/``dateTime``/``instant``; partial dates take their first instant.

    Returns None for anything that is not a real date, or outside YEARS, so one bad value
    costs one resource its date rather than the hook its answer.
    """
    if not value:
        return None
    value = value.strip()
    partial = _PARTIAL.match(value) if len(value) <= 10 else None  # a dateTime: no regex
    try:
        if partial:
            year, month, day = partial.groups()
            moment = datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
            return moment if moment.year in YEARS else None
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        return None
    return parsed if parsed.year in YEARS else None


def parse_date(value: str | None) -> date | None:
    """Parse a FHIR ``date`` (birthDate); partial dates take their first day."""
    parsed = parse_datetime(value)
    return parsed.date() if parsed else None


def age_in_years(birth: date, on: date) -> int:
    """Completed years between `birth` and `on`."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
