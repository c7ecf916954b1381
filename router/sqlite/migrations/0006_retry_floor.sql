-- The far side's Retry-After floor of a delivery's next attempt (unix
-- nanoseconds), NULL when its last failure gave none: a resumed sink's
-- retries fall due at once, but never before their floor.
ALTER TABLE deliveries ADD COLUMN not_before INTEGER;
