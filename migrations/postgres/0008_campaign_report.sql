-- What a campaign did. Each message's links name its campaign by a random tag (never its id,
-- which would tell how many campaigns there are); the ledger keeps, per delivery, the
-- recipient's constituency when it was queued, and what came back: a complaint, an unsubscribe
-- through one of its links.
ALTER TABLE campaigns ADD COLUMN link_tag TEXT;
CREATE UNIQUE INDEX campaigns_link_tag ON campaigns (link_tag);

ALTER TABLE deliveries ADD COLUMN constituency TEXT;
ALTER TABLE deliveries ADD COLUMN complained BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE deliveries ADD COLUMN unsubscribed BOOLEAN NOT NULL DEFAULT FALSE;

-- The index by campaign and state holds everything a report counts, so that a report reads the
-- index alone, in its order, and never the rows.
DROP INDEX deliveries_by_state;
CREATE INDEX deliveries_by_state
    ON deliveries (campaign_id, state, constituency, bounced, complained, unsubscribed);

-- Bounce and complaint reports name the message by its Message-ID.
CREATE INDEX deliveries_message ON deliveries (message_id) WHERE message_id IS NOT NULL;
