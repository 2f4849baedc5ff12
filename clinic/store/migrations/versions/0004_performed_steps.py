"""performed procedure steps (MPPS)

Revision ID: 0004_mpps
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_mpps"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "performed_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("calling_ae_title", sa.String(length=16), nullable=False),
        sa.Column("station_ae_title", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("pps_id", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("patient_name", sa.String(length=200), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("performed_series", sa.Text(), nullable=False),
        sa.Column("dataset_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sop_instance_uid"),
    )
    with op.batch_alter_table("performed_steps", schema=None) as batch_op:
        batch_op.create_index("ix_performed_steps_status", ["status"], unique=False)
        batch_op.create_index("ix_performed_steps_ended_at", ["ended_at"], unique=False)
        batch_op.create_index("ix_performed_steps_created_at", ["created_at"], unique=False)
    op.create_table(
        "performed_step_links",
        sa.Column("performed_step_id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["performed_step_id"], ["performed_steps.id"]),
        sa.ForeignKeyConstraint(["procedure_id"], ["procedures.id"]),
        sa.PrimaryKeyConstraint("performed_step_id", "procedure_id"),
    )
    with op.batch_alter_table("performed_step_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_performed_step_links_procedure_id", ["procedure_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("performed_step_links")
    op.drop_table("performed_steps")
