"""Ways to damage one FHIR resource, each with what the service should make of the result.

A damage returns the damaged resource and the *reference*: what the hook must answer as if
it had received instead. ``REMOVED`` means "as if the resource were not there at all" (the
resource is unusable, so it must be skipped or ignored, and counted); a dict means "as if it
were this resource" (a non-essential element is unusable, or an element the service does not
read is odd, so only that element is lost).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REMOVED = None
MEGABYTE = "x" * (1024 * 1024)
DEPTH = 200

#: The element whose absence makes a resource unusable to the rules ("its code").
CODE_ELEMENT = {
    "Condition": "code",
    "Observation": "code",
    "MedicationRequest": "medicationCodeableConcept",
    "MedicationStatement": "medicationCodeableConcept",
    "ServiceRequest": "code",
    "Procedure": "code",
    "Medication": "code",
}
#: Elements the reader's model requires to be of a given shape, per resource type.
SHAPED_ELEMENTS = {
    "Condition": ("code", "subject", "clinicalStatus", "verificationStatus"),
    "Observation": ("code", "status", "subject", "valueQuantity"),
    "MedicationRequest": ("status", "subject", "medicationCodeableConcept", "dosageInstruction"),
    "MedicationStatement": ("status", "subject", "medicationCodeableConcept"),
    "ServiceRequest": ("status", "subject", "code"),
    "Procedure": ("status", "subject", "code"),
    "Medication": ("code",),
    "Patient": ("gender", "birthDate"),
}
#: dateTime elements that only date a resource (the resource stays usable without them).
DATES = {
    "Condition": ("onsetDateTime", "recordedDate"),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "dateAsserted"),
    "ServiceRequest": ("authoredOn", "occurrenceDateTime"),
    "Procedure": ("performedDateTime",),
    "Patient": ("birthDate",),
}
OBSERVATION_DATES = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued")
#: Resource types with a status code the rules check against a closed list.
STATUSED = (
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "ServiceRequest",
    "Procedure",
)
IMPOSSIBLE_DATES = ("2026-02-30", "2026-13-01", "2026-11-28T25:61:00Z", "yesterday", "0000-00-00")
UNKNOWN_STATUSES = ("bogus", "FINAL", "final ", "")
WRONG_RESOURCE_TYPES = ("Observatoin", "condition", "", 42, None, ["Condition"], {"x": 1})
#: Values of the wrong JSON type for any object- or string-valued element.
WRONG_VALUES = (42, 3.5, True, "text", [1, 2], None)


@dataclass(frozen=True)
class Damage:
    """One way of breaking a resource; `apply(resource, choice)` -> (damaged, reference)."""

    name: str
    applies: Callable[[dict[str, Any]], bool]
    apply: Callable[[dict[str, Any], int], tuple[dict[str, Any], dict[str, Any] | None]]


def _kind(resource: dict[str, Any]) -> str:
    return resource["resourceType"]


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"deeper": value} if level % 2 else [value]
    return value


def _wrong_resource_type(resource, choice):
    damaged = {**resource, "resourceType": WRONG_RESOURCE_TYPES[choice % 7]}
    return damaged, REMOVED


def _wrong_type(resource, choice):
    elements = [e for e in SHAPED_ELEMENTS[_kind(resource)] if e in resource]
    element = elements[choice % len(elements)]
    wrong = [v for v in WRONG_VALUES if not isinstance(v, type(resource[element]))]
    if element in ("gender", "birthDate"):  # Patient: the patient's facts are lost, not it
        wrong = [v for v in wrong if v is not None]
        damaged = {**resource, element: wrong[choice % len(wrong)]}
        return damaged, {"resourceType": "Patient", "id": resource["id"]}
    if element in ("clinicalStatus", "verificationStatus", "dosageInstruction"):
        wrong = [v for v in wrong if v is not None]  # null: the element is absent, no damage
    return {**resource, element: wrong[choice % len(wrong)]}, REMOVED


def _missing_code(resource, choice):
    element = CODE_ELEMENT[_kind(resource)]
    damaged = {k: v for k, v in resource.items() if k not in (element, "medicationReference")}
    return damaged, REMOVED


def _null_coding(resource, choice):
    element = CODE_ELEMENT[_kind(resource)]
    concept = dict(resource[element])
    concept["coding"] = [None, [None], [{"code": None, "system": 7}], {"code": "x"}][choice % 4]
    return {**resource, element: concept}, REMOVED


def _impossible_date(resource, choice):
    bad = IMPOSSIBLE_DATES[choice % len(IMPOSSIBLE_DATES)]
    if _kind(resource) == "Observation":  # undated lab: unusable
        damaged = {k: v for k, v in resource.items() if k not in OBSERVATION_DATES}
        return {**damaged, "effectiveDateTime": bad}, REMOVED
    dates = [d for d in DATES[_kind(resource)] if d in resource]
    damaged = {**resource, **dict.fromkeys(dates, bad)}
    return damaged, {k: v for k, v in resource.items() if k not in dates}


def _unknown_status(resource, choice):
    damaged = {**resource, "status": UNKNOWN_STATUSES[choice % len(UNKNOWN_STATUSES)]}
    return damaged, REMOVED


def _huge_string_read(resource, choice):
    """A megabyte in an element the reader reads: beyond its length limit, so unusable."""
    kind = _kind(resource)
    if kind == "Patient":
        return {**resource, "gender": MEGABYTE}, {"resourceType": "Patient", "id": resource["id"]}
    element = CODE_ELEMENT.get(kind, "code")
    concept = copy.deepcopy(resource[element])
    if choice % 2:
        concept["text"] = MEGABYTE
    else:
        concept["coding"][0]["display"] = MEGABYTE
    return {**resource, element: concept}, REMOVED


def _huge_string_unread(resource, choice):
    """A megabyte in an element the reader ignores: the resource reads as before."""
    return {**resource, "note": [{"text": MEGABYTE}]}, resource


def _deep_nesting_read(resource, choice):
    kind = _kind(resource)
    if kind == "Patient":
        return {**resource, "gender": _nested(DEPTH)}, {
            "resourceType": "Patient",
            "id": resource["id"],
        }
    element = CODE_ELEMENT.get(kind, "code")
    return {**resource, element: {"coding": [{"system": _nested(DEPTH)}]}}, REMOVED


def _deep_nesting_unread(resource, choice):
    extension = [{"url": "http://example.org/deep", "valueString": "x", "_deep": _nested(DEPTH)}]
    return {**resource, "extension": extension}, resource


def _list_for_object(resource, choice):
    kind = _kind(resource)
    if kind == "Patient":
        name = "gender" if "gender" in resource else "birthDate"
        return {**resource, name: [resource.get(name)]}, {
            "resourceType": "Patient",
            "id": resource["id"],
        }
    objects = [
        e
        for e in ("code", "subject", "valueQuantity", "medicationCodeableConcept")
        if isinstance(resource.get(e), dict)
    ]
    element = objects[choice % len(objects)]
    return {**resource, element: [resource[element]]}, REMOVED


def _has_code(resource):
    element = CODE_ELEMENT.get(_kind(resource))
    return (
        element is not None
        and isinstance(resource.get(element), dict)
        and bool(resource[element].get("coding"))
    )


def _has_object(resource):
    return (
        _kind(resource) == "Patient" and ("gender" in resource or "birthDate" in resource)
    ) or any(
        isinstance(resource.get(e), dict)
        for e in ("code", "subject", "valueQuantity", "medicationCodeableConcept")
    )


DAMAGES = (
    Damage("wrong-resource-type", lambda r: _kind(r) != "Patient", _wrong_resource_type),
    Damage(
        "wrong-type",
        lambda r: any(e in r for e in SHAPED_ELEMENTS.get(_kind(r), ())),
        _wrong_type,
    ),
    Damage("missing-code", _has_code, _missing_code),
    Damage("null-coding", _has_code, _null_coding),
    Damage(
        "impossible-date",
        lambda r: _kind(r) == "Observation" or any(d in r for d in DATES.get(_kind(r), ())),
        _impossible_date,
    ),
    Damage("unknown-status", lambda r: _kind(r) in STATUSED and "status" in r, _unknown_status),
    Damage(
        "huge-string-read", lambda r: _has_code(r) or (_kind(r) == "Patient"), _huge_string_read
    ),
    Damage("huge-string-unread", lambda r: True, _huge_string_unread),
    Damage(
        "deep-nesting-read",
        lambda r: _kind(r) in CODE_ELEMENT or _kind(r) == "Patient",
        _deep_nesting_read,
    ),
    Damage("deep-nesting-unread", lambda r: True, _deep_nesting_unread),
    Damage("list-for-object", _has_object, _list_for_object),
)
