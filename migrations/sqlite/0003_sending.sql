-- Sending over SMTP: why the worker paused a campaign by itself, and a way to the rows a worker
-- holds (few at a time: the index holds only leased rows).

ALTER TABLE campaigns ADD COLUMN paused_reason TEXT;

CREATE INDEX deliveries_leased ON deliveries (lease_owner, lease_until) WHERE lease_owner IS NOT NULL;
