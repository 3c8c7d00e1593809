"""timeline_indexes: each source of a record's timeline read newest first through an index
(record history, flow history, tasks, rule runs, action runs, attachments, record links)

The timeline asks every source for ``… WHERE record_id IN (…) ORDER BY time DESC LIMIT n``;
without these, a record with a long history would sort all of it for each page.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 18:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_record_history_record_at", "record_history", ["record_id", "at"]),
    ("ix_flow_history_run_at", "flow_history", ["run_id", "at"]),
    ("ix_tasks_record_created", "tasks", ["record_id", "created_at"]),
    ("ix_rule_runs_record_at", "rule_runs", ["record_id", "at"]),
    ("ix_action_runs_rule_run_id", "action_runs", ["rule_run_id"]),
    ("ix_attachments_record_created", "attachments", ["record_id", "created_at"]),
    ("ix_record_links_target_field_source", "record_links",
     ["target_id", "field", "source_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
