-- Deliveries set aside without an attempt: suppressed (by a route's
-- cooldown, or its schedule's when_closed: drop) and silenced (by a
-- silence). SQLite cannot alter a CHECK constraint, so the table's
-- definition is edited in place, as SQLite's documentation describes for
-- a change every stored row still satisfies; migrate bumps the schema
-- version after such a step, so that every connection reads it again.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
    SET sql = replace(sql, '''delivered'', ''dead''))', '''delivered'', ''dead'', ''suppressed'', ''silenced''))')
    WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;

-- A route's cooldown per key value: the delivery that started it, until
-- when, how many deliveries it suppressed so far, and how many the
-- cooldown before it suppressed (what that delivery's templates read as
-- .suppressed).
CREATE TABLE cooldowns (
    scope      TEXT    NOT NULL,              -- the rule and route
    key        TEXT    NOT NULL,              -- the rendered cooldown key
    delivery   TEXT    NOT NULL,
    until      INTEGER NOT NULL,
    suppressed INTEGER NOT NULL DEFAULT 0,
    carried    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX cooldowns_until ON cooldowns (until);
