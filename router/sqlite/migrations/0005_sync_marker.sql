-- One row the committer rewrites when it must make earlier relaxed commits
-- durable and has nothing else to write: a commit with synchronous=FULL
-- only syncs the WAL if it writes a frame (see committer.go).
CREATE TABLE sync_marker (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
INSERT INTO sync_marker (id, at) VALUES (1, 0);
