-- Applied user actions by when they finished (issue 16). The target guard counts the adds and
-- deletes applied since the last accepted read began (`Store::expected_managed`), and an
-- incremental target read takes out the accounts deleted since its base (`target_patch.rs`);
-- `plan_actions` keeps every plan ever made, so without this index both read all of it, at
-- every run, and a store's history made each run slower.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.
CREATE INDEX plan_actions_applied_users ON plan_actions (finished_at)
    WHERE object = 'user' AND status = 'applied';
