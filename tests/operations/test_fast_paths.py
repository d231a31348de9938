"""The hot path's shortcuts answer exactly as the plain code would."""

from __future__ import annotations

import json

import pytest

from cds_service.api.hooks import read_json_body
from cds_service.clinical.terminology import ValueSetIndex
from cds_service.errors import RequestInvalid
from tests import builders as b


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": [1, 2.5, -0.0, "\\u00e9", null, true, {"b": "x"}]}',
        b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
        b'{"n": 18446744073709551615, "d": "1234567890123456789012"}',
        b'{"a": 1, "a": 2}',
        b'{"lone": "\\ud800"}',
        b'{"tiny": 1e-400}',
    ],
)
def test_body_parses_as_json_would(app, raw):
    """orjson reads integers beyond 64 bits as floats: such bodies go to json instead."""
    with app.test_request_context(data=raw, content_type="application/json"):
        parsed = read_json_body()
    assert repr(parsed) == repr(json.loads(raw))  # ints stay ints, floats floats


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b"\xff{}", "UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nests too deeply"),
        (b"", "not valid JSON"),
        (b'{"huge": 1e400}', "number too large"),  # infinity would make or hide a card
    ],
)
def test_unreadable_body_gets_the_same_reason(app, raw, fragment):
    with (
        app.test_request_context(data=raw, content_type="application/json"),
        pytest.raises(RequestInvalid, match=fragment),
    ):
        read_json_body()


QUESTIONS = [
    ([(b.SNOMED, "32914008")], [], ("rls", "neuropathy")),
    ([(b.ICD10CM, "g2581")], [], ("rls",)),
    ([(b.ICD10CM, "I83.813")], ["Varicose veins"], ("venous-insufficiency", "rls")),
    ([(None, "32914008")], ["Willis-Ekbom disease"], ("rls",)),
    ([(b.RXNORM, "3498")], ["Benadryl 25 mg"], ("sedating-antihistamine", "antipsychotic")),
    ([], ["hydroxyzine at night"], frozenset({"sedating-antihistamine"})),
    ([(b.LOINC, b.FERRITIN)], [], frozenset({"ferritin", "egfr"})),
]


@pytest.mark.parametrize(("pairs", "texts", "among"), QUESTIONS)
def test_remembered_answers_equal_fresh_ones(pairs, texts, among):
    index = ValueSetIndex(b.KNOWLEDGE.value_sets)
    fresh = index._members(tuple(pairs), tuple(texts), among)
    assert index.members(pairs, texts, among) == fresh  # first time: computed
    assert index.members(iter(pairs), iter(texts), list(among)) == fresh  # then remembered


def test_memory_of_answers_is_bounded(monkeypatch):
    monkeypatch.setattr(ValueSetIndex, "MEMO_BYTES", 2000)
    index = ValueSetIndex(b.KNOWLEDGE.value_sets)
    for n in range(40):
        index.members([(b.LOINC, f"0000-{n}")], [], ("ferritin",))
        assert index.memo_bytes <= 2000
    assert 0 < len(index._memo) < 40


def test_the_memory_of_answers_keeps_no_request_text():
    """Issue 17: the memo kept each question's texts alive (+192 MB per 1,000 calls with
    long unique drug texts); it keeps a 16-byte digest per question now."""
    index = ValueSetIndex(b.KNOWLEDGE.value_sets)
    for n in range(50):
        text = f"hydroxyzine {n} " + "long sig text " * 500
        assert index.members([], [text], ("sedating-antihistamine",)) == {"sedating-antihistamine"}
    assert all(isinstance(key, bytes) and len(key) == 16 for key in index._memo)
    assert index.memo_bytes <= 50 * 400  # a few hundred bytes per question, not 7 KB
