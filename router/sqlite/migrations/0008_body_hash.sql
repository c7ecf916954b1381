-- A second dedup key for sources whose signature covers neither an id nor a
-- time (github, hmac-sha256): the SHA-256 of the signed body, so that a
-- captured request posted again under a new, unsigned id is a duplicate.
-- It lives in the event's row, so it is kept exactly as long as the event.
-- NULL for every other source; the index is partial, so their ingests
-- never touch it.
ALTER TABLE events ADD COLUMN body_hash BLOB;
CREATE UNIQUE INDEX events_body_hash ON events (source, body_hash) WHERE body_hash IS NOT NULL;
