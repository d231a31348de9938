"""Issue 16, point 4: no request can pin a worker with text.

The red team found that the free-text dose patterns backtracked quadratically on long digit
runs (one 10,000-digit sig: about 3 s of CPU; a 200 KB request held a gunicorn worker for
122 s). Now the only regular expression left on that path is the tokenizer of text_scan,
whose structure admits no backtracking (checked below); everything else is Python over the
tokens, counting its steps. The work is measured in those steps, never in time: on 100,000
characters of every adversarial shape it is at most a few steps per character, and ten
times the text is ten times the steps. On top, sigs and product names longer than
MAX_TEXT_CHARS are not read, at most MAX_DOSAGES instructions are read per resource, and a
CPU budget per call turns what is left over into "not read", never a hang.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import pytest

from cds_service.clinical import fhir_read, text_scan
from cds_service.clinical.dosing import MAX_TEXT_CHARS, sig_mg_per_day, strength_in
from cds_service.clinical.terminology import ValueSetIndex
from cds_service.clinical.text_scan import Steps
from tests import builders as b

N = 100_000
#: Most steps per character of text any scanner may take (measured: at most 4).
STEPS_PER_CHAR = 5
INDEX = ValueSetIndex(b.KNOWLEDGE.value_sets)


def _fill(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


_RANDOM = random.Random(16)
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "digit-run": lambda n: "1" * n,  # the red team's sig
    "digit-run-then-mg": lambda n: "1" * (n - 3) + " mg",
    "commas": lambda n: _fill("1,", n),
    "dots": lambda n: _fill("1.", n),
    "thousands": lambda n: _fill("1,000", n),
    "mg-words": lambda n: _fill("mg", n),
    "amounts": lambda n: _fill("1 mg ", n),
    "spaces": lambda n: " " * n,
    "dashes": lambda n: "-" * n,
    "dotted-abbreviations": lambda n: _fill("q.i.d", n),
    "frequency-prefixes": lambda n: _fill("three times a ", n),
    "per-volume-prefixes": lambda n: _fill("5 MG / ", n),
    "phrase-word-then-spaces": lambda n: "restless" + " " * (n - 13) + "legsx",
    "phrase-prefixes": lambda n: _fill("chronic kidney disease stage ", n),
    "separator-mix": lambda n: _fill("willis-\u2013 ", n),
    "random": lambda n: "".join(_RANDOM.choice("1, .mgqidtxy-/") for _ in range(n)),
}
SCANNERS: dict[str, Callable[[str, Steps], Any]] = {
    "sig": sig_mg_per_day,
    "strength": strength_in,
    "phrases": INDEX.named_in,
}


def steps_of(scan: Callable[[str, Steps], Any], text: str) -> int:
    steps = Steps()
    scan(text, steps)
    return steps.count


@pytest.mark.parametrize("scanner", SCANNERS)
@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_100000_characters_take_linear_steps(scanner, shape):
    scan, make = SCANNERS[scanner], ADVERSARIAL[shape]
    small, large = steps_of(scan, make(N // 10)), steps_of(scan, make(N))
    assert large <= STEPS_PER_CHAR * N, (large, N)
    # ten times the text, ten times the work (plus a constant), never a hundred times
    assert large <= 10.5 * small + 100, (small, large)


def _single_class(item: tuple[Any, Any]) -> bool:
    """One character of a class: a literal, a set, a category."""
    return item[0] in (sre_constants.LITERAL, sre_constants.IN, sre_constants.CATEGORY)


def test_the_tokenizer_cannot_backtrack():
    """Each alternative is one character class, repeated greedily or once, alone in its
    group; the classes are disjoint. At a position at most one alternative can match, it
    takes the whole run, and nothing after it can fail: one pass, no backtracking."""
    (branch,) = sre_parse.parse(text_scan._TOKEN.pattern)
    assert branch[0] is sre_constants.BRANCH
    classes = []
    for alternative in branch[1][1]:
        ((kind, (_group, _, _, body)),) = list(alternative)
        assert kind is sre_constants.SUBPATTERN
        (item,) = list(body)
        if item[0] is sre_constants.MAX_REPEAT:
            low, high, repeated = item[1]
            assert (low, high) == (1, sre_constants.MAXREPEAT)
            (item,) = list(repeated)
        assert _single_class(item)
        classes.append(item)
    one_of_each = [re.compile(pattern) for pattern in (r"\d", r"[^\W\d_]", r"_", r"\s", r"[^\w\s]")]
    assert len(classes) == len(one_of_each)
    for code in [*range(0x3000), 0x10000, 0x1F600]:  # every character in exactly one class
        char = chr(code)
        assert sum(bool(p.fullmatch(char)) for p in one_of_each) == 1, hex(code)


# --- caps on what is read ----------------------------------------------------------------


def gabapentinoid(text: str, sigs: list[str]) -> dict:
    request = b.medication_request(code="310431", text=text)
    request["dosageInstruction"] = [{"text": sig} for sig in sigs]
    return request


def test_a_sig_longer_than_the_cap_is_not_read_and_the_resource_still_is():
    request = gabapentinoid(
        "gabapentin 300 MG Oral Capsule", ["300 mg TID " + "x" * MAX_TEXT_CHARS]
    )
    read = fhir_read.MedicationRequest.model_validate(request)
    assert read.dosageInstruction[0].text is None
    assert read.medicationCodeableConcept is not None


def test_at_most_the_capped_number_of_dosage_instructions_is_read():
    request = gabapentinoid("gabapentin 300 MG Oral Capsule", ["300 mg at bedtime"] * 5000)
    read = fhir_read.MedicationRequest.model_validate(request)
    assert len(read.dosageInstruction) == fhir_read.MAX_DOSAGES + 1  # "more than allowed"
