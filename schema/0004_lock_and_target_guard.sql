-- roster state store: who holds the lock, exactly; how many accounts the target showed.
-- Never edit or remove a migration once it has landed: add a new numbered file instead.

-- When the process holding the lock started (clock ticks since boot, /proc/PID/stat field 22),
-- so that a pid reused by another process after the holder died is not taken for the holder.
-- NULL for locks taken by earlier versions: only the pid is checked then.
ALTER TABLE lock ADD COLUMN process_start INTEGER;

-- Accounts carrying an externalId in the run's target snapshot: the target-side guard compares
-- a new listing with the last accepted one, so that a listing that undercounts is refused
-- instead of turning into creates of accounts that exist.
ALTER TABLE runs ADD COLUMN target_managed INTEGER;
