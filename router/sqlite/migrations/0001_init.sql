-- Initial schema. Times are integer Unix nanoseconds (UTC); 0 stands for
-- the zero time. Blobs and JSON are stored as received.

CREATE TABLE events (
    source      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    headers     TEXT    NOT NULL,              -- JSON object, lower-cased names
    body        BLOB    NOT NULL,
    quarantined INTEGER NOT NULL DEFAULT 0,
    matched     TEXT    NOT NULL,              -- JSON array of rule names
    PRIMARY KEY (source, id)
);

-- Retention prunes by age.
CREATE INDEX events_received_at ON events (received_at);

-- The deliveries table is the queue and the delivery log at once.
CREATE TABLE deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    source          TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    rule            TEXT    NOT NULL,
    route           INTEGER NOT NULL,
    sink            TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT    NOT NULL DEFAULT '',
    remote_id       TEXT    NOT NULL DEFAULT '',
    FOREIGN KEY (source, event_id) REFERENCES events (source, id) ON DELETE CASCADE
);

-- Claiming: partial, so that the delivered and dead rows, which are most of
-- the table, cost the queue nothing. Index entries sort by rowid after
-- next_attempt_at, which gives ties a free first-in-first-out order. The same
-- index answers NextDue and PendingCounts.
CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at) WHERE status = 'pending';
-- The foreign key's child index (cascading deletes) and the event filter.
CREATE INDEX deliveries_event ON deliveries (source, event_id);
-- The delivery log, newest first. Dead letters, rare but listed on their
-- own, get a partial index that ingest never touches; delivered rows are
-- most of the log and pending ones the newest, so a scan of
-- deliveries_created finds those quickly.
CREATE INDEX deliveries_created ON deliveries (created_at, id);
CREATE INDEX deliveries_dead ON deliveries (created_at, id) WHERE status = 'dead';

CREATE TABLE attempts (
    delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           INTEGER NOT NULL,              -- 1 for the first attempt
    at          INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    status_code INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',
    remote_id   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
