"""performed steps: discontinuation reason, taken on the wrong worklist entry, and the
status each linked booking had before the step

Revision ID: 0007_mpps_wrong_entry
Revises: 0006_print_link, 0004_mpps (which made performed_steps)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_mpps_wrong_entry"
down_revision: str | Sequence[str] | None = ("0006_print_link", "0004_mpps")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # server_default fills the steps that exist already.
    with op.batch_alter_table("performed_steps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "discontinuation_reason",
                sa.String(length=255),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(
            sa.Column("wrong_entry", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("performed_step_links", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_before", sa.String(length=16), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("performed_step_links", schema=None) as batch_op:
        batch_op.drop_column("status_before")
    with op.batch_alter_table("performed_steps", schema=None) as batch_op:
        batch_op.drop_column("wrong_entry")
        batch_op.drop_column("discontinuation_reason")
