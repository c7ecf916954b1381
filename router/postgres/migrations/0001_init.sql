-- Initial schema, the PostgreSQL twin of the SQLite store's. Times are
-- timestamptz (microseconds); the zero time is stored as 0001-01-01 UTC.
-- Headers and matched rules are JSON, for operators' ad hoc queries.

CREATE TABLE events (
    source      text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL,
    received_at timestamptz NOT NULL,
    headers     jsonb       NOT NULL,              -- object, lower-cased names
    body        bytea       NOT NULL,
    quarantined boolean     NOT NULL DEFAULT false,
    matched     jsonb       NOT NULL,              -- array of rule names
    PRIMARY KEY (source, id)
);

-- Retention prunes by age.
CREATE INDEX events_received_at ON events (received_at);

-- The deliveries table is the queue and the delivery log at once. Delivery
-- ids compare byte-wise (COLLATE "C"), as in SQLite, so that ties in the
-- queue and in the log order the same way on both backends and whatever
-- the database's locale.
CREATE TABLE deliveries (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    rule            text        NOT NULL,
    route           integer     NOT NULL,
    sink            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    remote_id       text        NOT NULL DEFAULT '',
    FOREIGN KEY (source, event_id) REFERENCES events (source, id) ON DELETE CASCADE
);

-- Claiming: partial, so that the delivered and dead rows, which are most of
-- the table, cost the queue nothing; id completes Claim's sort order, so
-- the claim reads the index in order and stops at its LIMIT. The same index
-- answers NextDue and PendingCounts.
CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at, id) WHERE status = 'pending';
-- The foreign key's child index (cascading deletes) and the event filter.
CREATE INDEX deliveries_event ON deliveries (source, event_id);
-- The delivery log, newest first. Dead letters, rare but listed on their
-- own, get a partial index that ingest never touches.
CREATE INDEX deliveries_created ON deliveries (created_at, id);
CREATE INDEX deliveries_dead ON deliveries (created_at, id) WHERE status = 'dead';
-- No index holds lease_owner or lease_until, so that a claim, which sets
-- only those, is a HOT update that writes no index entry.

CREATE TABLE attempts (
    delivery_id text COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    n           integer     NOT NULL,              -- 1 for the first attempt
    at          timestamptz NOT NULL,
    duration_ns bigint      NOT NULL,
    outcome     text        NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    status_code integer     NOT NULL DEFAULT 0,
    error       text        NOT NULL DEFAULT '',
    remote_id   text        NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, n)
);
