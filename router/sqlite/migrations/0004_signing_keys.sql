-- Outbound signing keys (secured http sinks): at most two per sink, the
-- oldest signs. The private half is sealed by the router under the master
-- key before it gets here; this table never holds it in clear.
CREATE TABLE signing_keys (
    sink           TEXT    NOT NULL,
    key_id         TEXT    NOT NULL,
    public_pem     BLOB    NOT NULL,
    sealed_private BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (sink, key_id)
);
