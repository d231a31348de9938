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
    type: Literal["create"]
    description: str = Field(min_length=1)
    resource: Literal["ServiceRequest", "MedicationRequest"]
    text: str = Field(min_length=1)
    coding: tuple[CodingDef, ...] = ()
    patient_instruction: str | None = None
    dosage_text: str | None = None
    route: CodingDef | None = None


class SuggestionDef(_Strict):
    label: str = Field(min_length=1, max_length=200)
    recommended: bool = False
    actions: tuple[ActionDef, ...] = Field(min_length=1)


class VariantDef(_Strict):
    summary: str = Field(min_length=1)
    detail: str = Field(min_length=1)
    suggestions: tuple[str, ...] = ()


class CardDefinition(_Strict):
    """One card topic as written in ``cards/<topic>.toml``."""

    topic: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    display: str = Field(min_length=1)
    order: int = Field(ge=1)
    indicator: Literal["info", "warning", "critical"]
    thresholds: Mapping[str, float] = Field(default_factory=dict)
    source: LinkDef
    links: tuple[LinkDef, ...] = ()
    variables: Mapping[str, int] = Field(default_factory=dict)
    variants: Mapping[str, VariantDef] = Field(min_length=1)
    suggestions: Mapping[str, SuggestionDef] = Field(default_factory=dict)
    override_reasons: tuple[CodingDef, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _reason_system(cls, data: dict) -> dict:
        for reason in data.get("override_reasons", []):
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
        ordered = dict(sorted(cards.items(), key=lambda item: item[1].order))
        return cls(cards=ordered, value_sets=value_sets, directory=directory)
