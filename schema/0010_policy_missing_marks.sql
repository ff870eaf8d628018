-- Grace periods and drip removals (`remove-after`, `over-cap "drip"`): the managed accounts
-- missing from the source, since when and in how many runs in a row. Written only after a
-- read that passed the completeness checks, replaced whole each time (an account that came
-- back, or that is gone from the target, loses its mark).
CREATE TABLE missing_accounts (
    owner TEXT NOT NULL,
    key   TEXT NOT NULL,
    since TEXT NOT NULL,   -- RFC 3339, UTC: the first run that missed it
    runs  INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
