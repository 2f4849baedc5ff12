"""print jobs: the booking (patient) a job belongs to

Revision ID: 0006_print_link
Revises: 0002_print
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_print_link"
down_revision: str | None = "0002_print"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a job from a station with no matching booking stays unlinked.
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("procedure_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_print_jobs_procedure_id", ["procedure_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_print_jobs_procedure_id", "procedures", ["procedure_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_print_jobs_procedure_id", type_="foreignkey")
        batch_op.drop_index("ix_print_jobs_procedure_id")
        batch_op.drop_column("procedure_id")
