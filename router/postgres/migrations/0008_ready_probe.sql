-- One row that ProbeWrite rewrites for /readyz: a database that answers
-- pings can still refuse commits (a full disk, a standby after a
-- failover), and only a commit shows that it takes them. The twin of the
-- SQLite step.
CREATE TABLE ready_probe (
    id integer     NOT NULL PRIMARY KEY CHECK (id = 1),
    at timestamptz NOT NULL
);
