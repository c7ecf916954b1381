-- One row that ProbeWrite rewrites for /readyz: a store that answers
-- pings can still refuse commits (a full disk), and only a commit shows
-- that it takes them.
CREATE TABLE ready_probe (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
