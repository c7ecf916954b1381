-- Dedup keys → the remote object created for them (ticket id, issue key,
-- Slack message ts), with a lease-style lock so that deliveries sharing a
-- key take turns, across workers and replicas.
CREATE TABLE remote_objects (
    sink        TEXT        NOT NULL,
    dedup_key   TEXT        NOT NULL,
    remote_id   TEXT        NOT NULL DEFAULT '',
    lock_owner  TEXT,
    lock_until  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (sink, dedup_key)
);
