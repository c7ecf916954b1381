-- Deliveries set aside without an attempt: suppressed (by a route's
-- cooldown, or its schedule's when_closed: drop) and silenced (by a
-- silence). The twin of the SQLite step.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'dead', 'suppressed', 'silenced'));

-- A route's cooldown per key value: the delivery that started it, until
-- when, how many deliveries it suppressed so far, and how many the
-- cooldown before it suppressed (what that delivery's templates read as
-- .suppressed).
CREATE TABLE cooldowns (
    scope      text        NOT NULL,          -- the rule and route
    key        text        NOT NULL,          -- the rendered cooldown key
    delivery   text        NOT NULL,
    until      timestamptz NOT NULL,
    suppressed integer     NOT NULL DEFAULT 0,
    carried    integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key)
);
CREATE INDEX cooldowns_until ON cooldowns (until);
