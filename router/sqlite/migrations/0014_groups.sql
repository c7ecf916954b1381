-- Grouped deliveries (a rule's group:): a delivery whose route's group is
-- open joins it, set aside as grouped; the group's first delivery carries
-- the notification when the group flushes. The status check is widened
-- in place, as in 0012.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
    SET sql = replace(sql, '''suppressed'', ''silenced''))', '''suppressed'', ''silenced'', ''grouped''))')
    WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;

-- One row per route and group key: the open batch (the carrying
-- delivery's id, NULL when none is open), when it flushes, and when the
-- group last flushed (interval counts from it).
CREATE TABLE groups (
    scope         TEXT    NOT NULL,   -- the rule and route
    key           TEXT    NOT NULL,   -- the group's key (by: values)
    open_batch    TEXT,
    flush_at      INTEGER NOT NULL DEFAULT 0,
    last_flush_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;

-- A batch's members, the carrier among them, in the order they arrived.
CREATE TABLE group_members (
    batch       TEXT    NOT NULL,
    delivery    TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    PRIMARY KEY (batch, delivery)
) WITHOUT ROWID;
CREATE UNIQUE INDEX group_members_delivery ON group_members (delivery);
