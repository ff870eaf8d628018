-- roster state store: the source's own id of each record a run read (LDAP content sync:
-- the entry's entryUUID), so that a delete the source names by that id (RFC 4533 names
-- deleted entries by entryUUID only) finds the record's origin in the desired state.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

CREATE TABLE source_ids (
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    source_id   TEXT NOT NULL,              -- lowercase, as the source names it
    origin      TEXT NOT NULL,              -- the record's origin (an LDAP DN)
    PRIMARY KEY (run_id, source_id)
);
