-- Grouped deliveries (a rule's group:); the twin of the SQLite step.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'silenced', 'grouped'));

CREATE TABLE groups (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    open_batch    text,
    flush_at      timestamptz,
    last_flush_at timestamptz,
    PRIMARY KEY (scope, key)
);

CREATE TABLE group_members (
    batch       text        NOT NULL,
    delivery    text        NOT NULL,
    source      text        NOT NULL,
    event_id    text        NOT NULL,
    received_at timestamptz NOT NULL,
    scope       text        NOT NULL,
    key         text        NOT NULL,
    PRIMARY KEY (batch, delivery)
);
CREATE UNIQUE INDEX group_members_delivery ON group_members (delivery);
