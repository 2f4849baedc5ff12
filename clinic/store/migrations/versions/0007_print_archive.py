"""print jobs: archive to a PACS (state per job, history of what was sent) and the hold queue

Revision ID: 0007_print_archive
Revises: 0006_print_link
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_print_archive"
down_revision: str | None = "0006_print_link"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        # Empty: the printer does not archive; else pending, sent or failed.
        batch_op.add_column(
            sa.Column("archive_status", sa.String(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("archive_to", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("archive_error", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("archive_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("archive_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("archive_pending_since", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("archive_sent_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("archive_procedure_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_print_jobs_archive_status", ["archive_status"], unique=False)
    op.create_table(
        "print_archive_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        # No foreign key: the history outlives a job removed by retention.
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=True),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uids", sa.Text(), nullable=False),
        sa.Column("corrects_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_print_archive_sends_job_id", "print_archive_sends", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_print_archive_sends_job_id", table_name="print_archive_sends")
    op.drop_table("print_archive_sends")
    with op.batch_alter_table("print_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_print_jobs_archive_status")
        for column in (
            "held",
            "archive_procedure_id",
            "archive_sent_at",
            "archive_pending_since",
            "archive_next_at",
            "archive_attempts",
            "archive_error",
            "archive_to",
            "archive_status",
        ):
            batch_op.drop_column(column)
