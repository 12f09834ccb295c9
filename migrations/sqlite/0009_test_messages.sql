-- Test messages staff send themselves, counted per campaign so that a campaign sends only a few
-- a minute: no address is kept, only when.
CREATE TABLE test_messages (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    sent_at     TEXT NOT NULL
);

CREATE INDEX test_messages_by_campaign ON test_messages (campaign_id, sent_at);
