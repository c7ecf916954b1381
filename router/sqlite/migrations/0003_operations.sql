-- Operating the router: replays, paused sinks, and what the operator's
-- listings and the retention job need.

-- Replays. NULL until the first replay; replayed_at is in Unix nanoseconds
-- like every other time.
ALTER TABLE deliveries ADD COLUMN replays     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN replayed_by TEXT;
ALTER TABLE deliveries ADD COLUMN replayed_at INTEGER;

-- Sinks an operator paused (or resumed), shared by every process that opens
-- the file and kept across restarts.
CREATE TABLE sink_state (
    sink   TEXT    NOT NULL PRIMARY KEY,
    paused INTEGER NOT NULL,
    reason TEXT    NOT NULL DEFAULT '',
    since  INTEGER NOT NULL
);

-- Dead letters per sink: PendingCounts counts them from this index alone,
-- and the dead-letter listing of one sink reads it in order. Like
-- deliveries_dead it is partial, so ingest, claims and successful
-- deliveries never touch it; only a delivery that dies (or is replayed
-- out of death) does.
--
-- No other index is added. The listings filter by sink, rule or source on
-- top of deliveries_created (created_at, id), which the cursor pages
-- through in order: a common value is found within a few entries, and an
-- index per filter would cost every ingest. The events listing pages
-- through events_received_at; ties in received_at are sorted as they come.
-- Retention reads deliveries_created (a delivery is last updated after it
-- was created) and events_received_at.
CREATE INDEX deliveries_dead_sink ON deliveries (sink, created_at, id) WHERE status = 'dead';
