"""HL7 orders: placer and filler order numbers, processed message control IDs

Revision ID: 0005_orders
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_orders"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        # server_default fills the rows that exist already.
        batch_op.add_column(
            sa.Column(
                "placer_order_number", sa.String(length=64), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "filler_order_number", sa.String(length=64), nullable=False, server_default=""
            )
        )
        batch_op.create_index(
            "ix_procedures_placer_order_number", ["placer_order_number"], unique=False
        )
        batch_op.create_index(
            "ix_procedures_filler_order_number", ["filler_order_number"], unique=False
        )
    op.create_table(
        "hl7_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sending_application", sa.String(length=255), nullable=False),
        sa.Column("sending_facility", sa.String(length=255), nullable=False),
        sa.Column("control_id", sa.String(length=200), nullable=False),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("order_control", sa.String(length=2), nullable=False),
        sa.Column("procedure_id", sa.Integer(), nullable=True),
        sa.Column("ack", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.create_index(
            "uq_hl7_messages_sender_control",
            ["sending_application", "sending_facility", "control_id"],
            unique=True,
        )
        batch_op.create_index("ix_hl7_messages_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    op.drop_table("hl7_messages")
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index("ix_procedures_filler_order_number")
        batch_op.drop_index("ix_procedures_placer_order_number")
        batch_op.drop_column("filler_order_number")
        batch_op.drop_column("placer_order_number")
