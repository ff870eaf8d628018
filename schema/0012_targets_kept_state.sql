-- roster state store: the state of targets that cannot be listed (a file target: the rows
-- it last wrote), so that a plan has a snapshot to diff against.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- One row per such target, replaced by every apply whose write succeeded.
CREATE TABLE kept_target_state (
    target          TEXT NOT NULL PRIMARY KEY,  -- the target, e.g. `file:/srv/export/people.csv`
    content         TEXT NOT NULL,              -- the connector's own JSON of what it holds
    plan_id         TEXT NOT NULL,              -- the plan whose apply wrote it
    at              TEXT NOT NULL               -- RFC 3339, UTC
) WITHOUT ROWID;
