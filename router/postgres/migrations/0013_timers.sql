-- Timers (a rule's unless:); the twin of the SQLite step.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'silenced', 'grouped', 'waiting', 'cancelled'));
ALTER TABLE deliveries ADD COLUMN timer_key text;
CREATE INDEX deliveries_timer ON deliveries (timer_key) WHERE status = 'waiting';
CREATE INDEX deliveries_waiting ON deliveries (next_attempt_at) WHERE status = 'waiting';
