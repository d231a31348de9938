"""Pydantic models of a CDS Hooks 2.0 request, per hook (hookVersion 1.0 contexts).

Unknown top-level keys and ``extension`` objects are accepted and ignored (spec: Extensions).
The FHIR access token is a SecretStr so that no repr, log line or error body can show it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
    model_validator,
)

NonEmpty = Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]
USER_REFERENCE = r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$"
ORDERING_USER = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-\.]{1,64}$"
FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FhirAuthorization(_Wire):
    """The OAuth token the EHR lends for FHIR queries; transient, never logged or stored."""

    access_token: SecretStr = Field(min_length=1)
    token_type: Literal["Bearer"]
    expires_in: StrictInt
    scope: NonEmpty
    subject: NonEmpty
    patient: StrictStr | None = None


class HookRequest(_Wire):
    """The envelope common to every hook; `context` is checked per hook afterwards."""

    hook: NonEmpty
    hookInstance: UUID
    fhirServer: AnyHttpUrl | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self


class PatientViewContext(_Wire):
    userId: StrictStr = Field(pattern=USER_REFERENCE)
    patientId: StrictStr = Field(pattern=FHIR_ID)
    encounterId: StrictStr | None = Field(None, pattern=FHIR_ID)


class DraftOrders(_Wire):
    """A Bundle of draft orders; its entries are read by the order rules, not here."""

    model_config = ConfigDict(extra="allow", frozen=True)
    resourceType: Literal["Bundle"]


class OrderSignContext(_Wire):
    userId: StrictStr = Field(pattern=ORDERING_USER)
    patientId: StrictStr = Field(pattern=FHIR_ID)
    encounterId: StrictStr | None = Field(None, pattern=FHIR_ID)
    draftOrders: DraftOrders


class OrderSelectContext(OrderSignContext):
    selections: list[StrictStr] = Field(min_length=1)


CONTEXT_MODELS: dict[str, type[_Wire]] = {
    "patient-view": PatientViewContext,
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
}


class FeedbackCoding(_Wire):
    system: NonEmpty
    code: NonEmpty
    display: StrictStr | None = None


class OverrideReason(_Wire):
    reason: FeedbackCoding | None = None
    userComment: Annotated[StrictStr, StringConstraints(max_length=10_000)] | None = None


class AcceptedSuggestion(_Wire):
    id: NonEmpty


class FeedbackItem(_Wire):
    """One card's outcome (spec: Feedback). `acceptedSuggestions` is required when accepted."""

    card: NonEmpty
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _outcome_fields(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when the outcome is accepted")
        return self


class FeedbackRequest(_Wire):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=10_000)
