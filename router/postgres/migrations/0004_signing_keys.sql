-- Outbound signing keys (secured http sinks): at most two per sink, the
-- oldest signs. The private half is sealed by the router under the master
-- key before it gets here; this table never holds it in clear. The twin of
-- the SQLite step.
CREATE TABLE signing_keys (
    sink           text        NOT NULL,
    key_id         text        NOT NULL,
    public_pem     bytea       NOT NULL,
    sealed_private bytea       NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (sink, key_id)
);
