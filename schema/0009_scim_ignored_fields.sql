-- Changes a target accepted and did not keep (issue 12): a SCIM provider that ignores
-- `active`, drops phones, derives displayName. Recorded by apply when a change read back
-- did not stick; a plan for the same target leaves those changes out with a reason, instead
-- of planning (and failing) the same change every run. `target` is the target as plans
-- name it (the API root); `field` the plan's field name (`active`, `phone`, `title`, ...).
CREATE TABLE target_ignored_fields (
    target TEXT NOT NULL,
    field TEXT NOT NULL,
    -- When apply last saw the target drop it (RFC 3339, UTC): old records are retried.
    seen_at TEXT NOT NULL,
    PRIMARY KEY (target, field)
);
