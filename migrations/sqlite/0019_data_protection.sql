-- What a data protection officer needs to prove compliance (issue 24).
--
-- 1. The evidence of a guardian's consent for a child under 14: who gave it, how they are
--    related, when and how. Nobody under 14 is stored without it.
-- 2. Election material: a campaign that promotes a party or candidate carries the imprint.
-- 3. The registers: rights requests with their legal clock, and complaints with the 30 days to
--    acknowledge them. A request names its subject by the hash of their address alone, so
--    that the register outlives their erasure; a complaint keeps the address to answer to
--    until the person is erased. Every change is also in the audit log.

CREATE TABLE guardian_consents (
    contact_id   INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    guardian     TEXT NOT NULL,
    relationship TEXT NOT NULL,
    given_at     TEXT NOT NULL,
    -- How it was given: a signed form, a phone call...
    method       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);

ALTER TABLE campaigns ADD COLUMN election_material BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE rights_requests (
    id               INTEGER PRIMARY KEY,
    -- REQ-<year>-<number>, numbered from 1 each year.
    year             INTEGER NOT NULL,
    number           INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('access', 'rectification', 'erasure',
                                                   'restriction', 'portability', 'objection')),
    email_hash       TEXT NOT NULL,
    received         TEXT NOT NULL,
    channel          TEXT NOT NULL CHECK (channel IN ('phone', 'email', 'letter', 'web', 'in-person')),
    -- When the person was told of the two months more, and why.
    extended_on      TEXT,
    extension_reason TEXT,
    closed_on        TEXT,
    outcome          TEXT,
    opened_at        TEXT NOT NULL,
    CONSTRAINT rights_requests_reference_key UNIQUE (year, number)
);

CREATE INDEX rights_requests_subject ON rights_requests (email_hash);

-- The times a request's clock stood still, waiting for the person's identity or clarification.
CREATE TABLE request_pauses (
    request_id INTEGER NOT NULL REFERENCES rights_requests (id),
    from_date  TEXT NOT NULL,
    until_date TEXT,
    PRIMARY KEY (request_id, from_date)
);

-- At most one pause of a request is open at a time.
CREATE UNIQUE INDEX request_pauses_open ON request_pauses (request_id) WHERE until_date IS NULL;

CREATE TABLE complaints (
    id              INTEGER PRIMARY KEY,
    -- CMP-<year>-<number>.
    year            INTEGER NOT NULL,
    number          INTEGER NOT NULL,
    received        TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('phone', 'email', 'letter', 'web', 'in-person')),
    summary         TEXT NOT NULL,
    -- The complainant's address, blanked when they are erased; its hash stays.
    email           TEXT,
    email_hash      TEXT,
    -- The message complained of, when they named one.
    message_id      TEXT,
    acknowledged_on TEXT,
    closed_on       TEXT,
    outcome         TEXT,
    logged_at       TEXT NOT NULL,
    CONSTRAINT complaints_reference_key UNIQUE (year, number)
);

CREATE INDEX complaints_complainant ON complaints (email_hash);

-- Retention blanks the IP address of a consent older than the retention period: the ledger stays
-- append-only for everything else.
DROP TRIGGER consent_ledger_is_append_only;
CREATE TRIGGER consent_ledger_is_append_only
BEFORE UPDATE ON consent_ledger
WHEN NEW.ip IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.contact_id IS NOT OLD.contact_id
  OR NEW.topic_id IS NOT OLD.topic_id OR NEW.channel IS NOT OLD.channel
  OR NEW.granted IS NOT OLD.granted OR NEW.source IS NOT OLD.source OR NEW.at IS NOT OLD.at
  OR NEW.wording IS NOT OLD.wording OR NEW.recorded_at IS NOT OLD.recorded_at
BEGIN
    SELECT RAISE(ABORT, 'the consent ledger is append-only');
END;
