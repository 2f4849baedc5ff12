"""front desk: preparation instructions per catalog procedure; users' unlock time

Revision ID: 0007_frontdesk
Revises: 0006_print_link, 0003_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_frontdesk"
# Also after 0003_accounts, which makes the users and procedure_catalog tables.
down_revision: str | Sequence[str] | None = ("0006_print_link", "0003_accounts")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("procedure_catalog", schema=None) as batch_op:
        batch_op.add_column(sa.Column("preparation", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unlocked_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("unlocked_at")
    with op.batch_alter_table("procedure_catalog", schema=None) as batch_op:
        batch_op.drop_column("preparation")
