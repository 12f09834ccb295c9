-- Staff API tokens. Only the SHA-256 of each token is kept; a name stays taken after its token
-- is revoked, so that the audit log's "staff:NAME" always means one token.
CREATE TABLE staff_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    read_only  BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
