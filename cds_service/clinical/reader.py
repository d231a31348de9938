"""The tolerant reader: prefetch values in, typed resources about one patient out.

Prefetch values may be searchset or collection Bundles, single resources, OperationOutcomes
or null, under any key. Each resource is read on its own: one that does not fit its model is
skipped and counted, never fatal, and nothing about its content is kept or logged.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec

from cds_service.clinical import fhir_read as fr
from cds_service.clinical.budget import Budget

R = TypeVar("R", bound=fr.PatientData)


@dataclass
class ReadReport:
    """What the reader did with the resources it was given (counts only, no content), and
    the CPU budget every reader asks before each resource."""

    read: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    budget: Budget | None = None
    unread: set[str] = field(default_factory=set)
    """Resource types of which some were not read because the budget was spent."""

    def over_budget(self, resource_type: str) -> bool:
        """True (and counted) when the budget is spent: the resource is not read."""
        if self.budget is None or not self.budget.exhausted():
            return False
        self.skip(resource_type, "budget-exhausted")
        self.unread.add(resource_type)
        return True

    def skip(self, resource_type: str, reason: str) -> None:
        """Count a resource that could not be read at all."""
        self.skipped[f"{resource_type}:{reason}"] += 1

    def ignore(self, resource_type: str, reason: str) -> None:
        """Count a readable resource that the rules may not use (status, unit, patient)."""
        self.ignored[f"{resource_type}:{reason}"] += 1

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True)
class Resources:
    """The readable resources about one patient, by type, plus Medications for references."""

    patient: fr.Patient | None
    conditions: tuple[fr.Condition, ...]
    observations: tuple[fr.Observation, ...]
    medication_requests: tuple[fr.MedicationRequest, ...]
    medication_statements: tuple[fr.MedicationStatement, ...]
    medication_administrations: tuple[fr.MedicationAdministration, ...]
    service_requests: tuple[fr.ServiceRequest, ...]
    procedures: tuple[fr.Procedure, ...]
    medications: Mapping[str, fr.Medication]
    """Medications outside the requests, by ``Medication/<id>`` and by fullUrl."""


class NumberOutOfRange(ValueError):
    """A number the reader had to convert that Python's json would refuse (beyond the
    doubles, like 1e400) or not convert (beyond its 4300 digits): refused as the generic
    parse of the body would have refused it (400), with its words."""


def _refuse_numbers(error: Exception) -> None:
    """Raise NumberOutOfRange when msgspec refused a number, not the shape of a resource
    (an integer of more than 4300 digits never comes here: see cds_service.hooks.body)."""
    if str(error).startswith(("Number out of range", "Integer value out of range")):
        raise NumberOutOfRange("the body holds a number too large to read") from None


class Prefetched:
    """One prefetch value of a hook body, as the body's one decode left it: read (a Bundle
    with its entries as JSON bytes, an OperationOutcome, a single resource of a type the
    rules read) or, when that decode could not take the value, as its JSON bytes, read into
    the same shapes when first asked (see view)."""

    __slots__ = ("_view", "raw")

    def __init__(self, raw: msgspec.Raw | None = None, view: OneValue | None = None):
        self.raw = raw
        self._view: OneValue | _Value | dict[str, Any] | None = view

    def view(self) -> OneValue | _Value | Any:
        """The value read; when it has no shape the typed decoders take (an entry that is
        no object, ...), the generic parse the dict reader takes."""
        if self._view is None:
            assert self.raw is not None
            self._view = _decode_value(self.raw)
        return self._view

    @property
    def resource_type(self) -> object:
        view = self.view()
        if isinstance(view, dict):
            return view.get("resourceType")
        return view.resourceType


class _Entry(msgspec.Struct, gc=False):
    fullUrl: object = None
    resource: msgspec.Raw = msgspec.Raw(b"null")


class _Bundle(msgspec.Struct, tag_field="resourceType", tag="Bundle"):
    entry: list[_Entry] | None = None
    resourceType: ClassVar[str] = "Bundle"


class _Outcome(msgspec.Struct, tag_field="resourceType", tag="OperationOutcome"):
    """An OperationOutcome in place of data: the key is unsatisfied (hooks.prefetch)."""

    resourceType: ClassVar[str] = "OperationOutcome"


#: A prefetch value as the hook body's one decode reads it. A medication use is not among
#: them (its JSON is kept for suggestions), nor a type no rule reads: a body with such a
#: value is decoded again with its prefetch values left as bytes (cds_service.hooks.body).
OneValue = (
    _Bundle
    | _Outcome
    | fr.Patient
    | fr.Condition
    | fr.Observation
    | fr.Medication
    | fr.ServiceRequest
    | fr.Procedure
)


class _Value(msgspec.Struct):
    """Any prefetch value's type and entries, for one that is not a OneValue."""

    resourceType: object = None
    entry: list[_Entry] | None = None


class _Kind(msgspec.Struct):
    """What the reader needs of a resource it does not read: its type and id."""

    resourceType: object = None
    id: object = None


_ONE = msgspec.json.Decoder(OneValue, strict=False)
_VALUE = msgspec.json.Decoder(_Value)
_KIND = msgspec.json.Decoder(_Kind)
_NULL = msgspec.Raw(b"null")


def _decode_value(raw: msgspec.Raw) -> OneValue | _Value | Any:
    """A prefetch value's bytes read as a OneValue, else as a _Value, else generically."""
    for decoder in (_ONE, _VALUE, _GENERIC):
        try:
            return decoder.decode(raw)
        except msgspec.ValidationError as error:
            _refuse_numbers(error)
            if decoder is _GENERIC:
                raise
    raise AssertionError("the generic decoder takes any valid JSON")


_GENERIC = msgspec.json.Decoder()


def _head(received: msgspec.Raw) -> _Kind | None:
    """The type and id of a resource that did not decode, if it is an object."""
    if memoryview(received)[:1] != b"{":
        return None
    try:
        return _KIND.decode(received)
    except (msgspec.ValidationError, RecursionError) as error:
        _refuse_numbers(error)
        return None


def _get(value: object, key: str) -> object:
    return value.get(key) if isinstance(value, dict) else None


#: A resource as it came: its JSON bytes or read (from the hook body), or a parsed dict
#: (fetched data, draft orders, the CLI).
Received = msgspec.Raw | dict[str, Any] | fr.Resource


def iter_resources(
    prefetch: Mapping[str, Any], report: ReadReport
) -> Iterator[tuple[str, Received]]:
    """Yield (fullUrl or "", resource) for every resource in every prefetch value.

    A resource given as bytes is yielded undecoded: it is an object whose resourceType is a
    string, or _parse_each counts it as a Bundle entry without a resource.
    """
    for value in prefetch.values():
        if value is None:
            continue
        if isinstance(value, Prefetched):
            view = value.view()
            if isinstance(view, _Bundle):
                yield from _entries(view.entry, report)
                continue
            if isinstance(view, _Outcome):
                continue
            if isinstance(view, fr.Resource):
                yield "", view
                continue
            if isinstance(view, _Value):
                yield from _iter_typed(value, view, report)
                continue
            value = view
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            report.skip("prefetch", "not-a-resource")
            continue
        if value["resourceType"] == "OperationOutcome":
            continue
        if value["resourceType"] != "Bundle":
            yield "", value
            continue
        entries = value.get("entry") or []
        if not isinstance(entries, list):
            report.skip("Bundle", "entry-not-a-list")
            continue
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                report.skip("Bundle", "entry-without-resource")
                continue
            full_url = entry.get("fullUrl")
            yield (full_url if isinstance(full_url, str) else ""), resource


def _iter_typed(
    value: Prefetched, view: _Value, report: ReadReport
) -> Iterator[tuple[str, Received]]:
    """iter_resources for a value read as a _Value: the same answers, entries undecoded."""
    kind = view.resourceType
    if not isinstance(kind, str):
        report.skip("prefetch", "not-a-resource")
    elif kind == "OperationOutcome":
        pass
    elif kind != "Bundle":
        assert value.raw is not None
        yield "", value.raw
    else:
        yield from _entries(view.entry, report)


def _entries(entries: list[_Entry] | None, report: ReadReport) -> Iterator[tuple[str, Received]]:
    for entry in entries or ():
        if entry.resource == _NULL:
            report.skip("Bundle", "entry-without-resource")
            continue
        full_url = entry.fullUrl
        yield (full_url if isinstance(full_url, str) else ""), entry.resource


def read_resources(prefetch: Mapping[str, Any], patient_id: str, report: ReadReport) -> Resources:
    """Read every resource about `patient_id`; skip and count the rest."""
    by_type: dict[type[fr.Resource], list[tuple[str, Any]]] = defaultdict(list)
    for url, resource in _parse_each(prefetch, report):
        by_type[type(resource)].append((url, resource))
    patients = [r for _, r in by_type[fr.Patient] if r.id == patient_id]
    aliases = {f"Patient/{patient_id}"}
    aliases.update(url for url, r in by_type[fr.Patient] if r.id == patient_id and url)
    medications = {
        key: r
        for url, r in by_type[fr.Medication]
        for key in (f"Medication/{r.id}" if r.id else "", url)
        if key
    }
    suffix = f"/Patient/{patient_id}"

    def of(kind: type[R]) -> tuple[R, ...]:
        about: list[R] = []
        for _, resource in by_type[kind]:
            ref = resource.subject.reference if resource.subject else None
            if ref and (ref in aliases or ref.endswith(suffix)):
                about.append(resource)
            else:
                report.ignore(resource.resourceType, "other-patient" if ref else "no-subject")
        return tuple(about)

    return Resources(
        patient=patients[0] if patients else None,
        conditions=of(fr.Condition),
        observations=of(fr.Observation),
        medication_requests=of(fr.MedicationRequest),
        medication_statements=of(fr.MedicationStatement),
        medication_administrations=of(fr.MedicationAdministration),
        service_requests=of(fr.ServiceRequest),
        procedures=of(fr.Procedure),
        medications=medications,
    )


def _parse_each(
    prefetch: Mapping[str, Any], report: ReadReport
) -> Iterator[tuple[str, fr.Resource]]:
    """Each resource through its light model, once per (type, id); malformed ones counted.

    The loop runs once per resource of a large record: the common case (JSON bytes that
    decode) is tested first and asks no more than it must.
    """
    seen: set[tuple[str, str]] = set()
    read: Counter[str] = Counter()
    budget = report.budget
    decode = fr.DECODER.decode
    for full_url, received in iter_resources(prefetch, report):
        resource: fr.Resource | None = None
        raw_id: object
        if type(received) is msgspec.Raw:  # JSON bytes: decoded into the model its tag names
            try:
                resource = decode(received)
                kind, raw_id = _NAMES[type(resource)], resource.id
            except (msgspec.ValidationError, RecursionError) as error:  # not read, malformed
                _refuse_numbers(error)
                head = _head(received)
                if head is None or not isinstance(head.resourceType, str):
                    report.skip("Bundle", "entry-without-resource")
                    continue
                kind, raw_id = head.resourceType, head.id
        elif isinstance(received, dict):
            kind, raw_id = received["resourceType"], received.get("id")
        else:  # read with its prefetch value
            resource = received
            kind, raw_id = _NAMES[type(resource)], resource.id
        if resource is None and kind not in fr.MODELS:
            report.ignore(kind, "not-used")
            continue
        identity = (kind, raw_id) if type(raw_id) is str else None
        if identity in seen:
            continue
        if budget is not None and budget.exhausted() and report.over_budget(kind):
            continue
        if resource is None and isinstance(received, dict):
            with contextlib.suppress(msgspec.ValidationError, RecursionError):
                resource = fr.MODELS[kind].model_validate(received)
        if resource is None:
            report.skip(kind, "malformed")
            continue
        if kind in _USES and not isinstance(received, fr.Resource):
            assert isinstance(resource, fr.MedicationUse)
            resource.keep_received(received if isinstance(received, dict) else bytes(received))
        if identity:
            seen.add(identity)
        read[kind] += 1
        yield full_url, resource
    report.read.update(read)


_NAMES = {model: kind for kind, model in fr.MODELS.items()}
_USES = frozenset(k for k, m in fr.MODELS.items() if issubclass(m, fr.MedicationUse))


def unresolved_medication_ids(prefetch: Mapping[str, Any]) -> list[str]:
    """Ids of Medications that requests or statements reference but the prefetch lacks.

    Contained (``#id``) references resolve locally and are not listed.
    """
    present: set[str] = set()
    wanted: list[str] = []
    for _, received in iter_resources(prefetch, ReadReport()):
        if isinstance(received, fr.Medication):
            if received.id:
                present.add(received.id)
            continue
        if isinstance(received, fr.Resource):  # read with its value: no medication use
            continue
        raw = received if isinstance(received, dict) else msgspec.json.decode(received)
        kind = raw.get("resourceType") if isinstance(raw, dict) else None
        if kind == "Medication" and isinstance(raw.get("id"), str):
            present.add(raw["id"])
        elif kind in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
            reference = raw.get("medicationReference")
            ref = reference.get("reference") if isinstance(reference, dict) else None
            if isinstance(ref, str) and not ref.startswith("#"):
                kind_part, _, med_id = "/".join(ref.rstrip("/").split("/")[-2:]).partition("/")
                if kind_part == "Medication" and med_id and med_id not in wanted:
                    wanted.append(med_id)
    return [med_id for med_id in wanted if med_id not in present]
