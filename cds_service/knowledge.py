"""The knowledge base: card definitions (``cards/*.toml``) and value sets, loaded and checked once.

A definition that cannot work fails start-up with a message naming the file: an unknown
suggestion key, a template variable the card does not declare, a summary that could reach
140 characters, a suggestion resource that fhir.resources rejects.
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

    ``create`` builds the resource described here. ``delete`` and ``update`` act on the
    medication orders the rule names (one action per order); their description may say
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
            if described:
                raise ValueError("a create action's description takes no placeholders")
            return self
        if self.resource or self.text or self.coding or self.patient_instruction:
            raise ValueError(f"a {self.type} action acts on the rule's orders: no resource")
        if self.dosage_text or self.route or described - {"medication"}:
            raise ValueError(f"a {self.type} action may only use {{medication}}")
        return self


class SuggestionDef(_Strict):
    label: str = Field(min_length=1, max_length=200)
    recommended: bool = False
    actions: tuple[ActionDef, ...] = Field(min_length=1)


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
        for name, variant in self.variants.items():
            for key in variant.suggestions:
                if key not in self.suggestions:
                    raise ValueError(f"variant {name}: unknown suggestion {key!r}")
            for field_name in ("summary", "detail"):
                undeclared = template_fields(getattr(variant, field_name)) - set(self.variables)
                if undeclared:
                    raise ValueError(
                        f"variant {name} {field_name}: undeclared {sorted(undeclared)}"
                    )
            longest = longest_summary(variant.summary, self.variables)
            if len(longest) >= SUMMARY_LIMIT:
                raise ValueError(
                    f"variant {name}: summary can reach {len(longest)} characters (limit 139)"
                )
        return self


def template_fields(template: str) -> set[str]:
    """Names of the ``{placeholders}`` in a template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def longest_summary(template: str, variables: Mapping[str, int]) -> str:
    """The summary with every variable at its declared maximum length."""
    return template.format_map({name: "x" * size for name, size in variables.items()})


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
        ordered = dict(sorted(cards.items(), key=lambda item: item[1].order))
        return cls(cards=ordered, value_sets=value_sets, directory=directory)
