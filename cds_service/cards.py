"""Findings + card definitions -> CDS Hooks cards (plain dicts ready for the response).

Card text comes from ``cards/*.toml``; patient-derived text is escaped before it reaches
markdown, and every card ends with the data it used and the dates of that data, so the
clinician can judge how fresh it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from cds_service import card_ids
from cds_service.clinical.findings import CardNote, Evidence, Finding
from cds_service.knowledge import (
    SUMMARY_LIMIT,
    TOPIC_SYSTEM,
    ActionDef,
    CardDefinition,
    Knowledge,
    KnowledgeError,
    LinkDef,
    NoteDef,
    VariantDef,
    fill,
    template_fields,
)
from cds_service.suggestions import SuggestionError, build_resource, validated_update

INDICATOR_RANK = {"critical": 0, "warning": 1, "info": 2}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~])")

NewId = Callable[[], str]


def escape_markdown(text: str) -> str:
    """Neutralise markdown and HTML in text that came from patient data."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))


class CardRenderer:
    """Turns findings into cards.

    Every created resource is built and validated with fhir.resources once, here; a card
    then carries a copy with only the patient reference and the authoring time filled in,
    so validation stays off the hot path (docs/design.md) without an unvalidated resource ever
    leaving the service.
    """

    def __init__(self, knowledge: Knowledge, new_id: NewId = card_ids.new_id):
        self._cards = knowledge.cards
        self._notes = knowledge.notes
        self._new_id = new_id
        # Keyed by where the action is written (topic, suggestion, position), not by the
        # object's id(), which a rebuilt knowledge object could reuse for another action.
        self._validated: dict[tuple[str, str, int], bytes] = {}
        probe = datetime(2026, 1, 1, tzinfo=UTC)
        for card in self._cards.values():
            for key, suggestion in card.suggestions.items():
                for position, action in enumerate(suggestion.actions):
                    if action.type != "create":
                        continue
                    try:
                        resource = build_resource(action, "-", probe)
                        self._validated[card.topic, key, position] = orjson.dumps(resource)
                    except SuggestionError as exc:
                        raise KnowledgeError(f"{card.topic}.toml suggestion {key}: {exc}") from exc

    def _created(
        self,
        where: tuple[str, str, int],
        action: ActionDef,
        text: Callable[[str], str],
        patient_id: str,
        now: datetime,
    ) -> dict[str, Any]:
        resource = orjson.loads(self._validated[where])  # a fresh copy, 10x a deepcopy
        resource["subject"] = {"reference": f"Patient/{patient_id}"}
        resource["authoredOn"] = now.isoformat(timespec="seconds").replace("+00:00", "Z")
        if action.dosage_text and template_fields(action.dosage_text):
            # Only a string changes, so the resource stays as valid as it was validated.
            resource["dosageInstruction"][0]["text"] = text(action.dosage_text)
        return resource

    def render(self, findings: Iterable[Finding], patient_id: str, now: datetime) -> list[dict]:
        """Cards for the findings, one per topic, ordered by indicator then contract order."""
        by_topic: dict[str, Finding] = {}
        for finding in findings:
            by_topic.setdefault(finding.topic, finding)
        cards = [
            (self._cards[f.topic], self._card(self._cards[f.topic], f, patient_id, now))
            for f in by_topic.values()
        ]
        cards.sort(key=lambda pair: (INDICATOR_RANK[pair[1]["indicator"]], pair[0].order))
        return [card for _, card in cards]

    def _card(
        self, definition: CardDefinition, finding: Finding, patient_id: str, now: datetime
    ) -> dict[str, Any]:
        variant = definition.variants[finding.variant]
        values = _clip(finding.values, definition.variables)
        summary = fill(variant.summary, values, definition.thresholds)
        if len(summary) >= SUMMARY_LIMIT:  # unreachable if the load-time check holds
            summary = summary[: SUMMARY_LIMIT - 2] + "…"
        keys = variant.suggestions if finding.suggestions is None else finding.suggestions
        notes = [self._note(note) for note in finding.card_notes]
        notes += [escape_markdown(note) for note in finding.notes]
        suggestions = []
        options = [(key, *finding.companions) for key in keys]
        if finding.companions:
            options.append(finding.companions)
        for option in options:
            try:
                suggestion = self._suggestion(definition, option, finding, patient_id, now)
            except SuggestionError:
                notes.append(
                    "A one-click change of the order could not be offered: the order as "
                    "recorded is not valid FHIR R4."
                )
                continue
            if suggestion is not None:
                suggestions.append(suggestion)
        source, links = _evidence(definition, variant, finding)
        card: dict[str, Any] = {
            "uuid": self._new_id(),
            "summary": summary,
            "indicator": finding.indicator or variant.indicator or definition.indicator,
            "detail": _detail(
                fill(variant.detail, _escaped(values), definition.thresholds), notes, finding
            ),
            "source": {
                "label": source.label,
                "url": source.url,
                "topic": {
                    "system": TOPIC_SYSTEM,
                    "code": definition.topic,
                    "display": definition.display,
                },
            },
        }
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        reasons = (
            variant.override_reasons
            if variant.override_reasons is not None
            else definition.override_reasons
        )
        if reasons:
            card["overrideReasons"] = [r.model_dump() for r in reasons]
        if links:
            card["links"] = [
                {"label": link.label, "url": link.url, "type": "absolute"} for link in links
            ]
        return card

    def _note(self, note: CardNote) -> str:
        """A card note's sentence, filled with its values and its card's thresholds."""
        definition: NoteDef
        definition, owner = self._notes[note.key]
        return fill(definition.text, _escaped(note.values), owner.thresholds)

    def _suggestion(
        self,
        definition: CardDefinition,
        keys: tuple[str, ...],
        finding: Finding,
        patient_id: str,
        now: datetime,
    ) -> dict[str, Any] | None:
        """One suggestion made of the actions of `keys` (a suggestion and its companions),
        or None when the first has nothing to act on (no order to delete)."""
        values = _clip(finding.values, definition.variables)

        def text(template: str) -> str:
            return fill(template, values, definition.thresholds)

        actions: list[dict[str, Any]] = []
        for index, key in enumerate(keys):
            found = self._actions(definition, key, finding, text, patient_id, now)
            if index == 0 and not found:
                return None
            actions += found
        rendered: dict[str, Any] = {
            "label": "; ".join(text(definition.suggestions[key].label) for key in keys),
            "uuid": self._new_id(),
            "actions": actions,
        }
        if definition.suggestions[keys[0]].recommended:
            rendered["isRecommended"] = True
        return rendered

    def _actions(
        self,
        definition: CardDefinition,
        key: str,
        finding: Finding,
        text: Callable[[str], str],
        patient_id: str,
        now: datetime,
    ) -> list[dict[str, Any]]:
        """The actions of one suggestion: resources it creates, orders it deletes or updates."""
        suggestion = definition.suggestions[key]
        actions: list[dict[str, Any]] = []
        for position, action in enumerate(suggestion.actions):
            if action.type == "create":
                where = (definition.topic, key, position)
                actions.append(
                    {
                        "type": "create",
                        "description": text(action.description),
                        "resource": self._created(where, action, text, patient_id, now),
                    }
                )
                continue
            for target in finding.targets:
                rendered_action: dict[str, Any] = {
                    "type": action.type,
                    "description": action.description.format(medication=target.name),
                }
                if action.type == "delete":
                    rendered_action["resourceId"] = target.reference
                elif target.update is not None:
                    rendered_action["resource"] = validated_update(target.update)
                else:
                    continue
                actions.append(rendered_action)
        return actions


def _clip(values: Mapping[str, str], limits: Mapping[str, int]) -> dict[str, str]:
    """Template values cut to their declared length, so summaries stay under the limit."""
    clipped = {}
    for name, limit in limits.items():
        value = values.get(name, "")
        clipped[name] = value if len(value) <= limit else value[: limit - 1] + "…"
    return clipped


def _escaped(values: Mapping[str, str]) -> dict[str, str]:
    return {k: escape_markdown(v) for k, v in values.items()}


def _evidence(
    definition: CardDefinition, variant: VariantDef, finding: Finding
) -> tuple[Evidence | LinkDef, tuple[Evidence | LinkDef, ...]]:
    """The card's source and links: the finding's (the label of the drug a dose card is
    about), else the variant's (the kidney card's source matches the stage), else the card's.
    Each is cited once: in ``source`` and ``links``, never again in the detail."""
    if finding.evidence:
        first, *rest = finding.evidence
        return first, tuple(rest)
    source = variant.source or definition.source
    links = variant.links if variant.links is not None else definition.links
    return source, tuple(link for link in links if link.url != source.url)


def _detail(text: str, notes: list[str], finding: Finding) -> str:
    """The detail paragraphs, the notes (already markdown-safe) and the data used."""
    parts = [" ".join(paragraph.split()) for paragraph in text.strip().split("\n\n")]
    parts += [f"**Note:** {' '.join(note.split())}" for note in notes]
    if finding.data:
        lines = ["**Data used**", ""]
        for point in finding.data:
            when = point.when.date().isoformat() if point.when else "date unknown"
            lines.append(
                f"- {escape_markdown(point.label)}: {escape_markdown(point.value)} ({when})"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
