"""one head again: the seven revisions made side by side on 0006 meet here

Each 0007 revision was written on its own branch on top of 0006_print_link; ``upgrade``
applies every head, so they all ran, but the graph kept seven heads. This revision
changes nothing in the schema; the next one goes on top of it.

Revision ID: 0008_one_head
Revises: the seven 0007 revisions
"""

from collections.abc import Sequence

revision: str = "0008_one_head"
down_revision: str | Sequence[str] | None = (
    "0007_calendar",
    "0007_codes",
    "0007_frontdesk",
    "0007_hl7_digest",
    "0007_mpps_wrong_entry",
    "0007_print_archive",
    "0007_web_sessions",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
