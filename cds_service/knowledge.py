"""The knowledge base: card definitions (``cards/*.toml``) and value sets, loaded and checked once.

A definition that cannot work fails start-up with a message naming the file: an unknown
suggestion key, a template variable the card does not declare, a summary that could reach
140 characters, a suggestion resource that fhir.resources rejects, a card note named twice.

Card text may name the card's thresholds as template fields (``{tsat_low}`` renders
``20``; ``{iv_tsat_days:period}`` renders ``12 months``), so that a number in the text is
the number the rule uses.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.clinical.dosing import DrugDosing
from cds_service.clinical.engine import CRITICAL_AT_SIGNING
from cds_service.clinical.facts import REQUIRED_VALUE_SETS
from cds_service.clinical.indications import IndicationDef
from cds_service.clinical.iron_gate import IronCatalogue, IronProduct
from cds_service.clinical.terminology import ValueSet

TOPIC_SYSTEM = "urn:rls-cds:card-topic"
OVERRIDE_REASON_SYSTEM = "urn:rls-cds:override-reason"
SUMMARY_LIMIT = 140  # the spec: summary SHALL be shorter than 140 characters
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
#: A word with a digit in it ("24", "0.90", "G3a"): a number typed into card text.
_NUMBER = re.compile(r"[^\s(),;:]*\d[^\s(),;:]*")


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
    source: LinkDef | None = None
    """Overrides the card's source, where the evidence differs by variant (kidney stage)."""
    links: tuple[LinkDef, ...] | None = None
    """Overrides the card's links (with `source`)."""


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
    indications: Mapping[str, IndicationDef] = Field(default_factory=dict)
    """What a drug of this card may be given for (the sedating-antihistamine card)."""
    prose_literals: tuple[str, ...] = ()
    """Phrases with digits the card's text may contain as written (a drug strength in a
    suggestion label, "HbA1c"); every other number must be a threshold or a variable."""

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
        problems = self.problems()
        if problems:
            raise ValueError("\n".join(f"{where}: {what}" for where, what in problems))
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Every inconsistency of the card, as (field, problem): all of them, so that a
        clinical owner fixes a file in one pass (``rls-cds kb check``)."""
        found: list[tuple[str, str]] = []
        both = set(self.variables) & set(self.thresholds)
        if both:
            found.append(("variables", f"names both a variable and a threshold: {sorted(both)}"))
        known = set(self.variables) | set(self.thresholds)
        for name, variant in self.variants.items():
            for key in variant.suggestions:
                if key not in self.suggestions:
                    found.append((f"variants.{name}.suggestions", f"unknown suggestion {key!r}"))
        for key, note in self.notes.items():
            if note.instead is not None and note.instead not in self.suggestions:
                found.append((f"notes.{key}.instead", f"unknown suggestion {note.instead!r}"))
        for where, text in self.texts():
            # a delete or update acts on the rule's orders and names each: {medication}
            names_order = where.endswith(".description") and "{medication}" in text
            undeclared = template_fields(text) - known - ({"medication"} if names_order else set())
            if undeclared:
                found.append((where, f"undeclared {sorted(undeclared)}"))
                continue
            try:
                fill(text, {"medication": ""}, self.thresholds, lenient=True)
            except (ValueError, KeyError, IndexError) as exc:
                found.append((where, f"bad placeholder format: {exc}"))
                continue
            if not where.endswith(".dosage_text"):  # a dose instruction in a resource
                found += [(where, problem) for problem in self._typed_numbers(text)]
        for name, variant in self.variants.items():
            try:
                longest = longest_summary(variant.summary, self.variables, self.thresholds)
            except (ValueError, KeyError, IndexError):
                continue  # reported above
            if len(longest) >= SUMMARY_LIMIT:
                found.append(
                    (
                        f"variants.{name}.summary",
                        f"summary can reach {len(longest)} characters (limit 139)",
                    )
                )
        for name in CRITICAL_AT_SIGNING:
            critical = self.variants.get(f"draft-{name}")
            if critical is not None and not any(
                action.type == "delete"
                for key in critical.suggestions
                if key in self.suggestions
                for action in self.suggestions[key].actions
            ):
                found.append(
                    (
                        f"variants.draft-{name}.suggestions",
                        "a card that can be critical must offer cancelling the order",
                    )
                )
        return found

    def texts(self) -> list[tuple[str, str]]:
        """Every text of the card a clinician reads, with the field it is in."""
        texts: list[tuple[str, str]] = []
        for name, variant in self.variants.items():
            texts += [(f"variants.{name}.summary", variant.summary)]
            texts += [(f"variants.{name}.detail", variant.detail)]
        for key, suggestion in self.suggestions.items():
            texts.append((f"suggestions.{key}.label", suggestion.label))
            for index, action in enumerate(suggestion.actions):
                texts.append(
                    (f"suggestions.{key}.actions[{index}].description", action.description)
                )
                if action.dosage_text:
                    texts.append(
                        (f"suggestions.{key}.actions[{index}].dosage_text", action.dosage_text)
                    )
        for key, note in self.notes.items():
            texts.append((f"notes.{key}.text", note.text))
        for key, indication in self.indications.items():
            texts.append((f"indications.{key}.advice", indication.advice))
        for key, drug in self.dosing.items():
            texts.append((f"dosing.{key}.instead", drug.instead))
        return texts

    def _typed_numbers(self, text: str) -> list[str]:
        """Numbers typed into the text: every number a clinician reads must come from a
        threshold or the patient's data (a placeholder), or be one of the card's
        ``prose_literals`` (a drug strength in a suggestion, a name such as HbA1c)."""
        bare = _PLACEHOLDER.sub(" ", text)
        for literal in self.prose_literals:
            bare = bare.replace(literal, " ")
        return [
            f"typed number {word!r}: use a threshold placeholder, or list it in prose_literals"
            for word in _NUMBER.findall(bare)
        ]

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
    def indications(self) -> dict[str, IndicationDef]:
        """The indications of every card, by key."""
        return {k: i for card in self.cards.values() for k, i in card.indications.items()}

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
        """Load and check ``directory/*.toml`` and ``directory/valuesets/*.json``; every
        problem found is in the error, one a line, with its file and field."""
        knowledge, problems, _ = cls.read(directory)
        if problems or knowledge is None:
            raise KnowledgeError("\n".join(str(p) for p in problems) or f"{directory}: unusable")
        return knowledge

    @classmethod
    def read(
        cls, directory: Path
    ) -> tuple[Knowledge | None, list[Problem], dict[str, CardDefinition]]:
        """The knowledge base, every problem in it, and the card files that read on their own
        (the knowledge is None when there is any problem). ``rls-cds kb check`` reports all
        of them at once."""
        if not directory.is_dir():
            return None, [Problem(str(directory), "-", "the knowledge base is not a directory")], {}
        problems: list[Problem] = []
        value_sets: dict[str, ValueSet] = {}
        for path in sorted((directory / "valuesets").glob("*.json")):
            where = f"valuesets/{path.name}"
            try:
                value_set = ValueSet.from_resource(json.loads(path.read_text("utf-8")))
            except (OSError, ValueError) as exc:
                problems.append(Problem(where, "-", str(exc)))
                continue
            if value_set.id in value_sets:
                problems.append(Problem(where, "id", f"duplicate ValueSet id {value_set.id!r}"))
            value_sets[value_set.id] = value_set
        cards: dict[str, CardDefinition] = {}
        for path in sorted(directory.glob("*.toml")):
            try:
                card = CardDefinition.model_validate(tomllib.loads(path.read_text("utf-8")))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                problems.append(Problem(path.name, "-", str(exc)))
                continue
            except ValidationError as exc:
                problems += _validation_problems(path.name, exc)
                continue
            if path.stem != card.topic:
                problems.append(
                    Problem(path.name, "topic", f"file name must be the topic {card.topic!r}")
                )
            cards[card.topic] = card
        if not cards or not value_sets:
            problems.append(Problem(str(directory), "-", "no card definitions or no value sets"))
        wanted = {value_set: "the rules" for value_set in REQUIRED_VALUE_SETS}
        for topic, card in cards.items():
            for key, drug in card.dosing.items():
                wanted.setdefault(drug.value_set, f"{topic}.toml dosing.{key}")
            for key, indication in card.indications.items():
                for used in (indication.value_set, indication.drugs):
                    if used:
                        wanted.setdefault(used, f"{topic}.toml indications.{key}")
        for used, user in sorted(wanted.items()):
            if used not in value_sets and value_sets:
                problems.append(Problem(f"valuesets/{used}.json", "-", f"missing: {user} use it"))
        problems += _note_problems(cards)
        if problems:
            return None, problems, cards
        ordered = dict(sorted(cards.items(), key=lambda item: item[1].order))
        return cls(cards=ordered, value_sets=value_sets, directory=directory), [], cards


@dataclass(frozen=True)
class Problem:
    """One problem of a knowledge base: the file, the field in it, and what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


_FIELD_LINE = re.compile(r"^([A-Za-z0-9_.\[\]-]+): (.+)$")


def _validation_problems(file: str, exc: ValidationError) -> list[Problem]:
    """One problem per pydantic error, and per line of a card's own consistency check."""
    problems: list[Problem] = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "-"
        message = str(error["msg"]).removeprefix("Value error, ")
        for line in message.splitlines():
            match = _FIELD_LINE.match(line) if where == "-" else None
            if match:
                problems.append(Problem(file, match.group(1), match.group(2)))
            else:
                problems.append(Problem(file, where, line))
    return problems


def _note_problems(cards: Mapping[str, CardDefinition]) -> list[Problem]:
    """Note keys are unique across cards, and a card that offers iron offers every
    suggestion a gate note may put in place of a withheld one."""
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for topic, card in cards.items():
        for key in card.notes:
            if key in seen:
                problems.append(
                    Problem(f"{topic}.toml", f"notes.{key}", f"also in {seen[key]}.toml")
                )
            seen.setdefault(key, topic)
    instead = {note.instead for card in cards.values() for note in card.notes.values()}
    for topic, card in cards.items():
        missing = (
            sorted(k for k in instead - set(card.suggestions) if k) if card.iron_products() else []
        )
        if missing:
            problems.append(
                Problem(
                    f"{topic}.toml",
                    "suggestions",
                    f"offers iron but not {missing} (gate replacements)",
                )
            )
    return problems
