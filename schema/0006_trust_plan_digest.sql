-- roster state store: the digest of every plan as roster made it.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- sha256 of the plan's canonical form (plan::seal) when it was made: apply refuses a plan
-- file whose content is not exactly this plan. NULL for plans stored by earlier versions:
-- their files are refused (make a new plan).
ALTER TABLE plans ADD COLUMN plan_digest TEXT;
