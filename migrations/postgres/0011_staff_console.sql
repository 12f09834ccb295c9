-- The staff console: people who sign in, the constituencies each is kept to, the one-time links
-- that set a password, and the sessions of those signed in. Secrets are kept only as hashes:
-- passwords as argon2id, link and session tokens (256 random bits) as SHA-256.
CREATE TABLE staff_users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Lower-cased: the sign-in name.
    email         TEXT NOT NULL CONSTRAINT staff_users_email_key UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'organiser', 'viewer')),
    -- The argon2id PHC string; NULL until set through the person's link.
    password_hash TEXT,
    -- The base32 secret of a TOTP second factor, when the person turned one on.
    totp_secret   TEXT,
    -- The last TOTP time step used: a code is taken once.
    totp_last_step BIGINT,
    created_at    TIMESTAMPTZ NOT NULL,
    disabled_at   TIMESTAMPTZ
);

-- No rows: the person sees every constituency.
CREATE TABLE staff_user_constituencies (
    user_id           BIGINT NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    constituency_code TEXT NOT NULL,
    PRIMARY KEY (user_id, constituency_code)
);

CREATE TABLE staff_password_links (
    token_hash TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE TABLE staff_sessions (
    token_hash   TEXT PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES staff_users (id) ON DELETE CASCADE,
    -- Every form of the session carries it back.
    form_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX staff_sessions_user ON staff_sessions (user_id);

-- A token may belong to a member of staff, and then has their role and constituencies.
ALTER TABLE staff_tokens ADD COLUMN user_id BIGINT REFERENCES staff_users (id);

-- A contact's constituency is found through the postcode: the console lists a constituency's
-- contacts through this index.
CREATE INDEX postcodes_constituency ON postcodes (constituency_code, postcode);
CREATE INDEX contacts_postcode ON contacts (postcode);
