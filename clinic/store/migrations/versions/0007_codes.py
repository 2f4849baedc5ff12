"""procedure codes: a booking's procedure and protocol code, the catalog's codes

Revision ID: 0007_codes
Revises: 0006_print_link, 0003_accounts
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_codes"
# On top of the current head; the catalog table it changes comes from the accounts
# revision, so that branch must come first (a merge point, not a mere dependency, so no
# revision stays a head of its own in alembic_version).
down_revision: str | tuple[str, ...] | None = ("0006_print_link", "0003_accounts")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROCEDURE_COLUMNS = (
    ("procedure_code_value", 16),
    ("procedure_code_scheme", 16),
    ("procedure_code_meaning", 64),
    ("protocol_code_value", 16),
    ("protocol_code_scheme", 16),
    ("protocol_code_meaning", 64),
)
_CATALOG_COLUMNS = (
    ("code_scheme", 16),
    ("code_meaning", 64),
    ("protocol_code_value", 16),
    ("protocol_code_scheme", 16),
    ("protocol_code_meaning", 64),
)


def upgrade() -> None:
    # server_default fills the rows that exist already: no code.
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        for name, length in _PROCEDURE_COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=length), nullable=False, server_default="")
            )
        batch_op.create_index(
            "ix_procedures_procedure_code_value", ["procedure_code_value"], unique=False
        )
    with op.batch_alter_table("procedure_catalog", schema=None) as batch_op:
        for name, length in _CATALOG_COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=length), nullable=False, server_default="")
            )


def downgrade() -> None:
    with op.batch_alter_table("procedure_catalog", schema=None) as batch_op:
        for name, _ in reversed(_CATALOG_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("procedures", schema=None) as batch_op:
        batch_op.drop_index("ix_procedures_procedure_code_value")
        for name, _ in reversed(_PROCEDURE_COLUMNS):
            batch_op.drop_column(name)
