-- The actions of the plan being made, written as the planner makes them (issue 16), so that
-- a plan of a million adds is never held in memory whole. One draft at a time: a run holds
-- the lock while it plans, and the draft is emptied when a plan starts and once the run no
-- longer reads it. The caps hold actions here (`UPDATE ... WHERE family`), the readers and
-- the numbering into `plan_actions` read it in plan order (the index below).
CREATE TABLE plan_draft (
    n               INTEGER PRIMARY KEY,        -- the order the planner made them in
    tier            INTEGER NOT NULL,           -- 0 users; 1 groups and memberships, after them
    kind            INTEGER NOT NULL,           -- plan order of the kind: add, update, remove, delete
    name            TEXT NOT NULL,              -- the name the action is shown under
    key1            TEXT NOT NULL,              -- the subject's keys (plan order)
    key2            TEXT,
    family          INTEGER,                    -- the caps' family of a user action
    deactivates     INTEGER NOT NULL,
    since_ns        INTEGER,                    -- drip order: missing since (ns), for how many runs
    runs            INTEGER,
    action          TEXT NOT NULL,
    object          TEXT NOT NULL,
    key             TEXT NOT NULL,
    username        TEXT NOT NULL,
    target_id       TEXT,
    status          TEXT NOT NULL,
    reason          TEXT NOT NULL,
    changes         TEXT NOT NULL,
    held_by         TEXT,
    target_version  TEXT,
    target_digest   TEXT
);
CREATE INDEX plan_draft_order ON plan_draft (tier, kind, name, key1, key2, n);
