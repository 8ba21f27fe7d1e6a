-- The wave-1 schema. Times are Unix milliseconds (BIGINT), JSON documents are TEXT, flags are
-- 0/1 integers: the types sqlx's Any driver carries the same way on SQLite and PostgreSQL.
-- postgres/0001_initial.sql is the same schema in PostgreSQL's dialect; a test compares them.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    server_admin BIGINT NOT NULL DEFAULT 0,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    last_used BIGINT,
    inserted_at BIGINT NOT NULL
);

CREATE TABLE orgs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE org_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manage', 'view')),
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, user_id)
);

CREATE TABLE org_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    created_by_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    inserted_at BIGINT NOT NULL,
    UNIQUE (org_id, name),
    UNIQUE (org_id, key)
);

CREATE TABLE products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    -- JSON array of strings
    tags TEXT NOT NULL DEFAULT '[]',
    -- JSON object as the device reported it, NULL until its first connection
    firmware_metadata TEXT,
    updates_enabled BIGINT NOT NULL DEFAULT 1,
    -- not_seen | connected | disconnected
    connection_status TEXT NOT NULL DEFAULT 'not_seen',
    connection_established_at BIGINT,
    connection_last_seen_at BIGINT,
    connection_disconnected_at BIGINT,
    connection_metadata TEXT,
    first_seen_at BIGINT,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX devices_product ON devices (product_id);

CREATE TABLE device_certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    serial TEXT NOT NULL,
    aki TEXT,
    ski TEXT,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BLOB NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    public_key_fingerprint TEXT NOT NULL,
    last_used BIGINT,
    inserted_at BIGINT NOT NULL,
    UNIQUE (device_id, serial)
);

CREATE TABLE ca_certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    serial TEXT NOT NULL UNIQUE,
    aki TEXT,
    ski TEXT,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    der BLOB NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Just-in-time provisioning profile: devices presenting a certificate this CA signed are
    -- created in this product with these tags and description.
    jitp_product_id BIGINT REFERENCES products(id) ON DELETE SET NULL,
    jitp_tags TEXT,
    jitp_description TEXT,
    last_used BIGINT,
    inserted_at BIGINT NOT NULL
);

CREATE TABLE ca_verification_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    token TEXT NOT NULL UNIQUE,
    inserted_at BIGINT NOT NULL
);

CREATE TABLE product_shared_secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    key TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    deactivated_at BIGINT,
    inserted_at BIGINT NOT NULL
);

CREATE TABLE device_shared_secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    key TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    deactivated_at BIGINT,
    inserted_at BIGINT NOT NULL
);

CREATE TABLE firmwares (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    org_key_id BIGINT REFERENCES org_keys(id) ON DELETE RESTRICT,
    uuid TEXT NOT NULL,
    version TEXT NOT NULL,
    platform TEXT NOT NULL,
    architecture TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    misc TEXT NOT NULL DEFAULT '',
    vcs_identifier TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL,
    -- upper-case hex SHA-256 of the whole file
    checksum TEXT NOT NULL,
    -- JSON array of upper-case hex SHA-256 of each 1 MiB piece
    partials_checksums TEXT NOT NULL DEFAULT '[]',
    storage_key TEXT NOT NULL,
    inserted_at BIGINT NOT NULL,
    UNIQUE (product_id, uuid)
);

CREATE TABLE device_updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    firmware_id BIGINT NOT NULL REFERENCES firmwares(id) ON DELETE RESTRICT,
    -- requested | received | started | updating | completed | failed | ignored | rescheduled
    status TEXT NOT NULL,
    progress BIGINT NOT NULL DEFAULT 0,
    reason TEXT,
    inserted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX device_updates_device ON device_updates (device_id);
CREATE INDEX device_updates_firmware ON device_updates (firmware_id);

CREATE TABLE device_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    inserted_at BIGINT NOT NULL
);
CREATE INDEX device_events_device ON device_events (device_id);

CREATE TABLE audit_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id BIGINT REFERENCES orgs(id) ON DELETE SET NULL,
    -- user | device | system
    actor_type TEXT NOT NULL,
    actor_id BIGINT,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    action TEXT NOT NULL,
    description TEXT NOT NULL,
    inserted_at BIGINT NOT NULL
);
CREATE INDEX audit_logs_org ON audit_logs (org_id);
