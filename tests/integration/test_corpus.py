"""Every file of the robustness corpus (tests/corpus, real FHIR and CDS Hooks data none of
us wrote) goes through the reader, the picture, the engine and the HTTP service without an
exception, and the Synthea patients get plausible cards.

The counts and topics are printed and written to test-output/corpus-report.json. Synthea's
creatinine (LOINC 38483-4) and eGFR in mL/min are reported there, not asserted: they show how
much of a real record our value sets and units accept.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from cds_service.clinical.reader import ReadReport
from cds_service.hooks.bundles import hook_request as cli_hook_request
from cds_service.hooks.services import PATIENT_VIEW
from tests import builders as b
from tests.integration import corpus as c

FOLDERS = ("fhir-examples", "synthea", "cds-hooks")
ALL_FILES = [path for folder in FOLDERS for path in c.corpus_files(folder)]
HL7_EXAMPLES = c.corpus_files("fhir-examples")
SYNTHEA = c.synthea_patients()
READ_ONLY_TYPES = ("Observation", "Condition", "MedicationRequest", "MedicationStatement")
HL7_TYPES = (*READ_ONLY_TYPES, "Medication", "Patient")
YEAR = timedelta(days=365)


def _hook_files(*, as_sent: bool) -> list[Path]:
    """Spec examples that are hook calls as written (hook and context), or bare contexts from
    a hook's page; a placeholder when there are none, so the test fails instead of skipping."""
    found = []
    for path in c.corpus_files("cds-hooks"):
        document = c.load(path) if path.is_file() else None
        if not isinstance(document, dict) or c.hook_request(path) is None:
            continue
        if ("hook" in document) == as_sent:
            found.append(path)
    return found or [c.CORPUS / "cds-hooks" / "(no hook requests found)"]


HOOK_REQUESTS = _hook_files(as_sent=True)
HOOK_CONTEXTS = _hook_files(as_sent=False)


def ids(paths: list[Path]) -> list[str]:
    return [c.name(path) for path in paths]


def test_corpus_is_in_the_repository():
    """The corpus ships in tests/corpus; should it go missing these tests fail, never skip."""
    assert c.CORPUS.is_dir(), f"robustness corpus missing: expected it at {c.CORPUS}"
    counts = {folder: len(list((c.CORPUS / folder).rglob("*.json"))) for folder in FOLDERS}
    assert counts["fhir-examples"] >= 170, counts
    assert counts["synthea"] >= 6, counts
    assert counts["cds-hooks"] >= 100, counts
    assert len(SYNTHEA) >= 4


@pytest.mark.parametrize("path", ALL_FILES, ids=ids(ALL_FILES))
def test_every_file_is_read_and_evaluated_without_error(path: Path):
    """Reader, picture and engine (as is and with active RLS) for every patient in the file;
    cards stay within the contract and cite only usable data dated no later than tomorrow."""
    c.load(path)
    for run in c.reader_runs(path):
        assert run.problems == (), (run.patient_id, run.problems)


@pytest.mark.parametrize("path", HL7_EXAMPLES, ids=ids(HL7_EXAMPLES))
def test_hl7_examples_are_all_read_and_those_about_no_patient_are_counted(path: Path):
    document = c.load(path)
    runs = c.reader_runs(path)
    assert runs, "an HL7 example holds at least one resource"
    report = runs[0].report
    assert report.skipped == Counter(), "the HL7 examples are valid R4: none may be skipped"
    kinds = Counter(r["resourceType"] for r in c.flattened([document]))
    for kind, count in kinds.items():
        if kind in HL7_TYPES:
            assert report.read[kind] == count, kind
    if document["resourceType"] in READ_ONLY_TYPES and not document.get("subject"):
        assert report.ignored[f"{document['resourceType']}:no-subject"] == 1


@pytest.mark.parametrize("path", HOOK_REQUESTS, ids=ids(HOOK_REQUESTS))
def test_spec_hook_requests_never_get_a_server_error(path: Path):
    """Posted as written to the service for their hook (patient-view's for other hooks)."""
    _assert_answer(path)


@pytest.mark.parametrize("path", HOOK_CONTEXTS, ids=ids(HOOK_CONTEXTS))
def test_spec_hook_contexts_in_a_request_never_get_a_server_error(path: Path):
    """A hook page's bare context, in an envelope with an RLS prefetch for its patient."""
    _assert_answer(path)


def _assert_answer(path: Path) -> None:
    service, status, body = c.post(path)
    assert status in (200, 400, 412), (service, status, body)
    assert isinstance(body, dict), "the response body must be a JSON object"
    if status != 200:
        assert isinstance(body.get("error"), str) and body.get("message"), body
        return
    assert isinstance(body.get("cards"), list), body
    for card in body["cards"]:
        assert c.card_problems(card) == [], card


def test_patient_view_contexts_with_rls_get_cards():
    """The spec's patient-view contexts are valid: with an RLS prefetch they get cards."""
    patient_views = [p for p in HOOK_CONTEXTS if c.hook_of_file(p) == "patient-view"]
    assert patient_views, "the spec pages carry patient-view contexts"
    for path in patient_views:
        _, status, body = c.post(path)
        assert status == 200 and body["cards"], c.name(path)


@pytest.mark.parametrize("path", SYNTHEA, ids=ids(SYNTHEA))
def test_synthea_patient_view_gets_plausible_cards(path: Path):
    patient_id, subject = c.subject_reference(c.load(path))
    assert subject == f"urn:uuid:{patient_id}", "Synthea refers to the Patient by fullUrl"
    run = c.synthea_run(path)
    assert run.status == 200, run.response
    if run.picture.deceased:  # Kallie862 died in 2011: no orders for a deceased patient
        assert run.response["cards"] == []
        return
    assert run.picture.has_rls, "the RLS Condition added with the bundle's subject is read"
    cards = run.response["cards"]
    assert cards, "an RLS patient with no recent labs gets cards"
    for card in cards:
        assert c.card_problems(card) == [], card
    http_topics = {card["source"]["topic"]["code"] for card in cards}
    assert http_topics == {f.topic for f in run.findings}, "the service and the engine agree"
    assert c.finding_problems(run.findings, run.resources) == []
    _assert_iron_studies_due_iff_no_recent_ferritin(run)


@pytest.mark.parametrize("path", SYNTHEA, ids=ids(SYNTHEA))
def test_synthea_patient_with_a_recent_ferritin_gets_no_iron_studies_due(path: Path):
    """A ferritin of 50 ng/mL a month ago, referenced like the bundle's own resources."""
    run = c.synthea_run(path, with_ferritin=True)
    assert run.status == 200, run.response
    assert run.picture.latest("ferritin", YEAR) is not None
    topics = [card["source"]["topic"]["code"] for card in run.response["cards"]]
    assert ("iron-below-target" in topics) != run.picture.deceased
    assert c.finding_problems(run.findings, run.resources) == []
    _assert_iron_studies_due_iff_no_recent_ferritin(run)


def _assert_iron_studies_due_iff_no_recent_ferritin(run: c.PatientViewRun) -> None:
    topics = {f.topic for f in run.findings}
    no_ferritin = run.picture.latest("ferritin", YEAR) is None
    assert ("iron-studies-due" in topics) == no_ferritin, (topics, no_ferritin)


@pytest.mark.parametrize("path", SYNTHEA, ids=ids(SYNTHEA))
def test_synthea_topics_do_not_depend_on_how_references_are_written(path: Path):
    """The CLI's conversion (references rewritten to Patient/id) fires the same topics as
    the bundle's own urn:uuid references."""
    service = c.SERVICES[PATIENT_VIEW]
    body = cli_hook_request(service, c.load(path), hook_instance=str(uuid.uuid4()))
    patient_id = body["context"]["patientId"]
    body["prefetch"]["conditions"].setdefault("entry", []).append(
        {"resource": b.rls(patient_id=patient_id)}
    )
    response = c.client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    assert response.status_code == 200, response.get_json()
    topics = {card["source"]["topic"]["code"] for card in response.get_json()["cards"]}
    assert topics == {f.topic for f in c.synthea_run(path).findings}


def test_corpus_report_is_written_and_totals_are_sane(capsys):
    report = build_report()
    c.REPORT.parent.mkdir(parents=True, exist_ok=True)
    c.REPORT.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", "utf-8")
    with capsys.disabled():
        print(summary(report))
    totals = report["totals"]
    assert totals["files"] == len(ALL_FILES)
    assert sum(totals["read"].values()) > 1000
    for kind in HL7_TYPES:
        assert totals["read"].get(kind, 0) > 0, kind
    for entry in report["synthea"].values():
        assert entry["status"] == 200
        assert entry["read"]["Observation"] > 0
        assert bool(entry["topics"]) != entry["deceased"], "every living RLS patient gets cards"
    assert any(entry["deceased"] for entry in report["synthea"].values())


def build_report() -> dict:
    """Per file: resources read, skipped and ignored by reason (for the file's first patient),
    and the topics the engine fires with RLS added; per Synthea patient: the HTTP answer."""
    files = {}
    totals: dict[str, Counter[str]] = {key: Counter() for key in ("read", "skipped", "ignored")}
    for path in ALL_FILES:
        runs = c.reader_runs(path)
        first = runs[0].report if runs else ReadReport()
        counts = {"read": first.read, "skipped": first.skipped, "ignored": first.ignored}
        for key, counter in counts.items():
            totals[key].update(counter)
        files[c.name(path)] = {
            "patients": len(runs),
            **{key: dict(counter) for key, counter in counts.items()},
            "topics_with_rls": sorted({t for run in runs for t in run.topics}),
        }
    synthea = {}
    for path in SYNTHEA:
        run = c.synthea_run(path)
        ignored = run.picture.report.ignored
        synthea[c.name(path)] = {
            "status": run.status,
            "deceased": run.picture.deceased,
            "read": dict(run.picture.report.read),
            "skipped": dict(run.picture.report.skipped),
            "ignored": dict(ignored),
            "Observation:not-a-lab-we-use": ignored["Observation:not-a-lab-we-use"],
            "Observation:unconvertible-unit": ignored["Observation:unconvertible-unit"],
            "labs_read": {k: len(v) for k, v in run.picture.labs.items()},
            "topics": [card["source"]["topic"]["code"] for card in run.response["cards"]],
            "topics_with_recent_ferritin": [
                card["source"]["topic"]["code"]
                for card in c.synthea_run(path, with_ferritin=True).response["cards"]
            ],
            "record_time": c.record_time(path).date().isoformat(),
            "topics_at_record_time": list(c.topics_at_record_time(path)),
        }
    hooks = {c.name(p): c.post(p)[:2] for p in [*HOOK_REQUESTS, *HOOK_CONTEXTS]}
    return {
        "corpus": str(c.CORPUS),
        "now": b.NOW.isoformat(),
        "totals": {"files": len(files)} | {k: dict(v) for k, v in totals.items()},
        "files": files,
        "synthea": synthea,
        "hook_calls": {k: {"service": s, "status": st} for k, (s, st) in hooks.items()},
    }


def summary(report: dict) -> str:
    totals = report["totals"]
    statuses = Counter(call["status"] for call in report["hook_calls"].values())
    lines = [
        "",
        f"corpus report ({c.REPORT}):",
        f"  files: {totals['files']}",
        f"  read: {sum(totals['read'].values())} {totals['read']}",
        f"  skipped: {sum(totals['skipped'].values())} {totals['skipped']}",
        f"  ignored: {sum(totals['ignored'].values())}",
        f"  hook calls by status: {dict(statuses)}",
    ]
    for name, entry in report["synthea"].items():
        lines.append(
            f"  {name}: {entry['status']} topics={entry['topics']} "
            f"not-a-lab-we-use={entry['Observation:not-a-lab-we-use']} "
            f"unconvertible-unit={entry['Observation:unconvertible-unit']} "
            f"at {entry['record_time']}: {entry['topics_at_record_time']}"
        )
    return "\n".join(lines)
