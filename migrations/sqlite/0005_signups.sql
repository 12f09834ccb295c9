-- Public sign-ups waiting for their confirmation (double opt-in). Nothing here is a contact or a
-- consent until the person follows the link emailed to them; `public_id` is what that link
-- carries.
CREATE TABLE signups (
    id           INTEGER PRIMARY KEY,
    public_id    TEXT NOT NULL UNIQUE,
    email        TEXT NOT NULL,
    email_hash   TEXT NOT NULL,
    name         TEXT,
    postcode     TEXT,
    -- Topic slugs, comma-separated.
    topics       TEXT NOT NULL,
    -- The wording (or form version) the person was shown.
    wording      TEXT NOT NULL,
    ip           TEXT,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT
);

CREATE INDEX signups_by_address ON signups (email_hash, created_at);
