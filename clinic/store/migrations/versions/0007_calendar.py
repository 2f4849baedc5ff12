"""calendar: booking durations, station opening hours, check-in, patient contact details

Revision ID: 0007_calendar
Revises: 0006_print_link
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_calendar"
down_revision: str | None = "0006_print_link"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing bookings take the built-in default duration; the status column is text,
    # so the new ARRIVED status needs no change.
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("duration_minutes", sa.Integer(), nullable=False, server_default="15")
        )
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("opening_hours", sa.Text(), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("closed_dates", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("phone", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("email", sa.String(length=254), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("email")
        batch_op.drop_column("phone")
    with op.batch_alter_table("stations", schema=None) as batch_op:
        batch_op.drop_column("closed_dates")
        batch_op.drop_column("opening_hours")
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_column("duration_minutes")
