"""Light, tolerant pydantic models of the few FHIR R4 elements the rules read.

They ignore every element they do not name and keep unknown codes as plain strings, so a
resource from any EHR reads as long as the parts we use are well formed. Validating with
``fhir.resources`` here would cost 50 to 100 times the JSON parse (see docs/design.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)

Text = Annotated[str, StringConstraints(max_length=10_000)]
#: Longest sig read: a real one is a line or two. A longer one is not read (the dose is then
#: unknown, never guessed) and does not make its resource unreadable.
MAX_SIG_CHARS = 1000
#: Most dosage instructions read per resource; with more the daily dose is unknown, and the
#: rest are never validated.
MAX_DOSAGES = 20


def _sig(value: object) -> object:
    return None if isinstance(value, str) and len(value) > MAX_SIG_CHARS else value


def _first_dosages(value: object) -> object:
    """One more than MAX_DOSAGES, so that "too many" is still known to the dose check."""
    return value[: MAX_DOSAGES + 1] if isinstance(value, list) else value


Sig = Annotated[Text | None, BeforeValidator(_sig)]


class _Element(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Coding(_Element):
    system: Text | None = None
    code: Text | None = None
    display: Text | None = None


class CodeableConcept(_Element):
    coding: list[Coding] = Field(default_factory=list, max_length=200)
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


class Reference(_Element):
    reference: Text | None = None


class Quantity(_Element):
    value: float | None = None
    comparator: Text | None = None
    unit: Text | None = None
    system: Text | None = None
    code: Text | None = None


class Period(_Element):
    start: Text | None = None
    end: Text | None = None


class Resource(_Element):
    resourceType: str
    id: Text | None = None


class PatientData(Resource):
    """A resource about one patient, who is named by ``subject``."""

    subject: Reference | None = None


class Patient(Resource):
    gender: Text | None = None
    birthDate: Text | None = None
    deceasedBoolean: bool | None = None
    deceasedDateTime: Text | None = None


class Condition(PatientData):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    code: CodeableConcept | None = None
    onsetDateTime: Text | None = None
    recordedDate: Text | None = None


class Observation(PatientData):
    status: Text
    code: CodeableConcept
    effectiveDateTime: Text | None = None
    effectiveInstant: Text | None = None
    effectivePeriod: Period | None = None
    issued: Text | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: Text | None = None


class Range(_Element):
    low: Quantity | None = None
    high: Quantity | None = None


class DoseAndRate(_Element):
    doseQuantity: Quantity | None = None
    doseRange: Range | None = None


class TimingRepeat(_Element):
    frequency: int | None = None
    frequencyMax: int | None = None
    period: float | None = None
    periodMax: float | None = None
    periodUnit: Text | None = None


class Timing(_Element):
    repeat: TimingRepeat | None = None
    code: CodeableConcept | None = None


class Dosage(_Element):
    text: Sig = None
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    doseAndRate: list[DoseAndRate] = Field(default_factory=list, max_length=20)


class Medication(Resource):
    code: CodeableConcept | None = None


class MedicationUse(PatientData):
    """What MedicationRequest, MedicationStatement and MedicationAdministration share: the
    drug and its status."""

    status: Text
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    reasonCode: list[CodeableConcept] = Field(default_factory=list, max_length=50)
    reasonReference: list[Reference] = Field(default_factory=list, max_length=50)
    """Why it is given (MedicationRequest and MedicationStatement): the indication."""
    contained: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    _raw: dict[str, Any] | None = PrivateAttr(default=None)
    """The resource as received, kept so a suggestion can update it as a whole (spec 29)."""

    def contained_medication(self, reference: str) -> Medication | None:
        """The contained Medication a ``#id`` reference points at, if it reads."""
        for item in self.contained:
            if item.get("resourceType") == "Medication" and f"#{item.get('id')}" == reference:
                try:
                    return Medication.model_validate(item)
                except ValidationError:
                    return None
        return None


class ServiceRequest(PatientData):
    status: Text
    code: CodeableConcept | None = None
    authoredOn: Text | None = None
    occurrenceDateTime: Text | None = None
    occurrencePeriod: Period | None = None


class Procedure(PatientData):
    status: Text
    code: CodeableConcept | None = None
    performedDateTime: Text | None = None
    performedPeriod: Period | None = None


class MedicationRequest(MedicationUse):
    authoredOn: Text | None = None
    dosageInstruction: Annotated[list[Dosage], BeforeValidator(_first_dosages)] = Field(
        default_factory=list
    )


class MedicationStatement(MedicationUse):
    effectiveDateTime: Text | None = None
    effectivePeriod: Period | None = None
    dateAsserted: Text | None = None
    dosage: Annotated[list[Dosage], BeforeValidator(_first_dosages)] = Field(default_factory=list)


class MedicationAdministration(MedicationUse):
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
