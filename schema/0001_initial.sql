-- roster state store, first version.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- Every plan / apply / sync, with who ran it and how it ended.
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,              -- plan | apply | sync
    started_at      TEXT NOT NULL,              -- RFC 3339, UTC
    finished_at     TEXT,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    config_digest   TEXT NOT NULL,
    outcome         TEXT NOT NULL DEFAULT 'running', -- running | no-changes | changes | held | applied | failed | refused | error
    error           TEXT,
    source_count    INTEGER,                    -- records the source returned
    source_complete INTEGER,                    -- 1 when the read finished, 0 when it failed part-way
    source_accepted INTEGER NOT NULL DEFAULT 0, -- 1 when the read passed the completeness checks
    target_count    INTEGER,
    rejected        INTEGER,
    plan_id         TEXT
);

-- The mapped source, per run.
CREATE TABLE desired_users (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    username        TEXT NOT NULL,
    username_folded TEXT NOT NULL,              -- lowercase, for matching (SCIM compares userName case-insensitively)
    name            TEXT,
    email           TEXT,
    phones          TEXT NOT NULL,              -- JSON array of strings
    fields          TEXT NOT NULL,              -- JSON object: field -> {"op":"set","value":..} | {"op":"clear"}
    origin          TEXT NOT NULL,
    digest          TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX desired_users_username ON desired_users (run_id, username_folded);

-- The target snapshot, per run, with the target's own id and version.
CREATE TABLE target_users (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    external_id     TEXT,
    username        TEXT NOT NULL,
    username_folded TEXT NOT NULL,
    name            TEXT,
    email           TEXT,
    phones          TEXT NOT NULL,
    fields          TEXT NOT NULL,              -- JSON object: field -> value
    active          INTEGER NOT NULL,
    version         TEXT,
    digest          TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE INDEX target_users_external_id ON target_users (run_id, external_id);
CREATE INDEX target_users_username ON target_users (run_id, username_folded);

-- Source records that were not used, and why.
CREATE TABLE rejects (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    origin          TEXT NOT NULL,
    key             TEXT,
    username        TEXT,
    reason          TEXT NOT NULL
);
CREATE INDEX rejects_run ON rejects (run_id, key);

-- Every plan, with the digests apply checks. With its rows in plan_actions it is the whole
-- plan file: `header` is the plan's JSON without its actions.
CREATE TABLE plans (
    id              TEXT PRIMARY KEY,
    run_id          INTEGER REFERENCES runs(id),
    created_at      TEXT NOT NULL,
    config_digest   TEXT NOT NULL,
    desired_digest  TEXT NOT NULL,
    status          TEXT NOT NULL,              -- planned | applying | applied | partial
    header          TEXT NOT NULL
);

-- Every action of every plan: the apply journal.
CREATE TABLE plan_actions (
    plan_id         TEXT NOT NULL REFERENCES plans(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    action          TEXT NOT NULL,              -- add | update | remove | delete
    object          TEXT NOT NULL,              -- user | group | membership
    key             TEXT NOT NULL,
    username        TEXT NOT NULL,
    target_id       TEXT,
    status          TEXT NOT NULL,              -- planned | held | applying | applied | failed | skipped
    reason          TEXT NOT NULL,
    changes         TEXT NOT NULL,              -- JSON: [{"field","before","after"}]
    held_by         TEXT,
    target_version  TEXT,
    target_digest   TEXT,
    error           TEXT,
    result_id       TEXT,                       -- the target id an add created or adopted
    started_at      TEXT,
    finished_at     TEXT,
    PRIMARY KEY (plan_id, seq)
) WITHOUT ROWID;

-- Accounts roster itself took out of service: they are reactivated when they return.
CREATE TABLE deactivated (
    target_id       TEXT PRIMARY KEY,
    key             TEXT NOT NULL,
    plan_id         TEXT NOT NULL,
    at              TEXT NOT NULL
);

-- One row while a run holds the state.
CREATE TABLE lock (
    singleton       INTEGER PRIMARY KEY CHECK (singleton = 1),
    lock_id         TEXT NOT NULL,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    command         TEXT NOT NULL,
    since           TEXT NOT NULL
);
