-- Sending over SMTP: why the worker paused a campaign by itself; a way to the rows still to send
-- that does not walk past the ones already sent; and to the rows a worker holds (few at a time).

ALTER TABLE campaigns ADD COLUMN paused_reason TEXT;

CREATE INDEX deliveries_to_send ON deliveries (id) WHERE state = 'queued';

CREATE INDEX deliveries_leased ON deliveries (lease_owner, lease_until) WHERE lease_owner IS NOT NULL;
