-- A copy of a campaign for the people who have not had it: the campaigns whose recipients (those
-- whose message the relay accepted) a campaign leaves out, in the rule every send uses.
CREATE TABLE campaign_exclusions (
    campaign_id          INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    excluded_campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    PRIMARY KEY (campaign_id, excluded_campaign_id)
);
