-- Sending over SMTP: why the worker paused a campaign by itself, and a way to the rows a worker
-- holds (few at a time: the index holds only leased rows).

ALTER TABLE campaigns ADD COLUMN paused_reason TEXT;

CREATE INDEX deliveries_leased ON deliveries (lease_owner, lease_until) WHERE lease_owner IS NOT NULL;

-- Queueing inserts a campaign's whole audience in one statement, from rows it has just read
-- from campaigns and contacts. PostgreSQL checks a foreign key with a trigger per inserted row,
-- which took 7 of the 16 seconds of queueing a million; the ledger's two keys go, and erasing a
-- contact clears its deliveries' contact_id itself (as ON DELETE SET NULL did).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_campaign_id_fkey,
    DROP CONSTRAINT deliveries_contact_id_fkey;
