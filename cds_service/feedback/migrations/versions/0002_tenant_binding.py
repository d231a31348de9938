"""Bind issued cards and feedback to the client (issuer, tenant) they belong to.

Existing rows are carried forward unchanged, with issuer and tenant NULL: they were issued
or sent before the binding existed, so nobody can prove they are theirs. They still count
in ``rls-cds feedback-report``; no new feedback can be attached to such a card, and they
suppress nothing (their patient pseudonyms are of the id alone, which new lookups, keyed by
issuer, tenant, fhirServer and id, never produce). Hiding a card again by mistake is what
the binding prevents; showing one again is safe.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issued_card") as table:
        table.add_column(sa.Column("issuer", sa.String(255), nullable=True))
        table.add_column(sa.Column("tenant", sa.String(255), nullable=True))
    with op.batch_alter_table("feedback") as table:
        table.add_column(sa.Column("tenant", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback") as table:
        table.drop_column("tenant")
    with op.batch_alter_table("issued_card") as table:
        table.drop_column("tenant")
        table.drop_column("issuer")
