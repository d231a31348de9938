"""The tables of the store: cards we issued, their suggestions, and the feedback on them.

Patients appear only as a keyed pseudonym: HMAC-SHA256, with a secret of this deployment,
of (issuer, tenant, fhirServer, patient id), since a FHIR id names a patient only within one
EHR tenant's server. Enough to suppress a topic for the same patient of the same client,
useless to anyone without the key, and never shared between tenants.

Each issued card records the client it was issued to (issuer, tenant; '' for no tenant) and
its service: feedback is accepted only from that client at that service. Rows written
before migration 0002 have issuer and tenant NULL ("issued before tenant binding"): they
still count in the report, but no client can send feedback on them and they suppress
nothing (their pseudonyms were of the id alone).

The widths are those of cds_service.stored_text, which the wire models check: nothing the
service accepts is refused by a column.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cds_service.stored_text import CLIENT_CHARS, ID_CHARS, REASON_CODE_CHARS, URI_CHARS


class Base(DeclarativeBase):
    pass


class IssuedCard(Base):
    __tablename__ = "issued_card"

    card_uuid: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(ID_CHARS))
    topic: Mapped[str] = mapped_column(String(ID_CHARS))
    hook_instance: Mapped[str] = mapped_column(String(ID_CHARS))
    patient_key: Mapped[str] = mapped_column(String(ID_CHARS))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    issuer: Mapped[str | None] = mapped_column(String(CLIENT_CHARS))
    """The `iss` of the client the card was issued to; NULL before migration 0002."""
    tenant: Mapped[str | None] = mapped_column(String(CLIENT_CHARS))
    """Its tenant ('' when it has none); NULL before migration 0002."""

    __table_args__ = (
        Index("ix_issued_card_patient_topic", "patient_key", "topic"),
        Index("ix_issued_card_issued_at", "issued_at"),
    )


class IssuedSuggestion(Base):
    __tablename__ = "issued_suggestion"

    suggestion_uuid: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    card_uuid: Mapped[str] = mapped_column(String(ID_CHARS), index=True)


class Feedback(Base):
    __tablename__ = "feedback"

    item_key: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    """SHA-256 of the item as sent (canonical JSON): the same item twice is one row."""
    card_uuid: Mapped[str] = mapped_column(String(ID_CHARS), index=True)
    service_id: Mapped[str] = mapped_column(String(ID_CHARS))
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[list[str]] = mapped_column(JSON)
    reason_system: Mapped[str | None] = mapped_column(String(URI_CHARS))
    reason_code: Mapped[str | None] = mapped_column(String(REASON_CODE_CHARS))
    user_comment: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client: Mapped[str] = mapped_column(String(CLIENT_CHARS))
    """The issuer of the client that sent it ('demo' in demo mode)."""
    tenant: Mapped[str | None] = mapped_column(String(CLIENT_CHARS))
    """The tenant of the client that sent it ('' for none); NULL before migration 0002."""


class Suppression(Base):
    """The latest suppressing-kind override per (patient, client, service, topic, reason):
    what suppression reads, written with the feedback (migration 0003 carried the feedback
    stored before over). One row per key, whatever the patient's history, so that a hook's
    suppression read is one primary-key range lookup that costs the same on day 1000 as on
    day 1. Which reasons suppress, and for how long, stay settings applied when reading."""

    __tablename__ = "suppression"

    patient_key: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(CLIENT_CHARS), primary_key=True)
    """The client the card was issued to, who also sent the feedback."""
    tenant: Mapped[str] = mapped_column(String(CLIENT_CHARS), primary_key=True)
    """Its tenant ('' when it has none)."""
    service_id: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    """The service that issued the card."""
    topic: Mapped[str] = mapped_column(String(ID_CHARS), primary_key=True)
    reason_system: Mapped[str] = mapped_column(String(URI_CHARS), primary_key=True)
    reason_code: Mapped[str] = mapped_column(String(REASON_CODE_CHARS), primary_key=True)
    overridden_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """The latest outcomeTimestamp of such an override (UTC): the window counts from it."""
