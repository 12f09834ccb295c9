-- What mail providers reported through their webhooks (/hooks/ses, /hooks/mailgun,
-- /hooks/postmark, /hooks/sendgrid), one row per event by the provider's own id for it, so that
-- an event delivered again (providers retry) changes nothing twice. No address is kept: the
-- event is tied to its campaign, and a suppression it caused is in the suppression list and the
-- audit log.
CREATE TABLE hook_events (
    provider    TEXT NOT NULL,
    event_key   TEXT NOT NULL,
    -- `bounce` (permanent), `temporary` (a 4.x.x bounce or a deferral), `complaint`, `delivered`.
    kind        TEXT NOT NULL,
    -- `suppressed`, `recorded` (nobody suppressed), `not ours` (no message canvass sent to that
    -- address carries what the event names).
    outcome     TEXT NOT NULL,
    campaign_id BIGINT REFERENCES campaigns (id) ON DELETE SET NULL,
    -- The RFC 3463 status the provider gave, when it gave one.
    status      TEXT,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_key)
);
CREATE INDEX hook_events_by_campaign ON hook_events (campaign_id, kind);

-- The one-time tokens signed webhooks carry (Mailgun's), each accepted once: a captured
-- request sent again is refused. Kept for a day; the signatures expire after five minutes.
CREATE TABLE hook_nonces (
    provider TEXT NOT NULL,
    nonce    TEXT NOT NULL,
    seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, nonce)
);
