-- roster state store: group sync.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- The mapped source groups, per run (and the group-all group, with all_users = 1).
CREATE TABLE desired_groups (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    name            TEXT NOT NULL,
    name_folded     TEXT NOT NULL,              -- lowercase, for matching (displayName is compared case-insensitively)
    origin          TEXT NOT NULL,              -- the group's DN; '' for the group-all group
    all_users       INTEGER NOT NULL DEFAULT 0,
    ignored         INTEGER NOT NULL DEFAULT 0, -- members that are not synced users
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE INDEX desired_groups_name ON desired_groups (run_id, name_folded);

-- Their members, resolved to synced users (desired_users.key).
CREATE TABLE desired_members (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    group_key       TEXT NOT NULL,
    user_key        TEXT NOT NULL,
    PRIMARY KEY (run_id, group_key, user_key)
) WITHOUT ROWID;

-- The target's groups, per run, with the target's own id and version.
CREATE TABLE target_groups (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    external_id     TEXT,
    name            TEXT NOT NULL,
    name_folded     TEXT NOT NULL,
    version         TEXT,
    members         INTEGER NOT NULL,           -- how many members it has in the target
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE INDEX target_groups_external_id ON target_groups (run_id, external_id);
CREATE INDEX target_groups_name ON target_groups (run_id, name_folded);

-- Their members: target ids (users, or anything else the target allows in a group).
CREATE TABLE target_members (
    run_id          INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    group_id        TEXT NOT NULL,
    member_id       TEXT NOT NULL,
    PRIMARY KEY (run_id, group_id, member_id)
) WITHOUT ROWID;
CREATE INDEX target_members_member ON target_members (run_id, member_id);
