"""The hook body decoded once, typed (cds_service.hooks.body), reads the same picture and
gets the same answer as the generic parse, and leaves to that parse what it must refuse."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from benchmarks import data
from cds_service.api import EXTENSION
from cds_service.api.hooks import parse_json
from cds_service.app import create_app
from cds_service.clinical import fhir_read as fr
from cds_service.clinical.coding import members_of
from cds_service.clinical.facts import CONDITION_VALUE_SETS
from cds_service.clinical.picture import build_picture
from cds_service.clinical.reader import Prefetched
from cds_service.clinical.terminology import _digest
from cds_service.evaluation import Outcome
from cds_service.hooks.body import decode_hook_body
from cds_service.hooks.services import ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW, build_services
from cds_service.settings import Settings
from tests import builders as b
from tests.fixture_requests import REQUESTS
from tests.hardening.damage import DAMAGES

SERVICE_OF_HOOK = {
    "patient-view": PATIENT_VIEW,
    "order-select": ORDER_SELECT,
    "order-sign": ORDER_SIGN,
}
FIXTURES = sorted(REQUESTS.glob("*.json"))
CORPUS = sorted((Path(__file__).resolve().parents[1] / "corpus").rglob("*.json"))


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Flask:
    settings = Settings(demo=True, data_dir=tmp_path_factory.mktemp("typed"), log_level="ERROR")
    return create_app(settings, clock=lambda: b.NOW)


def _outcome(app: Flask, body: Any) -> Outcome:
    evaluator = app.extensions[EXTENSION].evaluator
    return evaluator.evaluate(SERVICE_OF_HOOK[body["hook"]], body)


def _both(raw: bytes) -> tuple[dict[str, Any], Any]:
    typed = decode_hook_body(raw)
    assert typed is not None, "a well-formed body is decoded typed"
    return typed, parse_json(raw)


def _same_answer(app: Flask, raw: bytes) -> None:
    typed, generic = _both(raw)
    mine, theirs = _outcome(app, typed), _outcome(app, generic)
    assert b.strip_uuids(mine.response) == b.strip_uuids(theirs.response)
    assert mine.decisions == theirs.decisions
    for counts in ("read", "skipped", "ignored"):
        assert getattr(mine.report, counts) == getattr(theirs.report, counts), counts


def _same_picture(raw: bytes, patient_id: str) -> None:
    typed, generic = _both(raw)
    sets = b.KNOWLEDGE.value_sets
    mine = build_picture(typed.get("prefetch") or {}, patient_id, b.NOW, sets)
    theirs = build_picture(generic.get("prefetch") or {}, patient_id, b.NOW, sets)
    assert mine == theirs
    assert [m.raw for m in mine.medications] == [m.raw for m in theirs.medications]
    assert (mine.report.read, mine.report.skipped, mine.report.ignored) == (
        theirs.report.read,
        theirs.report.skipped,
        theirs.report.ignored,
    )


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_fixture_requests_read_as_the_generic_parse_reads_them(app, path):
    raw = path.read_bytes()
    _same_answer(app, raw)
    _same_picture(raw, json.loads(raw)["context"]["patientId"])


@pytest.mark.parametrize("make", [data.large_body, data.small_body], ids=["large", "small"])
def test_benchmark_bodies_read_as_the_generic_parse_reads_them(app, make):
    raw = make()
    _same_answer(app, raw)
    _same_picture(raw, json.loads(raw)["context"]["patientId"])


def test_corpus_bodies_read_as_the_generic_parse_reads_them(app):
    """Real-world and spec-example hook bodies, damaged ones included (tests/corpus)."""
    compared = 0
    for path in CORPUS:
        raw = path.read_bytes()
        try:
            body = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(body, dict) or body.get("hook") not in SERVICE_OF_HOOK:
            continue
        if not isinstance(body.get("prefetch"), dict) or decode_hook_body(raw) is None:
            continue
        context = body.get("context")
        patient_id = context.get("patientId") if isinstance(context, dict) else None
        if isinstance(patient_id, str):
            _same_picture(raw, patient_id)
            compared += 1
    assert compared >= 3


def _resources(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for value in body["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            yield from (e["resource"] for e in value.get("entry") or [])
        elif isinstance(value, dict):
            yield value


def _damaged_bodies() -> Iterator[tuple[str, bytes]]:
    """Each damage of tests/hardening/damage.py applied to one resource of each kind of a
    few fixture requests, in place (the rest of the body as it was)."""
    for path in FIXTURES[::4]:
        body = json.loads(path.read_bytes())
        kinds: set[str] = set()
        for index, resource in enumerate(_resources(body)):
            if resource["resourceType"] in kinds:
                continue
            kinds.add(resource["resourceType"])
            for damage in DAMAGES:
                if damage.applies(resource):
                    damaged, _ = damage.apply(copy.deepcopy(resource), index)
                    copied = copy.deepcopy(body)
                    _replace(copied, resource, damaged)
                    yield (
                        f"{path.stem}:{resource['resourceType']}:{damage.name}",
                        json.dumps(copied).encode(),
                    )


def _replace(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in body["prefetch"].items():
        if value == old:
            body["prefetch"][key] = new
        elif isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for entry in value.get("entry") or []:
                if entry["resource"] == old:
                    entry["resource"] = new


DAMAGED = list(_damaged_bodies())


@pytest.mark.parametrize(("name", "raw"), DAMAGED, ids=[name for name, _ in DAMAGED])
def test_a_damaged_resource_is_skipped_or_read_as_the_generic_parse_does(app, name, raw):
    if decode_hook_body(raw) is None:  # e.g. deep nesting: left to the generic parse
        return
    _same_answer(app, raw)


PATIENT = '{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1970-01-01"'
HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"


OTHER_KEYS = "".join(
    f',"{key}":null'
    for key in build_services(b.KNOWLEDGE.value_sets)[PATIENT_VIEW].prefetch
    if key != "patient"
)


def _prefetched(value: str) -> bytes:
    """A patient-view body whose patient prefetch is `value` (the other keys null)."""
    context = '{"userId":"Practitioner/1","patientId":"p1"}'
    return (
        f'{{"hook":"patient-view","hookInstance":"{HOOK_INSTANCE}",'
        f'"context":{context},"prefetch":{{"patient":{value}{OTHER_KEYS}}}}}'
    ).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"hook":"patient-view","context":{"n":1e400}}',  # json: infinity
        b'{"hook":"patient-view","context":{"n":' + b"9" * 5000 + b"}}",
        _prefetched(PATIENT + ',"multipleBirthInteger":' + "9" * 4301 + "}"),
        b'{"hook": NaN}',
        b'{"hook":"\\ud800"}',
        b"\xef\xbb\xbf{}",
        b"\xff{}",
        b"[" * 5000 + b"]" * 5000,
        b"",
        b'{"prefetch": []}',
        b"[]",
    ],
)
def test_what_the_typed_decode_cannot_take_exactly_is_left_to_the_generic_parse(raw):
    assert decode_hook_body(raw) is None


def test_integers_are_read_exactly_as_json_reads_them():
    raw = b'{"hook":"patient-view","context":{"n":123456789012345678901234567890,"m":-0.0}}'
    typed = decode_hook_body(raw)
    assert typed is not None
    assert repr(typed["context"]) == repr(json.loads(raw)["context"])


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (_prefetched(PATIENT + ',"multipleBirthInteger":1e400}'), None),  # read by no rule
        (_prefetched(PATIENT + ',"multipleBirthInteger":' + "9" * 5000 + "}"), "too long"),
        (_prefetched(PATIENT + ',"id":1e400}'), "too large"),  # read: refused as json would
        (_prefetched(PATIENT + ',"id":' + "9" * 5000 + "}"), "too long"),
        (b'{"hook":"patient-view","context":{"n":1e400}}', "too large"),
        (b'{"hook":"patient-view","context":{"n":' + b"9" * 5000 + b"}}", "too long"),
        (b'{"hook": NaN}', "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b"\xff{}", "UTF-8"),
        (b'{"hook":"patient-view","prefetch":[]}', "does not follow CDS Hooks"),
    ],
)
def test_hostile_bodies_get_the_generic_parses_answer(client, raw, fragment):
    """A number the service converts gets json's 400; 1e400 in an element no rule reads is
    never converted (it can make or hide no card), and the call is answered; an integer
    json would not convert is refused wherever it is."""
    response = client.post(
        "/cds-services/rls-secondary-causes", data=raw, content_type="application/json"
    )
    if fragment is None:
        assert response.status_code == 200, response.get_json()
    else:
        assert response.status_code == 400
        assert fragment in json.dumps(response.get_json())


def test_a_value_of_another_shape_is_read_by_the_generic_reader():
    """An entry that is no object: the value is parsed generically and read as before."""
    raw = _prefetched(
        '{"resourceType":"Bundle","entry":[5,{"resource":{"resourceType":"Patient","id":"p1"}}]}'
    )
    typed, generic = _both(raw)
    assert isinstance(typed["prefetch"]["patient"], Prefetched)
    mine = build_picture(typed["prefetch"], "p1", b.NOW, b.KNOWLEDGE.value_sets)
    theirs = build_picture(generic["prefetch"], "p1", b.NOW, b.KNOWLEDGE.value_sets)
    assert mine == theirs
    assert mine.report.skipped == theirs.report.skipped == {"Bundle:entry-without-resource": 1}


def test_a_null_prefetch_value_is_none_and_absent_keys_stay_absent():
    raw = _prefetched("null")
    typed = decode_hook_body(raw)
    assert typed is not None
    assert set(typed["prefetch"].values()) == {None}
    assert "fhirServer" not in typed and "fhirAuthorization" not in typed


@pytest.mark.parametrize(
    "value",
    [
        {  # its JSON is kept for an update suggestion
            **b.medication_request(code="310431", text="gabapentin 300 MG Oral Capsule"),
            "subject": {"reference": "Patient/p1"},
        },
        {"resourceType": "Encounter", "id": "e1"},  # a type no rule reads
        {"resourceType": "OperationOutcome", "issue": []},
        {"resourceType": "Patient", "id": "p1", "gender": 5},  # malformed
        {"resourceType": "Medication", "id": "m1", "code": {"text": "iron"}},
    ],
    ids=["medication-request", "encounter", "outcome", "malformed-patient", "medication"],
)
def test_a_single_resource_value_is_read_as_the_generic_parse_reads_it(value):
    """A prefetch value that is one resource: read in the body's pass when its type allows,
    else decoded again with the values as bytes; the picture is the same either way."""
    raw = _prefetched(json.dumps(value))
    typed, generic = _both(raw)
    sets = b.KNOWLEDGE.value_sets
    mine = build_picture(typed["prefetch"], "p1", b.NOW, sets)
    theirs = build_picture(generic["prefetch"], "p1", b.NOW, sets)
    assert mine == theirs
    assert [m.raw for m in mine.medications] == [m.raw for m in theirs.medications]
    assert mine.medications or value["resourceType"] != "MedicationRequest"
    assert (mine.report.read, mine.report.skipped, mine.report.ignored) == (
        theirs.report.read,
        theirs.report.skipped,
        theirs.report.ignored,
    )


def test_terminology_questions_are_named_apart():
    """The memo's digest (marshal's bytes, `among` by number) names no two questions alike."""
    questions = [
        ((("a", "b"),), (), ("rls",)),
        ((("ab", None),), (), ("rls",)),
        (((None, "ab"),), (), ("rls",)),
        ((("None", "ab"),), (), ("rls",)),
        ((), ("a", "b"), ("rls",)),
        ((), ("a\x00b",), ("rls",)),
        ((), ("\ud800",), ("rls",)),
        ((), ("a", "b"), ("rls", "neuropathy")),
        ((), ("a", "b"), frozenset({"rls"})),
    ]
    digests = {_digest(pairs, texts, among) for pairs, texts, among in questions}
    assert len(digests) == len(questions)
    assert _digest(*questions[0]) == _digest(*questions[0])


def test_a_calls_terminology_memo_gives_the_fresh_answers():
    """members_of with the call's memo answers as without it, the first time and after."""
    sets = b.KNOWLEDGE.value_sets
    concepts = [
        fr.CodeableConcept(coding=[fr.Coding(system=b.SNOMED, code="32914008")]),
        fr.CodeableConcept(text="Willis-Ekbom disease"),
        fr.CodeableConcept(coding=[fr.Coding(system=b.ICD10CM, code="I83.813")]),
    ]
    memo: dict = {}
    for _ in range(2):
        for concept in concepts:
            fresh = members_of(sets, [concept], CONDITION_VALUE_SETS)
            assert members_of(sets, [concept], CONDITION_VALUE_SETS, memo) == fresh
            assert fresh
    assert len(memo) == len(concepts)
