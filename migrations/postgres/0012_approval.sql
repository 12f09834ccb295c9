-- Campaigns made by staff: the constituencies they may reach, and the second person's approval.
--
-- A campaign made by someone kept to some constituencies reaches no one outside them: it is
-- `limited`, to the constituencies listed in campaign_limits (none listed: no one). An approval
-- cuts it further, to what the approver is kept to.
ALTER TABLE campaigns ADD COLUMN limited BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE campaign_limits (
    campaign_id       BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    constituency_code TEXT NOT NULL,
    PRIMARY KEY (campaign_id, constituency_code)
);

-- Every edit makes a new version, and an approval is of one version: an edit withdraws it.
ALTER TABLE campaigns ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE campaigns ADD COLUMN needs_approval BOOLEAN NOT NULL DEFAULT FALSE;
-- Who wrote the version there is now (created_by until the first edit).
ALTER TABLE campaigns ADD COLUMN edited_by TEXT;
ALTER TABLE campaigns ADD COLUMN submitted_at TIMESTAMPTZ;
ALTER TABLE campaigns ADD COLUMN approved_version BIGINT;
ALTER TABLE campaigns ADD COLUMN approved_by TEXT;
ALTER TABLE campaigns ADD COLUMN approved_at TIMESTAMPTZ;
