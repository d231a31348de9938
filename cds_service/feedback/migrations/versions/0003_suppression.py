"""The suppression table: one row per (patient, client, service, topic, override reason).

Suppression used to be a join of the patient's issued cards with their feedback, whose cost
grew with the patient's history; now it reads this small table, written with each feedback
item. The feedback already stored is carried over by the same join the old query made
(feedback of the card's own client and tenant, overridden with a coded reason), keeping the
latest override time per key: what was suppressed before the upgrade still is, for as long
as before, and nothing else. Rows of cards issued before tenant binding (issuer NULL)
suppressed nothing and are not carried over.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
KEY = ("patient_key", "issuer", "tenant", "service_id", "topic", "reason_system", "reason_code")


def upgrade() -> None:
    op.create_table(
        "suppression",
        sa.Column("patient_key", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("reason_system", sa.String(255), nullable=False),
        sa.Column("reason_code", sa.String(128), nullable=False),
        sa.Column("overridden_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*KEY, name="pk_suppression"),
    )
    op.execute(
        "INSERT INTO suppression (patient_key, issuer, tenant, service_id, topic, "
        "reason_system, reason_code, overridden_at) "
        "SELECT c.patient_key, c.issuer, c.tenant, c.service_id, c.topic, f.reason_system, "
        "f.reason_code, MAX(f.outcome_at) "
        "FROM feedback f JOIN issued_card c ON c.card_uuid = f.card_uuid "
        "WHERE f.outcome = 'overridden' AND f.reason_system IS NOT NULL "
        "AND f.reason_code IS NOT NULL AND c.issuer IS NOT NULL AND c.tenant IS NOT NULL "
        "AND f.client = c.issuer AND f.tenant = c.tenant "
        "GROUP BY c.patient_key, c.issuer, c.tenant, c.service_id, c.topic, "
        "f.reason_system, f.reason_code"
    )


def downgrade() -> None:
    op.drop_table("suppression")
