-- Operating the router: replays, paused sinks, and what the operator's
-- listings and the retention job need. The twin of the SQLite step.

-- Replays. NULL until the first replay. Adding a column with a constant
-- default rewrites nothing.
ALTER TABLE deliveries
    ADD COLUMN replays     integer NOT NULL DEFAULT 0,
    ADD COLUMN replayed_by text,
    ADD COLUMN replayed_at timestamptz;

-- Sinks an operator paused (or resumed), shared by every replica and kept
-- across restarts.
CREATE TABLE sink_state (
    sink   text        NOT NULL PRIMARY KEY,
    paused boolean     NOT NULL,
    reason text        NOT NULL DEFAULT '',
    since  timestamptz NOT NULL
);

-- Dead letters per sink: PendingCounts counts them from this index alone,
-- and the dead-letter listing of one sink reads it in order. Like
-- deliveries_dead it is partial, so ingest, claims and successful
-- deliveries never touch it; only a delivery that dies (or is replayed
-- out of death) does. It holds neither lease column, so claims stay HOT
-- updates.
--
-- No other index is added. The listings filter by sink, rule or source on
-- top of deliveries_created (created_at, id), which the cursor pages
-- through in order: a common value is found within a few entries, and an
-- index per filter would cost every ingest. The events listing pages
-- through events_received_at, with an incremental sort of the ties.
-- Retention reads deliveries_created (a delivery is last updated after it
-- was created) and events_received_at.
CREATE INDEX deliveries_dead_sink ON deliveries (sink, created_at, id) WHERE status = 'dead';
