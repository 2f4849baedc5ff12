"""HL7 messages: the content digest that tells a retransmission from a reused control ID

Revision ID: 0007_hl7_digest
Revises: 0006_print_link, 0005_orders (which made hl7_messages)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_hl7_digest"
down_revision: str | Sequence[str] | None = ("0006_print_link", "0005_orders")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows of earlier versions keep no digest: a message with their control ID is
    # still answered with their acknowledgement, as before.
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.drop_index("uq_hl7_messages_sender_control")
        batch_op.create_index(
            "uq_hl7_messages_sender_control_digest",
            ["sending_application", "sending_facility", "control_id", "digest"],
            unique=True,
        )


def downgrade() -> None:
    # A reused control ID leaves two rows; the older one answers a retransmission again.
    connection = op.get_bind()
    connection.execute(
        sa.text(
            "DELETE FROM hl7_messages WHERE id NOT IN (SELECT MIN(id) FROM hl7_messages "
            "GROUP BY sending_application, sending_facility, control_id)"
        )
    )
    with op.batch_alter_table("hl7_messages", schema=None) as batch_op:
        batch_op.drop_index("uq_hl7_messages_sender_control_digest")
        batch_op.create_index(
            "uq_hl7_messages_sender_control",
            ["sending_application", "sending_facility", "control_id"],
            unique=True,
        )
        batch_op.drop_column("digest")
