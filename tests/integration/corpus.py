"""The robustness corpus (tests/corpus): where it is, what its files hold, how to run them.

Every file is run once and cached, so the parametrized tests and the report share the work.
A missing corpus or file fails with a message naming the expected path; it is never skipped.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.clinical import fhir_read as fr
from cds_service.clinical.findings import Finding
from cds_service.clinical.picture import PatientPicture, build_picture
from cds_service.clinical.reader import ReadReport, read_resources
from cds_service.hooks.prefetch import resource_type
from cds_service.hooks.services import PATIENT_VIEW, build_services
from cds_service.settings import Settings
from tests import builders as b
from tests.contract import TOPIC_CODES

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
REPORT = ROOT / "test-output" / "corpus-report.json"
VALUE_SETS = b.KNOWLEDGE.value_sets
SERVICES = build_services(VALUE_SETS)
SERVICE_FOR_HOOK = {service.hook: service.id for service in SERVICES.values()}
NO_PATIENT = "no-patient"
#: Cards may show data dated up to a day after now (clock skew), never later.
LATEST_SHOWN = (b.NOW + timedelta(days=1)).date()
CONTRACT_TOPICS = frozenset(TOPIC_CODES)
#: Spec pages, one per hook, whose examples are bare ``context`` objects.
HOOK_PAGES = frozenset(
    {"patient-view", "order-select", "order-sign", "medication-prescribe", "order-review",
     "encounter-start", "problem-list-item-create"}
)  # fmt: skip
_SHOWN_DATE = re.compile(r"\((\d{4}-\d{2}-\d{2})\)$")
_HOOK_FILE = re.compile(r"^([a-z]+(?:-[a-z]+)*)-\d+$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def corpus_files(folder: str) -> list[Path]:
    """The JSON files under a corpus folder; a placeholder path when there are none, so that
    the parametrized test fails (on the missing file) instead of being skipped."""
    found = sorted((CORPUS / folder).rglob("*.json"))
    return found or [CORPUS / folder / "(no JSON files found)"]


def name(path: Path) -> str:
    """The file's path inside the corpus, as the test id and the report key."""
    try:
        return path.relative_to(CORPUS).as_posix()
    except ValueError:
        return str(path)


@cache
def load(path: Path) -> Any:
    assert CORPUS.is_dir(), (
        f"the robustness corpus is missing: expected {CORPUS} (tests/corpus in the repository)"
    )
    assert path.is_file(), f"corpus file missing: {path}"
    return json.loads(path.read_text("utf-8"))


def embedded_resources(value: Any) -> Iterator[dict]:
    """Every outermost FHIR resource in a JSON value (a resource is not searched inside)."""
    if isinstance(value, dict):
        if isinstance(value.get("resourceType"), str):
            yield value
            return
        for item in value.values():
            yield from embedded_resources(item)
    elif isinstance(value, list):
        for item in value:
            yield from embedded_resources(item)


def flattened(resources: list[dict]) -> Iterator[dict]:
    """The resources with every Bundle replaced by its entries' resources (recursively)."""
    for resource in resources:
        if resource["resourceType"] == "Bundle":
            entries = resource.get("entry")
            inner = [e.get("resource") for e in entries or [] if isinstance(e, dict)]
            yield from flattened([r for r in inner if isinstance(r, dict) and "resourceType" in r])
        else:
            yield resource


def patient_id_of(reference: str) -> str:
    """The id in ``Patient/x``, ``http://.../Patient/x``, ``urn:uuid:x`` or ``#x``."""
    return reference.removeprefix("urn:uuid:").rsplit("/", 1)[-1].lstrip("#") or NO_PATIENT


def patient_ids(document: Any, resources: list[dict]) -> list[str]:
    """The patients a file is about: a hook context's patientId, Patients, then subjects."""
    found: list[str] = []
    context = document.get("context") if isinstance(document, dict) else None
    if isinstance(context, dict) and isinstance(context.get("patientId"), str):
        found.append(context["patientId"])
    flat = list(flattened(resources))
    found += [
        r["id"] for r in flat if r["resourceType"] == "Patient" and isinstance(r.get("id"), str)
    ]
    for resource in flat:
        subject = resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if isinstance(reference, str):
            found.append(patient_id_of(reference))
    return list(dict.fromkeys(found)) or [NO_PATIENT]


def by_reference(resources: list[dict]) -> dict[str, dict]:
    """The resources by ``Type/id``, for resolving a card's data sources."""
    return {
        f"{r['resourceType']}/{r['id']}": r
        for r in flattened(resources)
        if isinstance(r.get("id"), str)
    }


def source_problem(source: str, resources: dict[str, dict]) -> str | None:
    """Why a card may not cite `source`, or None: it must be computed, or a resource in the
    data that is readable and not entered in error (nor a refuted condition)."""
    if source == "computed":
        return None
    raw = resources.get(source)
    if raw is None:
        return f"{source} is not in the data"
    verification = raw.get("verificationStatus") or {}
    codes = {c.get("code") for c in verification.get("coding") or [] if isinstance(c, dict)}
    if raw.get("status") == "entered-in-error" or codes & {"entered-in-error", "refuted"}:
        return f"{source} is entered in error or refuted"
    model = fr.MODELS.get(raw["resourceType"])
    try:
        assert model is not None
        model.model_validate(raw)
    except Exception:
        return f"{source} is not readable"
    return None


def finding_problems(findings: list[Finding], resources: dict[str, dict]) -> list[str]:
    """Contract topics only; data cited exists, is usable, and is not dated in the future."""
    problems = []
    for finding in findings:
        if finding.topic not in CONTRACT_TOPICS:
            problems.append(f"{finding.topic}: not a contract topic")
        for point in finding.data:
            problem = source_problem(point.source, resources)
            if problem:
                problems.append(f"{finding.topic}: {point.label}: {problem}")
            if point.when is not None and point.when.date() > LATEST_SHOWN:
                problems.append(f"{finding.topic}: {point.label} dated {point.when}")
    return problems


@dataclass(frozen=True)
class ReaderRun:
    """One file read for one patient: the reader's counts and the engine's topics with RLS."""

    patient_id: str
    report: ReadReport
    topics: tuple[str, ...]
    problems: tuple[str, ...]


@cache
def reader_runs(path: Path) -> tuple[ReaderRun, ...]:
    """Read the file's resources for each patient it is about, then run the engine twice:
    as is (the gate must keep it silent without RLS) and with an active RLS Condition."""
    document = load(path)
    resources = list(embedded_resources(document))
    if not resources:
        return ()
    data = {f"r{i}": r for i, r in enumerate(resources)}
    runs = []
    for patient_id in patient_ids(document, resources):
        direct = ReadReport()
        read_resources(data, patient_id, direct)
        picture = build_picture(data, patient_id, b.NOW, VALUE_SETS)
        assert picture.report.read == direct.read, "build_picture and the reader disagree"
        plain = b.ENGINE.patient_view(picture)
        assert picture.has_rls or plain == [], f"cards without RLS for {patient_id}"
        rls = b.rls(patient_id=patient_id)
        gated, decisions = b.ENGINE.decide_patient_view(
            build_picture(data | {"rls": rls}, patient_id, b.NOW, VALUE_SETS)
        )
        problems = finding_problems(gated, by_reference([*resources, rls]))
        problems += [
            f"{d.topic}: no card without a reason"
            for d in decisions.values()
            if d.reason is not None and d.reason.code == "unexplained"
        ]
        runs.append(
            ReaderRun(patient_id, picture.report, tuple(f.topic for f in gated), tuple(problems))
        )
    return tuple(runs)


# --- HTTP -------------------------------------------------------------------------------


@cache
def client() -> FlaskClient:
    """One in-process demo service on an in-memory store, with the builders' clock."""
    settings = Settings(demo=True, database_url="sqlite://")
    return create_app(settings, clock=lambda: b.NOW).test_client()


def hook_of_file(path: Path) -> str | None:
    """The hook a spec page documents, from the file name (``order-sign-02`` -> order-sign)."""
    match = _HOOK_FILE.match(path.stem)
    hook = match.group(1) if match else None
    return hook if hook in HOOK_PAGES else None


def hook_request(path: Path) -> dict | None:
    """The file as a hook call: as is when it has hook and context; a bare context from a
    hook's page wrapped in an envelope (with an RLS prefetch for its patient); else None."""
    document = load(path)
    if not isinstance(document, dict) or not isinstance(document.get("context"), dict):
        return None
    if "hook" in document:
        return document
    hook = hook_of_file(path)
    if hook is None:
        return None
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, name(path))),
        "context": document["context"],
    }
    patient_id = document["context"].get("patientId")
    if isinstance(patient_id, str):
        body["prefetch"] = b.prefetch(
            b.rls(patient_id=patient_id), with_patient=b.patient(patient_id)
        )
    return body


def service_for(body: dict) -> str:
    """The service answering the body's hook; patient-view's for hooks we do not offer."""
    hook = body.get("hook")
    return SERVICE_FOR_HOOK.get(hook, PATIENT_VIEW) if isinstance(hook, str) else PATIENT_VIEW


@cache
def post(path: Path) -> tuple[str, int, Any]:
    """(service, status, JSON body) of the file's hook call."""
    body = hook_request(path)
    assert body is not None, f"{name(path)} is not a hook call"
    service = service_for(body)
    response = client().post(f"/cds-services/{service}", json=body)
    return service, response.status_code, response.get_json(silent=True)


def shown_dates(card: dict) -> list[str]:
    """The dates a card's "Data used" section shows."""
    detail = card.get("detail") or ""
    _, found, rest = detail.partition("**Data used**")
    if not found:
        return []
    section = rest.strip().split("\n\n", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := _SHOWN_DATE.search(line.strip()))]


def card_problems(card: Any) -> list[str]:
    """What makes a card invalid under CDS Hooks 2.0 and the topic contract."""
    if not isinstance(card, dict):
        return ["card is not an object"]
    problems = []
    summary = card.get("summary")
    if not isinstance(summary, str) or not 0 < len(summary) < 140:
        problems.append(f"summary {summary!r}")
    if card.get("indicator") not in {"info", "warning", "critical"}:
        problems.append(f"indicator {card.get('indicator')!r}")
    if not _UUID.match(str(card.get("uuid"))):
        problems.append("uuid")
    source = card.get("source") or {}
    topic = source.get("topic") or {}
    if not source.get("label") or topic.get("code") not in CONTRACT_TOPICS:
        problems.append(f"source {source!r}")
    if not isinstance(card.get("detail"), str):
        problems.append("detail")
    for suggestion in card.get("suggestions") or []:
        if not suggestion.get("label") or not _UUID.match(str(suggestion.get("uuid"))):
            problems.append(f"suggestion {suggestion.get('label')!r}")
        for action in suggestion.get("actions") or []:
            problems += _action_problems(action)
    for date in shown_dates(card):
        if date > LATEST_SHOWN.isoformat():
            problems.append(f"Data used shows {date}")
    return problems


def _action_problems(action: dict) -> list[str]:
    """An action is typed and described; a create or update carries a valid R4 resource."""
    kind = action.get("type")
    if kind not in {"create", "update", "delete"} or not action.get("description"):
        return [f"action {kind!r}"]
    if kind == "delete":
        return [] if action.get("resourceId") else ["delete without resourceId"]
    resource = action.get("resource") or {}
    try:
        get_fhir_model_class(resource.get("resourceType")).model_validate(resource)
    except Exception as error:
        return [f"{kind} resource is not valid FHIR: {type(error).__name__}"]
    return []


# --- Synthea patients ---------------------------------------------------------------------


def synthea_patients() -> list[Path]:
    """The Synthea patient bundles (hospital and practitioner bundles hold no patient)."""
    return [p for p in corpus_files("synthea") if "Information" not in p.stem]


def subject_reference(bundle: dict) -> tuple[str, str]:
    """(patient id, the reference the bundle's resources use for it)."""
    entries = bundle["entry"]
    patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
    used = Counter(
        e["resource"]["subject"]["reference"]
        for e in entries
        if isinstance(e["resource"].get("subject"), dict)
    )
    reference, _ = used.most_common(1)[0]
    return patient["resource"]["id"], reference


def synthea_prefetch(bundle: dict, *extra: dict) -> tuple[str, dict]:
    """The bundle's entries split by prefetch key, each key a searchset that keeps the
    fullUrls (the patient too: the reader ties ``urn:uuid`` subjects to the Patient through
    its fullUrl); `extra` resources (RLS, a ferritin) get the bundle's subject reference."""
    patient_id, subject = subject_reference(bundle)
    entries = list(bundle["entry"])
    for resource in extra:
        resource = {**resource, "subject": {"reference": subject}}
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource})
    prefetch = {}
    for key, template in SERVICES[PATIENT_VIEW].prefetch.items():
        kind = resource_type(template)
        matches = [
            {"fullUrl": e["fullUrl"], "resource": e["resource"], "search": {"mode": "match"}}
            for e in entries
            if e["resource"]["resourceType"] == kind
            and (key != "weight" or _codes(e["resource"]) & b.WEIGHT_CODES)
        ]
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": matches}
    return patient_id, prefetch


def _codes(resource: dict) -> set[str]:
    return {c.get("code") for c in (resource.get("code") or {}).get("coding") or []}


def recent_ferritin(value: float = 50) -> dict:
    """A ferritin drawn a month before NOW (its subject is set by synthea_prefetch)."""
    when = (b.NOW - timedelta(days=30)).isoformat()
    return b.observation(b.FERRITIN, value, "ng/mL", when=when)


@dataclass(frozen=True)
class PatientViewRun:
    """A Synthea patient through the HTTP service and through the engine on the same data."""

    status: int
    response: Any
    picture: PatientPicture
    findings: list[Finding]
    resources: dict[str, dict]


@cache
def synthea_run(path: Path, with_ferritin: bool = False) -> PatientViewRun:
    """The patient with an active RLS Condition added (and a recent ferritin, if asked)."""
    extra = [b.rls()]
    if with_ferritin:
        extra.append(recent_ferritin())
    patient_id, prefetch = synthea_prefetch(load(path), *extra)
    body = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, name(path))),
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": prefetch,
    }
    response = client().post(f"/cds-services/{PATIENT_VIEW}", json=body)
    picture = build_picture(prefetch, patient_id, b.NOW, VALUE_SETS)
    return PatientViewRun(
        status=response.status_code,
        response=response.get_json(silent=True),
        picture=picture,
        findings=b.ENGINE.patient_view(picture),
        resources=by_reference(list(embedded_resources(prefetch))),
    )


@cache
def topics_at_record_time(path: Path) -> tuple[str, ...]:
    """The engine's topics with "now" the day after the bundle's latest Observation, when
    its labs are recent (engine only: the HTTP service runs on the builders' clock)."""
    patient_id, prefetch = synthea_prefetch(load(path), b.rls())
    picture = build_picture(prefetch, patient_id, record_time(path), VALUE_SETS)
    return tuple(f.topic for f in b.ENGINE.patient_view(picture))


def record_time(path: Path) -> datetime:
    """The day after the bundle's latest Observation: "now" as the record last saw it."""
    bundle = load(path)
    dates = [
        e["resource"]["effectiveDateTime"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation" and "effectiveDateTime" in e["resource"]
    ]
    return datetime.fromisoformat(max(dates)) + timedelta(days=1)
