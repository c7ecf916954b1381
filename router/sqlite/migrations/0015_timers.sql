-- Timers (a rule's unless:): deliveries made waiting, due when the timer
-- runs out, unless a later event cancels them first. timer_key names the
-- rule and the same: values a cancelling event must match. The status
-- check is widened in place, as in 0012.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
    SET sql = replace(sql, '''silenced'', ''grouped''))', '''silenced'', ''grouped'', ''waiting'', ''cancelled''))')
    WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;

ALTER TABLE deliveries ADD COLUMN timer_key TEXT;
-- Partial: only waiting deliveries are in them, so the others' inserts
-- and updates never touch them.
CREATE INDEX deliveries_timer ON deliveries (timer_key) WHERE status = 'waiting';
CREATE INDEX deliveries_waiting ON deliveries (next_attempt_at) WHERE status = 'waiting';
