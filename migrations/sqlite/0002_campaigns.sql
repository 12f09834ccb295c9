-- Campaigns and the per-recipient delivery ledger.

CREATE TABLE campaigns (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    topic_id        INTEGER NOT NULL REFERENCES topics (id),
    subject         TEXT NOT NULL,
    html_template   TEXT NOT NULL,
    -- NULL: the text part is derived from the HTML.
    text_template   TEXT,
    -- An event mailing's event; all NULL for a campaign mailing.
    event_title     TEXT,
    event_starts_at TEXT,
    event_venue     TEXT,
    event_postcode  TEXT,
    state           TEXT NOT NULL
                    CHECK (state IN ('draft', 'queued', 'paused', 'cancelled', 'done')),
    created_by      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    queued_at       TEXT
);

-- Who a campaign is for: any listed constituency or postcode prefix. No rows: everyone.
CREATE TABLE campaign_audience (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('constituency', 'area', 'district', 'sector')),
    value       TEXT NOT NULL,
    PRIMARY KEY (campaign_id, kind, value)
);

-- One row per campaign and recipient, made when the campaign is queued. An erased contact's
-- rows lose the contact (and any server answer) and are skipped.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    campaign_id     INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    contact_id      INTEGER REFERENCES contacts (id) ON DELETE SET NULL,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    -- A worker's claim: until it expires, no other worker takes the row.
    lease_owner     TEXT,
    lease_until     TEXT,
    message_id      TEXT,
    -- The SMTP server's answer, or why the delivery was skipped or failed.
    outcome         TEXT,
    sent_at         TEXT,
    updated_at      TEXT NOT NULL,
    CONSTRAINT deliveries_once UNIQUE (campaign_id, contact_id)
);

CREATE INDEX deliveries_by_state ON deliveries (campaign_id, state);
CREATE INDEX deliveries_contact ON deliveries (contact_id);
