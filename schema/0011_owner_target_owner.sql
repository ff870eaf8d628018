-- roster state store: the owner a target records with each account (SCIM keeps it in the
-- externalId, `roster:OWNER:KEY`), so that configs sharing a target never take each other's
-- accounts, even with a lost state store.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- The owner the target says wrote the account (NULL: it says none).
ALTER TABLE target_users ADD COLUMN owner TEXT;
-- 1 for an account written by an earlier roster without an owner, that this config cannot
-- prove it made (no ownership record): it keeps syncing by key, but is never removed.
ALTER TABLE target_users ADD COLUMN owner_unknown INTEGER NOT NULL DEFAULT 0;
