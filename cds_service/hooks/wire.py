"""Pydantic models of a CDS Hooks 2.0 request, per hook (hookVersion 1.0 contexts).

Unknown top-level keys and ``extension`` objects are accepted and ignored (spec: Extensions).
The FHIR access token is a SecretStr so that no repr, log line or error body can show it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
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

from cds_service.outbound import UrlRefused, canonical
from cds_service.stored_text import (
    ID_CHARS,
    REASON_CODE_CHARS,
    SUGGESTION_ID_CHARS,
    URI_CHARS,
    USER_COMMENT_CHARS,
    storable,
)

NonEmpty = Annotated[StrictStr, StringConstraints(min_length=1, max_length=1024)]
#: RFC 6750 bearer tokens are visible ASCII; anything else cannot go in an HTTP header.
_VISIBLE_ASCII = frozenset(chr(code) for code in range(0x21, 0x7F))
MAX_ACCESS_TOKEN_CHARS = 16 * 1024
USER_REFERENCE = r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-\.]{1,64}$"
ORDERING_USER = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-\.]{1,64}$"
FHIR_ID = r"^[A-Za-z0-9\-\.]{1,64}$"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FhirAuthorization(_Wire):
    """The OAuth token the EHR lends for FHIR queries; transient, never logged or stored."""

    access_token: SecretStr = Field(
        min_length=1,
        max_length=MAX_ACCESS_TOKEN_CHARS,
        json_schema_extra={"pattern": "^[!-~]+$"},  # _visible_ascii, in the document
    )
    token_type: Literal["Bearer"]
    expires_in: StrictInt
    scope: NonEmpty
    subject: NonEmpty
    patient: StrictStr | None = None

    @field_validator("access_token", mode="before")
    @classmethod
    def _visible_ascii(cls, value: object) -> object:
        if isinstance(value, str) and not set(value) <= _VISIBLE_ASCII:
            raise ValueError("access_token must be visible ASCII (RFC 6750), without spaces")
        return value


#: What the document promises of a fhirServer the service accepts (a subset of what
#: cds_service.outbound's rules accept): an absolute http(s) URL with a host of letters,
#: digits, dots and hyphens, an optional port and plain path segments. Schema-valid yet
#: refused (400) was found by schemathesis: `"sqlite:"` is a URI.
FHIR_BASE_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9_~-]+)*/?$"
)
#: `fhirAuthorization` requires `fhirServer` (spec: "If fhirAuthorization is provided, this
#: field is REQUIRED"), in the OpenAPI document as the service checks it (_server_with_token):
#: a string when the token is an object (if/then). A null token is no token, so not
#: dependentRequired, which would also refuse ``"fhirAuthorization": null`` alone.
_SERVER_WITH_TOKEN: dict[str, Any] = {
    "if": {
        "required": ["fhirAuthorization"],
        "properties": {"fhirAuthorization": {"type": "object"}},
    },
    "then": {"required": ["fhirServer"], "properties": {"fhirServer": {"type": "string"}}},
}


class HookRequest(_Wire):
    """The envelope common to every hook; `context` is checked per hook afterwards."""

    model_config = ConfigDict(json_schema_extra=_SERVER_WITH_TOKEN)  # merged with _Wire's

    hook: NonEmpty
    hookInstance: UUID
    fhirServer: StrictStr | None = Field(
        None, json_schema_extra={"format": "uri", "pattern": FHIR_BASE_PATTERN}
    )
    """Canonical (cds_service.outbound), without a trailing slash."""
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None

    @field_validator("fhirServer")
    @classmethod
    def _fhir_base(cls, value: str | None) -> str | None:
        """A base URL the service can fetch under exactly as written: no query, fragment,
        credentials, dot segments or encoded slashes (the reason never quotes the URL)."""
        if value is None:
            return None
        try:
            return canonical(value).rstrip("/")
        except UrlRefused as refused:
            raise ValueError(f"fhirServer is not a usable FHIR base URL: {refused}") from None

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

    def selected(self) -> tuple[frozenset[str], list[int]]:
        """The ``Type/id`` of each selected draft order, and the positions of the selections
        that name none of the drafts (by ``Type/id``, or the entry's ``fullUrl``)."""
        names: dict[str, str] = {}
        for entry in (self.draftOrders.model_extra or {}).get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            kind, rid = resource.get("resourceType"), resource.get("id")
            if isinstance(kind, str) and isinstance(rid, str):
                names[f"{kind}/{rid}"] = f"{kind}/{rid}"
                if isinstance(entry.get("fullUrl"), str):
                    names[entry["fullUrl"]] = f"{kind}/{rid}"
        unmatched = [i for i, selection in enumerate(self.selections) if selection not in names]
        return frozenset(names[s] for s in self.selections if s in names), unmatched


CONTEXT_MODELS: dict[str, type[_Wire]] = {
    "patient-view": PatientViewContext,
    "order-select": OrderSelectContext,
    "order-sign": OrderSignContext,
}


#: Feedback text: each bounded by the column it is stored in (an accepted suggestion's id,
#: stored in a JSON list, by SUGGESTION_ID_CHARS; a reason's display, stored nowhere, only by
#: the body size) and refused when it holds what no database column can (a NUL, a lone
#: surrogate): a value only the database refuses would be a 503 that no retry cures.
#: In the OpenAPI document: no NUL (a lone surrogate is no valid text for a generator).
_NO_NUL = Field(json_schema_extra={"pattern": r"^[^\u0000]*$"})
CardId = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=ID_CHARS),
    AfterValidator(storable),
    _NO_NUL,
]
ReasonSystem = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=URI_CHARS),
    AfterValidator(storable),
    _NO_NUL,
]
ReasonCode = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=REASON_CODE_CHARS),
    AfterValidator(storable),
    _NO_NUL,
]
UserComment = Annotated[
    StrictStr,
    StringConstraints(max_length=USER_COMMENT_CHARS),
    AfterValidator(storable),
    _NO_NUL,
]
Display = Annotated[StrictStr, AfterValidator(storable), _NO_NUL]
SuggestionId = Annotated[
    StrictStr,
    StringConstraints(min_length=1, max_length=SUGGESTION_ID_CHARS),
    AfterValidator(storable),
    _NO_NUL,
]


class FeedbackCoding(_Wire):
    system: ReasonSystem
    code: ReasonCode
    display: Display | None = None


class OverrideReason(_Wire):
    reason: FeedbackCoding | None = None
    userComment: UserComment | None = None


class AcceptedSuggestion(_Wire):
    id: SuggestionId


#: `acceptedSuggestions`, with one suggestion at least, when the outcome is accepted: in the
#: OpenAPI document as FeedbackItem._outcome_fields checks it.
_SUGGESTIONS_WHEN_ACCEPTED: dict[str, Any] = {
    "if": {"required": ["outcome"], "properties": {"outcome": {"const": "accepted"}}},
    "then": {
        "required": ["acceptedSuggestions"],
        "properties": {"acceptedSuggestions": {"minItems": 1}},
    },
}


class FeedbackItem(_Wire):
    """One card's outcome (spec: Feedback). `acceptedSuggestions` is required when accepted."""

    model_config = ConfigDict(json_schema_extra=_SUGGESTIONS_WHEN_ACCEPTED)  # and _Wire's

    card: CardId
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=100)
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: object) -> object:
        if not isinstance(value, str):  # pydantic would take Unix seconds; RFC 3339 is text
            raise ValueError("outcomeTimestamp must be an RFC 3339 date-time string")
        return value

    @field_validator("outcomeTimestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:  # 9999-12-31T23:59:59-01:00 is valid RFC 3339, and beyond year 9999 in UTC
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("outcomeTimestamp is outside the years 1 to 9999 in UTC") from None

    @model_validator(mode="after")
    def _outcome_fields(self) -> FeedbackItem:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when the outcome is accepted")
        return self


class FeedbackRequest(_Wire):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=10_000)


# The answers the service sends. The service builds them as plain dicts; these models
# describe them for the OpenAPI document (/openapi.json) and for tests that check them.


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class CardCoding(_Answer):
    system: StrictStr
    code: StrictStr
    display: StrictStr | None = None


class CardSource(_Answer):
    """Where a card's knowledge comes from; `topic` is the stable card-topic code."""

    label: StrictStr
    url: StrictStr | None = None
    icon: StrictStr | None = None
    topic: CardCoding | None = None


class CardAction(_Answer):
    """`create` and `update` carry a FHIR resource, `delete` names one by `resourceId`."""

    type: Literal["create", "update", "delete"]
    description: StrictStr
    resource: dict[str, Any] | None = None
    resourceId: StrictStr | None = None


class CardSuggestion(_Answer):
    label: StrictStr
    uuid: StrictStr | None = None
    isRecommended: bool | None = None
    actions: list[CardAction] = Field(default_factory=list)


class CardLink(_Answer):
    label: StrictStr
    url: StrictStr
    type: Literal["absolute", "smart"]
    appContext: StrictStr | None = None


class Card(_Answer):
    """One CDS Hooks 2.0 card."""

    uuid: StrictStr | None = None
    summary: Annotated[StrictStr, StringConstraints(max_length=139)]
    detail: StrictStr | None = None
    indicator: Literal["info", "warning", "critical"]
    source: CardSource
    suggestions: list[CardSuggestion] = Field(default_factory=list)
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[CardCoding] = Field(default_factory=list)
    links: list[CardLink] = Field(default_factory=list)


class HookResponse(_Answer):
    cards: list[Card]
    systemActions: list[CardAction] = Field(default_factory=list)


class DiscoveryService(_Answer):
    hook: StrictStr
    id: StrictStr
    title: StrictStr | None = None
    description: StrictStr
    prefetch: dict[str, StrictStr] = Field(default_factory=dict)
    usageRequirements: StrictStr | None = None
    extension: dict[str, Any] | None = None
    """Carries ``org.rls-cds.version``: the release of the service answering."""


class DiscoveryResponse(_Answer):
    services: list[DiscoveryService]


class FeedbackResponse(_Answer):
    """How many items came, how many were stored now, and how many had been before."""

    received: StrictInt
    stored: StrictInt
    alreadyStored: StrictInt


class ErrorResponse(_Answer):
    """Every error body: a stable code, a message, and for invalid input the fields."""

    error: StrictStr
    message: StrictStr
    details: list[dict[str, Any]] = Field(default_factory=list)


class HealthResponse(_Answer):
    status: Literal["ok"]


class ReadinessResponse(_Answer):
    status: Literal["ready", "not-ready"]
    checks: dict[str, bool]
