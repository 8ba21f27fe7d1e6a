-- Many nodes on one database (PostgreSQL; SQLite keeps a single node, which still
-- registers here). A node's row is its lease: refreshed every 10 s, expired after 30 s, when
-- any other node marks the expired node's devices disconnected and deletes the row.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    storage TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL
);
-- The node holding each connected device's socket (NULL when none does).
ALTER TABLE devices ADD COLUMN connected_node TEXT;
CREATE INDEX devices_connected_node ON devices (connected_node) WHERE connected_node IS NOT NULL;
-- Secrets every node must share, made by the first node that starts (the download URL
-- signing key) or checked by every node that starts (a digest of the shared-secrets key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
-- Node-to-node messages too large for a NOTIFY payload, sent by reference to their row.
CREATE TABLE cluster_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
