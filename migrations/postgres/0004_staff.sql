-- Staff API tokens. Only the SHA-256 of each token is kept; a name stays taken after its token
-- is revoked, so that the audit log's "staff:NAME" always means one token.
CREATE TABLE staff_tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    read_only  BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
