"""staff_members.password_changed_at: a password change revokes the tokens issued before it

Revision ID: e3f1c2a9d4b7
Revises: b7e2a4c91d35
Create Date: 2026-12-02 05:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3f1c2a9d4b7"
down_revision: str | None = "b7e2a4c91d35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: the accounts there are have not changed their password since, and their tokens stay good.
    op.add_column("staff_members", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("staff_members") as batch:
        batch.drop_column("password_changed_at")
