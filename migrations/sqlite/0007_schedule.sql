-- A draft campaign can be scheduled: the worker queues it when the time comes, taking the
-- audience at that moment.
ALTER TABLE campaigns ADD COLUMN scheduled_at TEXT;

CREATE INDEX campaigns_scheduled ON campaigns (scheduled_at) WHERE scheduled_at IS NOT NULL;
