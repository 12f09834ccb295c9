-- The foundation: postcode directory, topics, contacts, the consent ledger, suppressions, audit.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE constituencies (
    code TEXT PRIMARY KEY,
    name TEXT
);

-- The ONS postcode directory, replaced whole by `canvass postcodes import`.
CREATE TABLE postcodes (
    postcode          TEXT PRIMARY KEY,
    constituency_code TEXT NOT NULL
);

CREATE TABLE topics (
    id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug TEXT NOT NULL CONSTRAINT topics_slug_key UNIQUE,
    name TEXT NOT NULL
);

INSERT INTO topics (slug, name) VALUES
    ('news', 'News'),
    ('campaigns', 'Campaigns'),
    ('events', 'Events'),
    ('volunteering', 'Volunteering');

CREATE TABLE contacts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id        TEXT NOT NULL CONSTRAINT contacts_public_id_key UNIQUE,
    email            TEXT NOT NULL,
    -- SHA-256 of the lower-cased address: the identity, and the join to suppressions.
    email_hash       TEXT NOT NULL CONSTRAINT contacts_email_hash_key UNIQUE,
    name             TEXT,
    -- Canonical form; the constituency is derived through the postcode directory.
    postcode         TEXT,
    date_of_birth    DATE,
    -- NULL: nothing recorded, which counts as no guardian consent.
    guardian_consent BOOLEAN,
    restricted_at    TIMESTAMPTZ,
    source           TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- Append-only: grants and withdrawals are added, never changed. Rows go only when the person is
-- erased.
CREATE TABLE consent_ledger (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    contact_id  BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic_id    BIGINT NOT NULL REFERENCES topics (id),
    channel     TEXT NOT NULL DEFAULT 'email' CHECK (channel IN ('email')),
    granted     BOOLEAN NOT NULL,
    source      TEXT NOT NULL,
    -- When the person gave or withdrew consent.
    at          TIMESTAMPTZ NOT NULL,
    -- The wording or form version they saw.
    wording     TEXT,
    ip          TEXT,
    -- When canvass learnt of it.
    recorded_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX consent_ledger_latest ON consent_ledger (contact_id, topic_id, at, id);

CREATE FUNCTION consent_ledger_refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the consent ledger is append-only';
END;
$$;

CREATE TRIGGER consent_ledger_is_append_only
BEFORE UPDATE ON consent_ledger
FOR EACH ROW EXECUTE FUNCTION consent_ledger_refuse_update();

-- The consent in force: the latest entry for each contact, topic and channel.
CREATE VIEW current_consent AS
SELECT l.contact_id, l.topic_id, l.channel, l.granted, l.source, l.at
FROM consent_ledger l
WHERE NOT EXISTS (
    SELECT 1 FROM consent_ledger newer
    WHERE newer.contact_id = l.contact_id
      AND newer.topic_id = l.topic_id
      AND newer.channel = l.channel
      AND (newer.at > l.at OR (newer.at = l.at AND newer.id > l.id))
);

CREATE TABLE suppressions (
    email_hash TEXT PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (reason IN ('unsubscribed', 'erased', 'bounced', 'complaint')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Changes made by people: staff, operators, and contacts through their links.
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    contact_id BIGINT REFERENCES contacts (id) ON DELETE SET NULL,
    detail     TEXT,
    ip         TEXT
);

CREATE INDEX audit_log_contact ON audit_log (contact_id);
