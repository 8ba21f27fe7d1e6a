-- Web UI sign-ins. The cookie carries a random secret; only its SHA-256 is stored, so a copy
-- of the database does not sign anyone in. A session ends when idle for 12 hours or 7 days
-- after sign-in (checked on every request, swept at sign-in).
CREATE TABLE web_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    inserted_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
