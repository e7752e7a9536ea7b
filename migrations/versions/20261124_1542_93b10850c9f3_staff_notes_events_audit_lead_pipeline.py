"""staff, notes, events, audit, lead pipeline

Revision ID: 93b10850c9f3
Revises: 7940d664df76
Create Date: 2026-11-24 15:42:52.990881+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "93b10850c9f3"
down_revision: str | None = "7940d664df76"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_APPEND_ONLY_PG = [
    """CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_entries is append-only';
    END $$""",
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE OR DELETE ON audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
]
AUDIT_APPEND_ONLY_SQLITE = [
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
]


def upgrade() -> None:
    is_postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_table(
        "staff_members",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.SmallInteger(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_members")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_members_email")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("target_staff_id", sa.Uuid(), nullable=True),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["staff_members.id"], name=op.f("fk_audit_entries_actor_id_staff_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_actor_id"), ["actor_id"], unique=False)
        batch_op.create_index("ix_audit_entries_at_id", ["at", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entries_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "lead_events",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("from_value", sa.String(length=40), nullable=True),
        sa.Column("to_value", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["actor_id"], ["staff_members.id"], name=op.f("fk_lead_events_actor_id_staff_members")),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_events_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_events")),
    )
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_events_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "lead_notes",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["staff_members.id"], name=op.f("fk_lead_notes_author_id_staff_members")
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_notes_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_notes")),
    )
    with op.batch_alter_table("lead_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_notes_lead_id"), ["lead_id"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("urgency", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("assigned_to_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_follow_up_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("search_text", sa.String(length=500), nullable=False, server_default=""))
        batch_op.create_index(batch_op.f("ix_leads_assigned_to_id"), ["assigned_to_id"], unique=False)
        batch_op.create_index("ix_leads_created", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_leads_queue",
            ["urgency", "created_at", "id"],
            unique=False,
            postgresql_where=sa.text("status = 'new'"),
            sqlite_where=sa.text("status = 'new'"),
        )
        if is_postgresql:
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        batch_op.create_index(
            "ix_leads_search_trgm",
            ["search_text"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
        batch_op.create_index("ix_leads_status_created", ["status", "created_at", "id"], unique=False)
        batch_op.create_index("ix_leads_status_urgency", ["status", "urgency", "created_at", "id"], unique=False)
        batch_op.create_index("ix_leads_urgency", ["urgency", "created_at", "id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_leads_assigned_to_id_staff_members"), "staff_members", ["assigned_to_id"], ["id"]
        )

    # Existing leads: the keys the new columns hold (see intake.db.models.lead).
    op.execute(
        "UPDATE leads SET urgency = tier_rank * 200 + (100 - score), "
        "search_text = lower(first_name || ' ' || last_name || ' ' || email || ' ' || "
        "replace(coalesce(phone, ''), '+', ''))"
    )
    for statement in AUDIT_APPEND_ONLY_PG if is_postgresql else AUDIT_APPEND_ONLY_SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_entries_no_update ON audit_entries")
        op.execute("DROP FUNCTION audit_entries_append_only()")
    else:
        op.execute("DROP TRIGGER audit_entries_no_update")
        op.execute("DROP TRIGGER audit_entries_no_delete")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_leads_assigned_to_id_staff_members"), type_="foreignkey")
        batch_op.drop_index("ix_leads_urgency")
        batch_op.drop_index("ix_leads_status_urgency")
        batch_op.drop_index("ix_leads_status_created")
        batch_op.drop_index(
            "ix_leads_search_trgm", postgresql_using="gin", postgresql_ops={"search_text": "gin_trgm_ops"}
        )
        batch_op.drop_index(
            "ix_leads_queue",
            postgresql_where=sa.text("status = 'new'"),
            sqlite_where=sa.text("status = 'new'"),
        )
        batch_op.drop_index("ix_leads_created")
        batch_op.drop_index(batch_op.f("ix_leads_assigned_to_id"))
        batch_op.drop_column("search_text")
        batch_op.drop_column("next_follow_up_at")
        batch_op.drop_column("last_contact_at")
        batch_op.drop_column("assigned_to_id")
        batch_op.drop_column("closed_reason")
        batch_op.drop_column("urgency")

    with op.batch_alter_table("lead_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_notes_lead_id"))

    op.drop_table("lead_notes")
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_events_lead_id"))

    op.drop_table("lead_events")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_lead_id"))
        batch_op.drop_index("ix_audit_entries_at_id")
        batch_op.drop_index(batch_op.f("ix_audit_entries_actor_id"))

    op.drop_table("audit_entries")
    op.drop_table("staff_members")
    op.drop_table("revoked_tokens")
