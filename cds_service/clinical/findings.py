"""What a rule concludes: a Finding for one card topic, with the data that justified it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DataPoint:
    """One piece of patient data a card used, shown to the clinician with its date."""

    label: str
    value: str
    when: datetime | None
    source: str


@dataclass(frozen=True)
class Target:
    """A medication order a suggestion acts on: delete it, or replace it with `update`."""

    reference: str
    """``MedicationRequest/<id>``."""
    name: str
    update: Mapping[str, Any] | None = field(default=None, compare=False)
    """The whole order as it should read after an update action (spec: update carries the
    whole resource)."""


@dataclass(frozen=True)
class Finding:
    """A rule's conclusion: which topic fires, in which variant, with which values."""

    topic: str
    variant: str
    values: Mapping[str, str] = field(default_factory=dict)
    data: tuple[DataPoint, ...] = ()
    suggestions: tuple[str, ...] | None = None
    """Suggestion keys to offer; None means the variant's own list."""
    notes: tuple[str, ...] = ()
    """Caveats the card must state (missing TSAT, suggestion withheld, ...)."""
    targets: tuple[Target, ...] = ()
    """Orders that delete and update actions act on."""
    indicator: str | None = None
    """Overrides the variant's indicator (critical for an over-limit dose at order-sign)."""
