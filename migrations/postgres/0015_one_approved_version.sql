-- The version approved, queued and sent is one fact, checked in the statement that changes the
-- state: a schedule remembers the version it was made for (cleared then) and who made it, the
-- worker queues a due schedule only while that is still the version (and approved, unless the
-- operator scheduled it), and the queue records the version it took.
ALTER TABLE campaigns ADD COLUMN scheduled_version BIGINT;
ALTER TABLE campaigns ADD COLUMN queued_version BIGINT;
ALTER TABLE campaigns ADD COLUMN scheduled_by TEXT;
UPDATE campaigns SET scheduled_version = version
    WHERE scheduled_at IS NOT NULL AND (NOT needs_approval OR approved_version = version);
-- A schedule of a version nobody approved is dropped rather than kept and never queued.
UPDATE campaigns SET scheduled_at = NULL WHERE scheduled_version IS NULL;
UPDATE campaigns SET queued_version = version WHERE state <> 'draft';

-- Everyone who wrote any version of a campaign: none of them may approve it.
CREATE TABLE campaign_authors (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    author      TEXT NOT NULL,
    PRIMARY KEY (campaign_id, author)
);
INSERT INTO campaign_authors (campaign_id, author) SELECT id, created_by FROM campaigns;
INSERT INTO campaign_authors (campaign_id, author)
    SELECT id, edited_by FROM campaigns WHERE edited_by IS NOT NULL AND edited_by <> created_by;
INSERT INTO campaign_authors (campaign_id, author)
    SELECT DISTINCT a.campaign_id, a.actor FROM (
        SELECT CAST(substr(detail, 10) AS BIGINT) AS campaign_id, actor FROM audit_log
        WHERE action = 'campaign.edited' AND detail LIKE 'campaign %'
    ) a
    WHERE EXISTS (SELECT 1 FROM campaigns k WHERE k.id = a.campaign_id)
      AND NOT EXISTS (SELECT 1 FROM campaign_authors w
                      WHERE w.campaign_id = a.campaign_id AND w.author = a.actor);
