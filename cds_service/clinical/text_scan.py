"""Free text cut into tokens in one linear pass: the base of dose sigs and value-set phrases.

Patterns that combine quantifiers (``\\d+(?:\\.\\d+)?\\s*mg``) backtrack: on a run of digits
that never ends in "mg", each start position rescans the run, and a 10,000-digit sig costs
seconds of CPU. Here the only regular expression is ``_TOKEN``, whose alternatives are each
one character class repeated (or a single character), and every character falls in exactly
one class. At any position the engine therefore consumes one maximal run and stops, with
nothing after the run to backtrack for; ``finditer`` resumes where the run ended. Its cost
is linear in the text (``tests/security/test_linear_text.py`` checks the pattern's
structure). Everything that combines tokens (amounts, phrases) is plain Python over the
token list, and counts its work in a :class:`Steps` so tests can show it is linear too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from cds_service.clinical.text import normalise

Label = TypeVar("Label")
Kind = Literal["number", "word", "under", "space", "mark"]

#: digits | letters (and other word characters that are not digits or "_") | underscores |
#: whitespace | any other single character; the group that matched names the kind.
_TOKEN = re.compile(r"(\d+)|([^\W\d_]+)|(_+)|(\s+)|([^\w\s])")
_KIND_OF_GROUP: dict[int, Kind] = {1: "number", 2: "word", 3: "under", 4: "space", 5: "mark"}
#: Token kinds that are word characters (``\w``): a phrase boundary lies between a word
#: token and anything else.
WORDLIKE: frozenset[Kind] = frozenset({"number", "word", "under"})


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str
    """Lower case for words; as written otherwise."""


@dataclass
class Steps:
    """Work done while reading text: one step per token made or compared."""

    count: int = 0

    def add(self, steps: int = 1) -> None:
        self.count += steps


def tokens(text: str, steps: Steps | None = None) -> list[Token]:
    """The tokens of `text` in its matching form (``text.normalise``: NFKC, no format
    characters or combining marks), in order; together they spell that form exactly."""
    text = normalise(text)
    found = [
        Token(kind, piece.lower() if kind == "word" else piece)
        for match in _TOKEN.finditer(text)
        for kind, piece in ((_KIND_OF_GROUP[match.lastindex or 5], match.group()),)
    ]
    if steps is not None:
        steps.add(len(found))
    return found


def boundary_before(found: list[Token], index: int) -> bool:
    """Whether a phrase may start at token `index` (``\b``: no word character before)."""
    return index == 0 or found[index - 1].kind not in WORDLIKE


def boundary_after(found: list[Token], index: int) -> bool:
    """Whether a phrase may end just before token `index` (no word character after)."""
    return index >= len(found) or found[index].kind not in WORDLIKE


#: The separators a phrase's words may be written with: whitespace, hyphen, the dashes
#: U+2010 to U+2015 ("Willis-Ekbom", "Willis Ekbom", "Willis–Ekbom").
DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015")
#: A phrase atom that matches one or more separator tokens.
SEPARATOR = None
Atom = Token | None


def is_separator(token: Token) -> bool:
    return token.kind == "space" or (token.kind == "mark" and token.text in DASHES)


def literal(text: str) -> tuple[Atom, ...]:
    """A phrase that matches exactly these tokens (one space matches one space)."""
    return tuple(tokens(text))


def words(text: str) -> tuple[Atom, ...]:
    """A phrase whose words may be separated by any run of whitespace and dashes; it must
    start and end with a word character (so that "whole words" means what it says)."""
    atoms: list[Atom] = []
    for token in tokens(text.strip()):
        if not is_separator(token):
            atoms.append(token)
        elif atoms and atoms[-1] is not SEPARATOR:
            atoms.append(SEPARATOR)
    if not atoms or atoms[0] is SEPARATOR or atoms[0].kind not in WORDLIKE:
        raise ValueError(f"phrase {text!r} must start with a letter or digit")
    last = atoms[-1]
    if last is SEPARATOR or last.kind not in WORDLIKE:
        raise ValueError(f"phrase {text!r} must end with a letter or digit")
    return tuple(atoms)


class PhraseTable(Generic[Label]):
    """Phrases (tuples of atoms, each with a label) found in token lists as whole words.

    Phrases are indexed by their first token, so a text costs one dictionary lookup per
    token plus the comparisons of the phrases starting with that token: linear in the
    text for a given table.
    """

    def __init__(self, phrases: list[tuple[tuple[Atom, ...], Label]]):
        self._by_first: dict[Token, list[tuple[tuple[Atom, ...], Label]]] = {}
        for atoms, label in phrases:
            first = atoms[0]
            assert first is not SEPARATOR
            self._by_first.setdefault(first, []).append((atoms, label))

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def leftmost(self, found: list[Token], steps: Steps | None = None) -> list[Label]:
        """Labels of the phrases found scanning left to right, each match consumed: at one
        position the first phrase listed wins (as a regular-expression alternation)."""
        labels: list[Label] = []
        runs = _separator_runs(found, steps)
        index = 0
        while index < len(found):
            end = self._match_at(found, runs, index, steps, labels, first_only=True)
            index = end if end > index else index + 1
        return labels

    def labels_in(self, found: list[Token], steps: Steps | None = None) -> set[Label]:
        """Labels of every phrase found anywhere in the tokens."""
        labels: list[Label] = []
        runs = _separator_runs(found, steps)
        for index in range(len(found)):
            self._match_at(found, runs, index, steps, labels, first_only=False)
        return set(labels)

    def _match_at(
        self,
        found: list[Token],
        runs: list[int],
        index: int,
        steps: Steps | None,
        labels: list[Label],
        first_only: bool,
    ) -> int:
        """Record the labels of phrases matching at `index`; the end of the first match."""
        if steps is not None:
            steps.add()
        candidates = self._by_first.get(found[index])
        if not candidates or not boundary_before(found, index):
            return index
        for atoms, label in candidates:
            end = _match(atoms, found, runs, index, steps)
            if end is not None and boundary_after(found, end):
                labels.append(label)
                if first_only:
                    return end
        return index


def _separator_runs(found: list[Token], steps: Steps | None) -> list[int]:
    """For each index, where the run of separator tokens starting there ends."""
    ends = [0] * (len(found) + 1)
    ends[len(found)] = len(found)
    for index in range(len(found) - 1, -1, -1):
        ends[index] = ends[index + 1] if is_separator(found[index]) else index
    if steps is not None:
        steps.add(len(found))
    return ends


def _match(
    atoms: tuple[Atom, ...], found: list[Token], runs: list[int], index: int, steps: Steps | None
) -> int | None:
    """The index after `atoms` matched at `index`, or None."""
    at = index
    for atom in atoms:
        if steps is not None:
            steps.add()
        if atom is SEPARATOR:
            if at >= len(found) or runs[at] == at:
                return None
            at = runs[at]
        elif at < len(found) and found[at] == atom:
            at += 1
        else:
            return None
    return at
