-- roster state store: what a run's apply did, and how its notifications went.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- The apply report of an apply or sync run (NULL for plans, and for runs that ended before
-- applying): the actions this run applied, that failed, and that a cap still holds.
ALTER TABLE runs ADD COLUMN applied INTEGER;
ALTER TABLE runs ADD COLUMN failed INTEGER;
ALTER TABLE runs ADD COLUMN held INTEGER;

-- How the run's notifications went: a JSON array of {"channel", "to", "sent", "error"}, one
-- per email or webhook that was due; NULL when none was. `to` names a webhook by its scheme
-- and host only: a webhook URL may carry a token.
ALTER TABLE runs ADD COLUMN notifications TEXT;
