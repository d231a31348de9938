"""Which of our value sets a coded concept belongs to, and the name a card shows for it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.terminology import ValueSet, ValueSetIndex

_INDEXES: list[ValueSetIndex] = []


def value_set_index(value_sets: Mapping[str, ValueSet]) -> ValueSetIndex:
    """The index of a knowledge base's value sets, built once per mapping (not per hook)."""
    for index in _INDEXES:
        if index.value_sets is value_sets:
            return index
    index = ValueSetIndex(value_sets)
    _INDEXES[:] = [*_INDEXES[-7:], index]  # a few live knowledge bases at most (tests)
    return index


#: One call's answers, by question (its codes, names and value sets): a record repeats its
#: conditions' and drugs' codes (the benchmark's 50 of each carry 10). Made per call and
#: dropped with it, so it may hold the names themselves.
CallMemo = dict[
    tuple[tuple[tuple[str | None, str | None], ...], tuple[str, ...], Any], frozenset[str]
]


def members_of(
    value_sets: Mapping[str, ValueSet],
    concepts: Iterable[fr.CodeableConcept],
    among: Collection[str],
    memo: CallMemo | None = None,
) -> frozenset[str]:
    """The value sets (of `among`) that any code or name of the concepts belongs to; with
    `memo`, each question is answered once per call."""
    concepts = list(concepts)
    pairs = tuple([pair for concept in concepts for pair in concept.pairs()])
    texts = tuple([text for concept in concepts for text in concept.texts()])
    if memo is None:
        return frozenset(value_set_index(value_sets).members(pairs, texts, among))
    key = (pairs, texts, among)
    found = memo.get(key)
    if found is None:
        found = memo[key] = frozenset(value_set_index(value_sets).members(pairs, texts, among))
    return found


def display_name(
    concept: fr.CodeableConcept,
    members: frozenset[str],
    value_sets: Mapping[str, ValueSet],
    unnamed: str,
) -> str:
    """The concept's own text or display; else the display our value set gives its code;
    else the code itself, so a card never shows a coded problem as nameless."""
    label = concept.label()
    if label:
        return label
    for system, code in concept.pairs():
        for vs_id in members:
            display = value_sets[vs_id].display_for(system, code)
            if display:
                return display
    return next((code for _, code in concept.pairs() if code), unnamed)


def status_code(concept: fr.CodeableConcept | None) -> str | None:
    if concept is None:
        return None
    return next((c.code for c in concept.coding if c.code), None)
