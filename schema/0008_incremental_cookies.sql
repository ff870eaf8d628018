-- roster state store: how each run read its source, and where an incremental read starts.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- One row per run that read its source. A row counts only once the run's read was accepted
-- (runs.source_accepted) and its plan stored (plans.run_id): the cookie of a read that was
-- refused, failed or never planned is never used. The next incremental read starts from the
-- newest such row, copies that run's desired snapshot and patches it.
CREATE TABLE source_reads (
    run_id          INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    source          TEXT NOT NULL,              -- the source as described (URL, path)
    server          TEXT,                       -- the server's identity at the read; NULL: not tracked
    cookie          TEXT,                       -- where the next incremental read starts; NULL: none
    kind            TEXT NOT NULL,              -- complete | incremental
    desired         INTEGER NOT NULL,           -- desired users in the run's snapshot (the next read's base)
    changed         INTEGER NOT NULL,           -- records read (all of them for a complete read)
    deleted         INTEGER NOT NULL,           -- explicit delete signals applied
    read_at         TEXT NOT NULL               -- RFC 3339, UTC: when the read started
);
