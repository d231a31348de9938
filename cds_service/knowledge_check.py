"""``rls-cds kb check [DIR]``: every problem of a card directory at once, with file and field.

A clinical owner edits ``cards/`` and runs this before a release. It reports what the service
would refuse at start-up (a file that does not parse, an unknown field, a placeholder the card
does not declare, a number typed into card text, a summary that can reach 140 characters, a
missing value set, a critical card that cannot cancel the order) and what would only fail on
first use: a suggested resource that is not valid FHIR R4, a card without a rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cds_service.clinical.engine import Engine
from cds_service.knowledge import CardDefinition, Knowledge, Problem
from cds_service.suggestions import SuggestionError, build_resource

_PROBE = datetime(2026, 1, 1, tzinfo=UTC)


def check_directory(directory: Path) -> list[Problem]:
    """Every problem of the knowledge base in `directory` (none: it is fit to ship)."""
    knowledge, problems, cards = Knowledge.read(directory)
    for card in cards.values():
        problems += _resource_problems(card)
    if knowledge is not None:
        try:
            Engine(
                knowledge.thresholds,
                knowledge.dosing,
                knowledge.iron_catalogue,
                knowledge.indications,
            )
        except ValueError as exc:
            problems.append(Problem(str(directory), "-", str(exc)))
    return problems


def _resource_problems(card: CardDefinition) -> list[Problem]:
    """The suggested resources of a card that fhir.resources rejects."""
    problems = []
    for key, suggestion in card.suggestions.items():
        for index, action in enumerate(suggestion.actions):
            if action.type != "create":
                continue
            try:
                build_resource(action, "-", _PROBE)
            except SuggestionError as exc:
                where = f"suggestions.{key}.actions[{index}]"
                problems.append(Problem(f"{card.topic}.toml", where, str(exc)))
    return problems


def report(directory: Path, problems: list[Problem]) -> str:
    """The lines `kb check` prints."""
    if not problems:
        return f"{directory}: knowledge base OK"
    lines = [str(problem) for problem in problems]
    lines.append(f"{directory}: {len(problems)} problem(s)")
    return "\n".join(lines)
