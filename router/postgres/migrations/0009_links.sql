-- What each sink created for a dedup key, as templates read it under
-- .links (a JSON object: url, channel, ts, key…; '' when none was
-- recorded), and the index that finds every sink's object for one key
-- value: a route's templates read all of them. The twin of the SQLite
-- step.
ALTER TABLE remote_objects ADD COLUMN link text NOT NULL DEFAULT '';
CREATE INDEX remote_objects_key ON remote_objects (dedup_key);
