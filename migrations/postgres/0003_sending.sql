-- Sending over SMTP: why the worker paused a campaign by itself, and a way to the rows still to
-- send that does not walk past the ones already sent.

ALTER TABLE campaigns ADD COLUMN paused_reason TEXT;

CREATE INDEX deliveries_to_send ON deliveries (id) WHERE state = 'queued';
