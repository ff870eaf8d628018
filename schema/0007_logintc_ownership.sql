-- roster state store: which target accounts roster owns, for targets that keep no key of
-- roster's with the account (LoginTC has no externalId).
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- One row per account a config (its `owner`) created or adopted. Only these accounts are
-- updated away, removed or deleted on such a target; losing this table removes nothing.
CREATE TABLE owned_accounts (
    owner           TEXT NOT NULL,              -- the config's `owner` name
    target_id       TEXT NOT NULL,              -- the target's own id of the account
    key             TEXT NOT NULL,              -- the source key it belongs to
    plan_id         TEXT NOT NULL,              -- the plan that created or adopted it
    at              TEXT NOT NULL,              -- RFC 3339, UTC
    PRIMARY KEY (owner, target_id)
) WITHOUT ROWID;
CREATE INDEX owned_accounts_target ON owned_accounts (target_id);
