"""Light, tolerant msgspec Structs of the few FHIR R4 elements the rules read.

They ignore every element they do not name and keep unknown codes as plain strings, so a
resource from any EHR reads as long as the parts we use are well formed. Validating with
``fhir.resources`` here would cost 50 to 100 times the JSON parse (see docs/design.md).
msgspec decodes a resource's bytes straight into these (``DECODER``), skipping what they do
not name without building it: 0.28 times ``json.loads`` of the same bytes, where the
pydantic models they replace cost more than the parse itself (figures in the commit that
made the change). Conversion is lax as pydantic's was: ``"1.5"`` reads as a number,
``2.0`` as an integer.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

Text = Annotated[str, msgspec.Meta(max_length=10_000)]
#: Longest sig read: a real one is a line or two. A longer one is not read (the dose is then
#: unknown, never guessed) and does not make its resource unreadable.
MAX_SIG_CHARS = 1000
#: Most dosage instructions read per resource; with more the daily dose is unknown, and the
#: rest are never validated.
MAX_DOSAGES = 20


class _Element(msgspec.Struct, kw_only=True, gc=False):
    """gc=False: a tree read from JSON holds no cycles, so the collector need not track
    the thousands of these a large record makes (it was a tenth of a large call)."""

    @classmethod
    def model_validate(cls, data: object) -> Any:
        """The element read from already-parsed JSON (fetched data, draft orders, tests),
        with the same conversions as a decode; msgspec.ValidationError when it does not fit."""
        return msgspec.convert(data, cls, strict=False)


class Coding(_Element, kw_only=True):
    system: Text | None = None
    code: Text | None = None
    display: Text | None = None


class CodeableConcept(_Element, kw_only=True):
    coding: Annotated[list[Coding], msgspec.Meta(max_length=200)] = []
    text: Text | None = None

    def pairs(self) -> list[tuple[str | None, str | None]]:
        """The (system, code) pairs of every coding."""
        return [(c.system, c.code) for c in self.coding]

    def label(self) -> str | None:
        """The best human-readable name: text, then the first coding display."""
        if self.text:
            return self.text
        return next((c.display for c in self.coding if c.display), None)

    def texts(self) -> list[str]:
        """Every free-text name the concept carries (text and coding displays)."""
        return [t for t in [self.text, *(c.display for c in self.coding)] if t]


class Reference(_Element, kw_only=True):
    reference: Text | None = None


class Quantity(_Element, kw_only=True):
    value: float | None = None
    comparator: Text | None = None
    unit: Text | None = None
    system: Text | None = None
    code: Text | None = None


class Period(_Element, kw_only=True):
    start: Text | None = None
    end: Text | None = None


class Resource(_Element, tag_field="resourceType", tag=True, kw_only=True):
    """A resource, tagged by its ``resourceType`` (each subclass's name)."""

    id: Text | None = None

    @property
    def resourceType(self) -> str:
        return type(self).__name__


class PatientData(Resource, kw_only=True):
    """A resource about one patient, who is named by ``subject``."""

    subject: Reference | None = None


class Patient(Resource, kw_only=True):
    gender: Text | None = None
    birthDate: Text | None = None
    deceasedBoolean: bool | None = None
    deceasedDateTime: Text | None = None


class Condition(PatientData, kw_only=True):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    code: CodeableConcept | None = None
    onsetDateTime: Text | None = None
    recordedDate: Text | None = None


class Observation(PatientData, kw_only=True):
    status: Text
    code: CodeableConcept
    effectiveDateTime: Text | None = None
    effectiveInstant: Text | None = None
    effectivePeriod: Period | None = None
    issued: Text | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: Text | None = None


class Range(_Element, kw_only=True):
    low: Quantity | None = None
    high: Quantity | None = None


class DoseAndRate(_Element, kw_only=True):
    doseQuantity: Quantity | None = None
    doseRange: Range | None = None


class TimingRepeat(_Element, kw_only=True):
    frequency: int | None = None
    frequencyMax: int | None = None
    period: float | None = None
    periodMax: float | None = None
    periodUnit: Text | None = None


class Timing(_Element, kw_only=True):
    repeat: TimingRepeat | None = None
    code: CodeableConcept | None = None


class Dosage(_Element, kw_only=True):
    text: str | None = None
    """The sig; None when longer than MAX_SIG_CHARS (see __post_init__)."""
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    doseAndRate: Annotated[list[DoseAndRate], msgspec.Meta(max_length=20)] = []

    def __post_init__(self) -> None:
        if self.text is not None and len(self.text) > MAX_SIG_CHARS:
            self.text = None


def _first_dosages(items: list[Any]) -> list[Dosage]:
    """One more than MAX_DOSAGES, so that "too many" is still known to the dose check; the
    rest are never validated (a ValidationError here makes the resource unreadable)."""
    return [msgspec.convert(item, Dosage, strict=False) for item in items[: MAX_DOSAGES + 1]]


class Medication(Resource, kw_only=True):
    code: CodeableConcept | None = None


class MedicationUse(PatientData, dict=True, gc=True, kw_only=True):
    """What MedicationRequest, MedicationStatement and MedicationAdministration share: the
    drug and its status.

    The resource as received is kept (set by the reader, never decoded from the
    resource: ``_received`` is no field), so a suggestion can update it as a whole (spec 29).
    """

    status: Text
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    reasonCode: Annotated[list[CodeableConcept], msgspec.Meta(max_length=50)] = []
    reasonReference: Annotated[list[Reference], msgspec.Meta(max_length=50)] = []
    """Why it is given (MedicationRequest and MedicationStatement): the indication."""
    contained: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=100)] = []

    _received: ClassVar[bytes | dict[str, Any] | None] = None

    def keep_received(self, received: bytes | dict[str, Any]) -> None:
        """Remember the resource as received: its JSON bytes, or the dict it was read from."""
        self._received = received  # type: ignore[misc]  # per instance (dict=True)

    @property
    def raw(self) -> dict[str, Any] | None:
        """The resource as received, as a dict (parsed from its bytes when first asked)."""
        received = self._received
        if isinstance(received, bytes):
            try:  # exact integers, as json's; 1e400 in an element no rule reads: no update
                received = msgspec.json.decode(received)
            except msgspec.ValidationError:
                received = None
            self._received = received  # type: ignore[misc]
        return received if isinstance(received, dict) else None

    def contained_medication(self, reference: str) -> Medication | None:
        """The contained Medication a ``#id`` reference points at, if it reads."""
        for item in self.contained:
            if item.get("resourceType") == "Medication" and f"#{item.get('id')}" == reference:
                try:
                    found: Medication = Medication.model_validate(item)
                except msgspec.ValidationError:
                    return None
                return found
        return None


class ServiceRequest(PatientData, kw_only=True):
    status: Text
    code: CodeableConcept | None = None
    authoredOn: Text | None = None
    occurrenceDateTime: Text | None = None
    occurrencePeriod: Period | None = None


class Procedure(PatientData, kw_only=True):
    status: Text
    code: CodeableConcept | None = None
    performedDateTime: Text | None = None
    performedPeriod: Period | None = None


class MedicationRequest(MedicationUse, kw_only=True):
    authoredOn: Text | None = None
    dosageInstruction: list[Any] = []
    """Read as Dosages, the first MAX_DOSAGES + 1 of them only (see _first_dosages)."""

    def __post_init__(self) -> None:
        self.dosageInstruction = _first_dosages(self.dosageInstruction)


class MedicationStatement(MedicationUse, kw_only=True):
    effectiveDateTime: Text | None = None
    effectivePeriod: Period | None = None
    dateAsserted: Text | None = None
    dosage: list[Any] = []
    """Read as Dosages, the first MAX_DOSAGES + 1 of them only (see _first_dosages)."""

    def __post_init__(self) -> None:
        self.dosage = _first_dosages(self.dosage)


class MedicationAdministration(MedicationUse, kw_only=True):
    """A dose given (IV iron in the last weeks is on record as one)."""

    effectiveDateTime: Text | None = None
    effectivePeriod: Period | None = None


MODELS: dict[str, type[Resource]] = {
    "Patient": Patient,
    "Condition": Condition,
    "Observation": Observation,
    "MedicationRequest": MedicationRequest,
    "MedicationStatement": MedicationStatement,
    "MedicationAdministration": MedicationAdministration,
    "Medication": Medication,
    "ServiceRequest": ServiceRequest,
    "Procedure": Procedure,
}
#: One resource of a type the rules read, from its JSON bytes (the tag picks the Struct).
AnyResource = (
    Patient
    | Condition
    | Observation
    | MedicationRequest
    | MedicationStatement
    | MedicationAdministration
    | Medication
    | ServiceRequest
    | Procedure
)
DECODER = msgspec.json.Decoder(AnyResource, strict=False)
