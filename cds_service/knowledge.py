"""The knowledge base: card definitions (``cards/*.toml``) and value sets, loaded and checked once.

A definition that cannot work fails start-up with a message naming the file: an unknown
suggestion key, a template variable the card does not declare, a summary that could reach
140 characters, a suggestion resource that fhir.resources rejects, a card note named twice.

Card text may name the card's thresholds as template fields (``{tsat_low}`` renders
``20``; ``{iv_tsat_days:period}`` renders ``12 months``), so that a number in the text is
the number the rule uses.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.clinical.dosing import DrugDosing
from cds_service.clinical.facts import REQUIRED_VALUE_SETS
from cds_service.clinical.iron_gate import IronCatalogue, IronProduct
from cds_service.clinical.terminology import ValueSet, ValueSetError, load_value_sets

TOPIC_SYSTEM = "urn:rls-cds:card-topic"
OVERRIDE_REASON_SYSTEM = "urn:rls-cds:override-reason"
SUMMARY_LIMIT = 140  # the spec: summary SHALL be shorter than 140 characters


class KnowledgeError(ValueError):
    """Raised at start-up when the knowledge base is missing or inconsistent."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodingDef(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str = Field(min_length=1)


class LinkDef(_Strict):
    label: str = Field(min_length=1)
    url: str

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not url.startswith("https://"):
            raise ValueError("evidence links must be absolute https URLs")
        return url


class ActionDef(_Strict):
    """One action of a suggestion.

    ``create`` builds the resource described here; its description and dosage text may name
    the card's variables and thresholds (a dose by weight). ``delete`` and ``update`` act on
    the medication orders the rule names (one action per order); their description may say
    ``{medication}``.
    """

    type: Literal["create", "delete", "update"]
    description: str = Field(min_length=1)
    resource: Literal["ServiceRequest", "MedicationRequest"] | None = None
    text: str | None = Field(default=None, min_length=1)
    coding: tuple[CodingDef, ...] = ()
    patient_instruction: str | None = None
    dosage_text: str | None = None
    route: CodingDef | None = None

    @model_validator(mode="after")
    def _shape(self) -> ActionDef:
        described = template_fields(self.description)
        if self.type == "create":
            if self.resource is None or self.text is None:
                raise ValueError("a create action needs resource and text")
            if template_fields(self.text) or template_fields(self.patient_instruction or ""):
                raise ValueError("a create action's text and instruction take no placeholders")
            return self
        if self.resource or self.text or self.coding or self.patient_instruction:
            raise ValueError(f"a {self.type} action acts on the rule's orders: no resource")
        if self.dosage_text or self.route or described - {"medication"}:
            raise ValueError(f"a {self.type} action may only use {{medication}}")
        return self


class IronProductDef(_Strict):
    """Marks a suggestion that gives iron: the iron safety gate decides whether it is offered."""

    route: Literal["oral", "iv"]
    dose: Literal["fixed", "weight-based"] = "fixed"


class SuggestionDef(_Strict):
    label: str = Field(min_length=1, max_length=200)
    recommended: bool = False
    actions: tuple[ActionDef, ...] = Field(min_length=1)
    iron: IronProductDef | None = None

    def templates(self) -> list[str]:
        """The texts of this suggestion that may name variables and thresholds."""
        texts = [self.label]
        for action in self.actions:
            if action.type == "create":
                texts += [action.description, action.dosage_text or ""]
        return texts


class NoteDef(_Strict):
    """A sentence a rule or the iron gate may add to a card (``[notes.<key>]``)."""

    text: str = Field(min_length=1)
    instead: str | None = None
    """A suggestion offered in place of the one this note says is withheld."""


Indicator = Literal["info", "warning", "critical"]


class VariantDef(_Strict):
    summary: str = Field(min_length=1)
    detail: str = Field(min_length=1)
    suggestions: tuple[str, ...] = ()
    indicator: Indicator | None = None
    """Overrides the card's indicator for this variant (e.g. warning on dialysis)."""
    override_reasons: tuple[CodingDef, ...] | None = None
    """Overrides the card's override reasons (prescribing reasons for a draft order)."""


class CardDefinition(_Strict):
    """One card topic as written in ``cards/<topic>.toml``."""

    topic: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    display: str = Field(min_length=1)
    order: int = Field(ge=1)
    indicator: Indicator
    thresholds: Mapping[str, float] = Field(default_factory=dict)
    source: LinkDef
    links: tuple[LinkDef, ...] = ()
    variables: Mapping[str, int] = Field(default_factory=dict)
    variants: Mapping[str, VariantDef] = Field(min_length=1)
    suggestions: Mapping[str, SuggestionDef] = Field(default_factory=dict)
    override_reasons: tuple[CodingDef, ...] = ()
    dosing: Mapping[str, DrugDosing] = Field(default_factory=dict)
    """Renal dose tables by drug, for the gabapentinoid card."""
    notes: Mapping[str, NoteDef] = Field(default_factory=dict)
    """Sentences the rules and the iron gate add to cards (any card may show them)."""

    @model_validator(mode="before")
    @classmethod
    def _reason_system(cls, data: dict) -> dict:
        variants = data.get("variants", {})
        reasons = [
            *data.get("override_reasons", []),
            *(
                r
                for v in variants.values()
                if isinstance(v, dict)
                for r in v.get("override_reasons", [])
            ),
        ]
        for reason in reasons:
            if isinstance(reason, dict):
                reason.setdefault("system", OVERRIDE_REASON_SYSTEM)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CardDefinition:
        both = set(self.variables) & set(self.thresholds)
        if both:
            raise ValueError(f"names both a variable and a threshold: {sorted(both)}")
        known = set(self.variables) | set(self.thresholds)
        texts: list[tuple[str, str]] = []
        for name, variant in self.variants.items():
            for key in variant.suggestions:
                if key not in self.suggestions:
                    raise ValueError(f"variant {name}: unknown suggestion {key!r}")
            texts += [(f"variant {name} summary", variant.summary)]
            texts += [(f"variant {name} detail", variant.detail)]
        for key, suggestion in self.suggestions.items():
            texts += [(f"suggestion {key}", text) for text in suggestion.templates()]
        for key, note in self.notes.items():
            texts.append((f"note {key}", note.text))
            if note.instead is not None and note.instead not in self.suggestions:
                raise ValueError(f"note {key}: unknown suggestion {note.instead!r}")
        for where, text in texts:
            undeclared = template_fields(text) - known
            if undeclared:
                raise ValueError(f"{where}: undeclared {sorted(undeclared)}")
            fill(text, {}, self.thresholds, lenient=True)  # a bad format spec fails here
        for name, variant in self.variants.items():
            longest = longest_summary(variant.summary, self.variables, self.thresholds)
            if len(longest) >= SUMMARY_LIMIT:
                raise ValueError(
                    f"variant {name}: summary can reach {len(longest)} characters (limit 139)"
                )
        return self

    def iron_products(self) -> dict[str, IronProduct]:
        """The suggestions of this card that give iron."""
        return {
            key: IronProduct(suggestion.iron.route, suggestion.iron.dose)
            for key, suggestion in self.suggestions.items()
            if suggestion.iron is not None
        }


class Threshold(float):
    """A threshold in card text: ``{x}`` is the number as the card file writes it,
    ``{x:period}`` a number of days as words (84 -> 12 weeks, 365 -> 12 months)."""

    def __format__(self, spec: str) -> str:
        if spec == "period":
            return period(float(self))
        return format(float(self), spec or "g")


def period(days: float) -> str:
    """Days as the unit a clinician would say: weeks up to half a year when exact, months up
    to two years, then years."""
    if days >= 730:
        return _plural(round(days / 365.25), "year")
    if days % 7 == 0 and days < 182:
        return _plural(round(days / 7), "week")
    if days >= 60:
        return _plural(round(days / 30.44), "month")
    return _plural(round(days), "day")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def template_fields(template: str) -> set[str]:
    """Names of the ``{placeholders}`` in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def fill(
    template: str,
    values: Mapping[str, str],
    thresholds: Mapping[str, float],
    lenient: bool = False,
) -> str:
    """The template with the card's thresholds and the finding's values filled in.

    `lenient` fills a missing value with nothing (load-time checks of the format).
    """
    fields: dict[str, object] = {name: Threshold(value) for name, value in thresholds.items()}
    fields.update(values)
    if lenient:
        fields.update({name: "" for name in template_fields(template) - set(fields)})
    return template.format_map(fields)


def longest_summary(
    template: str, variables: Mapping[str, int], thresholds: Mapping[str, float] | None = None
) -> str:
    """The summary with every variable at its declared maximum length."""
    return fill(template, {name: "x" * size for name, size in variables.items()}, thresholds or {})


@dataclass(frozen=True)
class Knowledge:
    """Card definitions by topic (in contract order) and value sets by id."""

    cards: Mapping[str, CardDefinition]
    value_sets: Mapping[str, ValueSet]
    directory: Path

    @property
    def thresholds(self) -> dict[str, Mapping[str, float]]:
        """Each topic's thresholds, for the rule engine."""
        return {topic: card.thresholds for topic, card in self.cards.items()}

    @property
    def dosing(self) -> dict[str, DrugDosing]:
        """The renal dose tables of every card, by drug key."""
        return {key: drug for card in self.cards.values() for key, drug in card.dosing.items()}

    @property
    def notes(self) -> dict[str, tuple[NoteDef, CardDefinition]]:
        """Every card note by key, with the card that defines it (its thresholds fill it)."""
        return {
            key: (note, card) for card in self.cards.values() for key, note in card.notes.items()
        }

    @property
    def iron_catalogue(self) -> IronCatalogue:
        """What the iron gate needs from the cards: who offers iron, and what replaces it."""
        return IronCatalogue(
            products={t: p for t, card in self.cards.items() if (p := card.iron_products())},
            defaults={
                topic: {name: variant.suggestions for name, variant in card.variants.items()}
                for topic, card in self.cards.items()
            },
            offered={topic: frozenset(card.suggestions) for topic, card in self.cards.items()},
            instead={key: note.instead for key, (note, _) in self.notes.items() if note.instead},
        )

    @classmethod
    def load(cls, directory: Path) -> Knowledge:
        """Load and check ``directory/*.toml`` and ``directory/valuesets/*.json``."""
        if not directory.is_dir():
            raise KnowledgeError(f"knowledge base {directory} is not a directory")
        try:
            value_sets = load_value_sets(directory / "valuesets")
        except ValueSetError as exc:
            raise KnowledgeError(f"valuesets/{exc}") from exc
        cards: dict[str, CardDefinition] = {}
        for path in sorted(directory.glob("*.toml")):
            try:
                card = CardDefinition.model_validate(tomllib.loads(path.read_text("utf-8")))
            except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
                raise KnowledgeError(f"{path.name}: {exc}") from exc
            if path.stem != card.topic:
                raise KnowledgeError(f"{path.name}: file name must be the topic {card.topic!r}")
            cards[card.topic] = card
        if not cards or not value_sets:
            raise KnowledgeError(f"{directory}: no card definitions or no value sets")
        wanted = {*REQUIRED_VALUE_SETS} | {
            drug.value_set for card in cards.values() for drug in card.dosing.values()
        }
        unknown = sorted(wanted - set(value_sets))
        if unknown:
            raise KnowledgeError(f"{directory}: the rules use unknown value sets {unknown}")
        _check_notes(cards)
        ordered = dict(sorted(cards.items(), key=lambda item: item[1].order))
        return cls(cards=ordered, value_sets=value_sets, directory=directory)


def _check_notes(cards: Mapping[str, CardDefinition]) -> None:
    """Note keys are unique across cards, and a card that offers iron offers every
    suggestion a gate note may put in place of a withheld one."""
    seen: dict[str, str] = {}
    for topic, card in cards.items():
        for key in card.notes:
            if key in seen:
                raise KnowledgeError(f"{topic}.toml: note {key!r} is also in {seen[key]}.toml")
            seen[key] = topic
    instead = {note.instead for card in cards.values() for note in card.notes.values()}
    for topic, card in cards.items():
        missing = (
            sorted(k for k in instead - set(card.suggestions) if k) if card.iron_products() else []
        )
        if missing:
            raise KnowledgeError(f"{topic}.toml offers iron but not {missing} (gate replacements)")
