"""Value sets loaded from FHIR ValueSet JSON, and the rules for matching codes against them.

A code matches by (system, code), never by code alone: LOINC 2106-3 is also the CDC race code
"White". ICD-10-CM entries flagged as covering their descendants match by the code hierarchy
(``I83.9`` covers ``I83.91``; ``I83`` covers ``I83.9`` but ``I8`` covers nothing it is not
an ancestor of), never by a raw string prefix.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import marshal
import sys
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cds_service.clinical.text_scan import Atom, PhraseTable, Steps, tokens, words

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"

#: ValueSet.expansion.contains extension marking an ICD-10-CM entry that covers its children.
INCLUDES_DESCENDANTS = "urn:rls-cds:fhir:includes-descendants"
#: ValueSet extension holding a phrase that, found in a display or text, means a member.
TEXT_MATCH = "urn:rls-cds:fhir:text-match"
#: ValueSet.expansion.contains extension marking an ICD-10-CM subcategory whose codes add one
#: character saying the trimester (pregnancy codes: 1, 2, 3; 0 or 9 unspecified; else
#: childbirth or the puerperium).
TRIMESTER_CHARACTER = "urn:rls-cds:fhir:trimester-character"

_SYSTEM_ALIASES = {
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://hl7.org/fhir/sid/icd-10-us": ICD10CM,
    "http://www.nlm.nih.gov/research/umls/rxnorm/": RXNORM,
    "http://snomed.info/sct/": SNOMED,
}


class ValueSetError(ValueError):
    """Raised when a ValueSet file cannot serve as a value set for matching."""


def canonical_system(system: str | None) -> str | None:
    """Map OID and legacy spellings of a code system to its canonical URI."""
    if system is None:
        return None
    system = system.strip()
    return _SYSTEM_ALIASES.get(system, system)


def normalise_icd10(code: str) -> str:
    """Upper-case and dot an ICD-10-CM code (``g2581`` -> ``G25.81``)."""
    code = code.strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


def icd10_ancestors(code: str) -> list[str]:
    """The code and every ancestor in the ICD-10-CM hierarchy, nearest first.

    ``I83.913`` -> ``I83.913, I83.91, I83.9, I83``: the category is the first three
    characters and each further character after the dot is one level deeper.
    """
    code = normalise_icd10(code)
    category, _, rest = code.partition(".")
    found = [code]
    for end in range(len(rest) - 1, 0, -1):
        found.append(f"{category}.{rest[:end]}")
    if rest:
        found.append(category)
    return found


def _key(system: str | None, code: str | None) -> tuple[str, str] | None:
    system = canonical_system(system)
    if not system or not code or not code.strip():
        return None
    code = normalise_icd10(code) if system == ICD10CM else code.strip()
    return system, code


@dataclass(frozen=True)
class Concept:
    """One member of a value set."""

    system: str
    code: str
    display: str


@dataclass(frozen=True)
class ValueSet:
    """A value set ready for matching: exact members, hierarchical ICD-10-CM roots, phrases."""

    id: str
    url: str
    title: str
    concepts: tuple[Concept, ...]
    exact: frozenset[tuple[str, str]] = field(repr=False)
    icd10_roots: frozenset[str] = field(repr=False)
    phrases: tuple[tuple[Atom, ...], ...] = field(repr=False, default=())
    """The text-match phrases, as token atoms (see text_scan.words)."""
    trimester_roots: frozenset[str] = field(repr=False, default=frozenset())
    """ICD-10-CM subcategories whose codes carry a trimester character right after them."""

    @classmethod
    def from_resource(cls, resource: dict) -> ValueSet:
        """Build from a FHIR ValueSet with ``expansion.contains``."""
        if resource.get("resourceType") != "ValueSet":
            raise ValueSetError("not a ValueSet resource")
        vs_id = resource.get("id")
        contains = (resource.get("expansion") or {}).get("contains")
        if not vs_id or not resource.get("url") or not contains:
            raise ValueSetError(f"ValueSet {vs_id!r} needs id, url and expansion.contains")
        concepts, exact, roots, trimester_roots = [], set(), set(), set()
        for entry in contains:
            key = _key(entry.get("system"), entry.get("code"))
            if key is None or not entry.get("display"):
                raise ValueSetError(f"ValueSet {vs_id}: entry without system, code or display")
            concepts.append(Concept(key[0], key[1], entry["display"]))
            exact.add(key)
            if _flag(entry, INCLUDES_DESCENDANTS):
                if key[0] != ICD10CM:
                    raise ValueSetError(f"ValueSet {vs_id}: only ICD-10-CM entries have children")
                roots.add(key[1])
            if _flag(entry, TRIMESTER_CHARACTER):
                if key[1] not in roots:
                    raise ValueSetError(
                        f"ValueSet {vs_id}: a trimester-character entry must include descendants"
                    )
                trimester_roots.add(key[1])
        phrases = _phrases(
            vs_id,
            [
                ext["valueString"]
                for ext in resource.get("extension", [])
                if ext.get("url") == TEXT_MATCH and ext.get("valueString")
            ],
        )
        return cls(
            id=vs_id,
            url=resource["url"],
            title=resource.get("title") or resource.get("name") or vs_id,
            concepts=tuple(concepts),
            exact=frozenset(exact),
            icd10_roots=frozenset(roots),
            phrases=phrases,
            trimester_roots=frozenset(trimester_roots),
        )

    def has_code(self, system: str | None, code: str | None) -> bool:
        """True when (system, code) is a member, ICD-10-CM descendants included."""
        key = _key(system, code)
        if key is None:
            return False
        if key in self.exact:
            return True
        if key[0] == ICD10CM and self.icd10_roots:
            return any(a in self.icd10_roots for a in icd10_ancestors(key[1]))
        return False

    def trimester_character(self, system: str | None, code: str | None) -> str | None:
        """The character after the nearest trimester-character subcategory the code is in.

        ``O99.352`` under ``O99.35`` -> ``"2"``; ``O13.1`` under ``O13`` -> ``"1"``; the
        subcategory itself, or a code in no such subcategory, -> None.
        """
        key = _key(system, code)
        if key is None or key[0] != ICD10CM or not self.trimester_roots:
            return None
        flat = key[1].replace(".", "")
        for ancestor in icd10_ancestors(key[1]):
            if ancestor in self.trimester_roots:
                root = ancestor.replace(".", "")
                return flat[len(root)] if len(flat) > len(root) else None
        return None

    def display_for(self, system: str | None, code: str | None) -> str | None:
        """The value set's display for a member code (exact members only)."""
        key = _key(system, code)
        return next((c.display for c in self.concepts if key == (c.system, c.code)), None)

    def names_in(self, text: str | None) -> bool:
        """True when one of the value set's phrases appears in free text (whole words)."""
        if not text or not self.phrases:
            return False
        return bool(PhraseTable([(atoms, True) for atoms in self.phrases]).labels_in(tokens(text)))

    def codes_for(self, system: str) -> list[str]:
        """Member codes of one system, in file order (used to render prefetch queries)."""
        return [c.code for c in self.concepts if c.system == system]


class ValueSetIndex:
    """Which value sets a coded or named concept belongs to, in one pass over its codes.

    Looking a code up in every value set in turn costs (codes x value sets) for each
    resource; this index answers with one dictionary lookup per code (and per ICD-10-CM
    ancestor) and one linear scan per text for the phrases of every value set at once
    (text_scan).
    Answers are remembered (records repeat the same codes and drug names, and so do
    patients), up to MEMO_BYTES of memory; then the memory starts afresh. A question is
    remembered by a digest of its codes and texts, never by the texts themselves: a record's
    long free texts must not outlive the call that sent them.
    """

    MEMO_BYTES = 4 * 1024 * 1024
    #: The dictionary slot of one remembered answer, beside its key and answer objects.
    SLOT_BYTES = 100

    def __init__(self, value_sets: Mapping[str, ValueSet]):
        self.value_sets = value_sets
        self._exact: dict[tuple[str, str], set[str]] = {}
        self._roots: dict[str, set[str]] = {}
        for vs_id, value_set in value_sets.items():
            for key in value_set.exact:
                self._exact.setdefault(key, set()).add(vs_id)
            for root in value_set.icd10_roots:
                self._roots.setdefault(root, set()).add(vs_id)
        self._phrases = PhraseTable(
            [(atoms, vs_id) for vs_id, vs in value_sets.items() for atoms in vs.phrases]
        )
        self._memo: dict[bytes, frozenset[str]] = {}
        self.memo_bytes = 0

    def forget(self) -> None:
        """Drop the remembered lookups (the benchmarks measure a record never seen before)."""
        self._memo.clear()
        self.memo_bytes = 0

    def members(
        self,
        pairs: Iterable[tuple[str | None, str | None]],
        texts: Iterable[str],
        among: Collection[str],
    ) -> frozenset[str]:
        """Ids (of those in `among`) of the value sets any code or text belongs to."""
        pairs, texts = tuple(pairs), tuple(texts)
        if not isinstance(among, tuple | frozenset):
            among = frozenset(among)
        question = _digest(pairs, texts, among)
        found = self._memo.get(question)
        if found is None:
            found = self._members(pairs, texts, among)
            cost = self.SLOT_BYTES + sys.getsizeof(question) + sys.getsizeof(found)
            if self.memo_bytes + cost > self.MEMO_BYTES:
                self.forget()
            self._memo[question] = found
            self.memo_bytes += cost
        return found

    def _members(
        self,
        pairs: tuple[tuple[str | None, str | None], ...],
        texts: tuple[str, ...],
        among: Collection[str],
    ) -> frozenset[str]:
        found: set[str] = set()
        for system, code in pairs:
            key = _key(system, code)
            if key is None:
                continue
            found |= self._exact.get(key, set())
            if key[0] == ICD10CM and self._roots:
                for ancestor in icd10_ancestors(key[1]):
                    found |= self._roots.get(ancestor, set())
        wanted = among if isinstance(among, frozenset) else frozenset(among)
        found &= wanted
        if self._phrases:
            for text in texts:
                found |= self.named_in(text) & wanted
        return frozenset(found)

    def named_in(self, text: str, steps: Steps | None = None) -> set[str]:
        """Ids of the value sets whose phrases appear in `text` (whole words, any case)."""
        return self._phrases.labels_in(tokens(text, steps), steps)


def _digest(
    pairs: tuple[tuple[str | None, str | None], ...], texts: tuple[str, ...], among: Collection[str]
) -> bytes:
    """16 bytes naming one membership question.

    Written by marshal (version 2: no back-references), whose bytes are type-tagged and
    length-prefixed, so no two questions write the same; `among` as the number it was
    given when first asked (the readers ask with a few constant collections, and writing
    their twenty names was most of the cost).
    """
    written = marshal.dumps((pairs, texts, _number(among)), 2)
    return hashlib.blake2b(written, digest_size=16).digest()


_NUMBERS: dict[Collection[str], int | tuple[str, ...]] = {}
_NEXT_NUMBER = itertools.count()


def _number(among: Collection[str]) -> int | tuple[str, ...]:
    """A number for `among`, the same each time (its sorted names once 256 are given)."""
    found = _NUMBERS.get(among)
    if found is None:
        if len(_NUMBERS) >= 256:
            return tuple(sorted(among))
        found = _NUMBERS.setdefault(among, next(_NEXT_NUMBER))  # atomic: one number wins
    return found


def _flag(entry: dict, url: str) -> bool:
    return any(e.get("url") == url and e.get("valueBoolean") for e in entry.get("extension", []))


def _phrases(vs_id: str, phrases: list[str]) -> tuple[tuple[Atom, ...], ...]:
    """Whole words, any case; "Willis-Ekbom" also matches "Willis Ekbom" and "Willis–Ekbom"
    (any run of spaces, hyphens and dashes between words)."""
    try:
        return tuple(words(phrase) for phrase in phrases)
    except ValueError as exc:
        raise ValueSetError(f"ValueSet {vs_id}: {exc}") from None


def load_value_sets(directory: Path) -> dict[str, ValueSet]:
    """Load every ``*.json`` ValueSet in `directory`, keyed by id; ids must be unique."""
    value_sets: dict[str, ValueSet] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
            value_set = ValueSet.from_resource(resource)
        except (OSError, json.JSONDecodeError, ValueSetError) as exc:
            raise ValueSetError(f"{path.name}: {exc}") from exc
        if value_set.id in value_sets:
            raise ValueSetError(f"{path.name}: duplicate ValueSet id {value_set.id!r}")
        value_sets[value_set.id] = value_set
    return value_sets


def any_member(value_set: ValueSet, codings: Iterable[tuple[str | None, str | None]]) -> bool:
    """True when any (system, code) pair is in the value set."""
    return any(value_set.has_code(system, code) for system, code in codings)
