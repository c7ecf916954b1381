-- Backpressure. A 429 or 503 with Retry-After neither spends a delivery's
-- attempts nor lets any worker send to the sink before the time it gave.

-- Backpressure answers a delivery has had since it was created or last
-- replayed; they are capped separately from attempts.
ALTER TABLE deliveries ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0;

-- No request to the sink before held_until (unix nanoseconds): claims of
-- every process skip the sink until then.
ALTER TABLE sink_state ADD COLUMN held_until INTEGER;
