-- Silences: who muted which deliveries (an expr matcher over the event,
-- rule and sink), from when until when, and why.
CREATE TABLE silences (
    id         TEXT    NOT NULL PRIMARY KEY,
    matcher    TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL
);
CREATE INDEX silences_ends_at ON silences (ends_at);
