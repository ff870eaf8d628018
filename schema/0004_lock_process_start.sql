-- When the process holding the lock started (clock ticks since boot, /proc/PID/stat field 22),
-- so that a pid reused by another process after the holder died is not taken for the holder.
-- NULL for locks taken by earlier versions: only the pid is checked then.
ALTER TABLE lock ADD COLUMN process_start INTEGER;
