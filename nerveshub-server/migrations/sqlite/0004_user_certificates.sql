-- User certificates: signed by the server's user CA from a CSR; on the HTTPS API listener a
-- valid, unrevoked one authenticates as its user. Looked up by the SHA-256 of the DER.
CREATE TABLE user_certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    serial TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    revoked_at BIGINT,
    inserted_at BIGINT NOT NULL
);
CREATE INDEX user_certificates_user_id ON user_certificates(user_id);
