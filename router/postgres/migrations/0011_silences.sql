-- Silences: who muted which deliveries (an expr matcher over the event,
-- rule and sink), from when until when, and why. The twin of the SQLite
-- step.
CREATE TABLE silences (
    id         text        NOT NULL PRIMARY KEY,
    matcher    text        NOT NULL,
    comment    text        NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL
);
CREATE INDEX silences_ends_at ON silences (ends_at);
