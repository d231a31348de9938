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
class Evidence:
    """A source or link a card cites: its label and https URL."""

    label: str
    url: str


@dataclass(frozen=True)
class CardNote:
    """A sentence written in a card file (its ``[notes]`` table), filled with `values`: why a
    suggestion was not offered, or what else the clinician should know."""

    key: str
    values: Mapping[str, str] = field(default_factory=dict)


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
    """Caveats the card must state (an order already on record, data not read, ...)."""
    card_notes: tuple[CardNote, ...] = ()
    """Sentences from the card files the card must state (a suggestion withheld and why)."""
    companions: tuple[str, ...] = ()
    """Suggestion keys whose actions go with whichever suggestion is chosen (the cards let
    the clinician accept one suggestion), and are also offered on their own."""
    targets: tuple[Target, ...] = ()
    """Orders that delete and update actions act on."""
    indicator: str | None = None
    """Overrides the variant's indicator (critical for an over-limit dose at order-sign)."""
    evidence: tuple[Evidence, ...] = ()
    """Overrides the card's source (the first) and links (the rest): the label of the drug
    a dose card is about, not another product's."""


@dataclass(frozen=True)
class Reason:
    """Why a topic did not fire: a stable `code` (logged, compared in tests) and a sentence
    in plain words naming the data looked at (`text`; patient data, so never logged)."""

    code: str
    text: str
    unread: frozenset[str] = frozenset()
    """The kinds of data whose absence is the reason (the caller knows why they were not
    read and says so)."""


@dataclass(frozen=True)
class Decision:
    """One topic of a hook: whether it fired, and if not, the first reason why."""

    topic: str
    reason: Reason | None = None
    """None when the topic fired."""

    @property
    def fired(self) -> bool:
        return self.reason is None


class NoCard(list[Finding]):
    """A rule's "no card" that says why: an empty list of findings carrying its Reason.

    It is a list so that every caller of a rule (the engine, the tests comparing with
    ``[]``) keeps working unchanged, while the explainer reads the rule's own decision
    instead of re-deciding it.
    """

    def __init__(self, code: str, text: str):
        super().__init__()
        self.reason = Reason(code, text)

    def __repr__(self) -> str:
        return f"NoCard({self.reason.code!r}, {self.reason.text!r})"
