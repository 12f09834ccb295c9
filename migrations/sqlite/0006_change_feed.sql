-- Keeping promises mid-send.
--
-- The change feed: every committed change that can stop a queued delivery (a withdrawal, an
-- erasure, a restriction, a suppression, a contact's move, a directory or contacts import, a
-- campaign paused or cancelled) adds rows here in the same transaction. A sending worker polls
-- it a few times a second and checks again, just before MAIL FROM, any message whose recipient
-- or campaign has changed since it was claimed. `contact_id` and `campaign_id` both NULL: anyone
-- may have changed (a bulk import).
--
-- `seq` comes from the one row of `change_clock`, which each writer bumps just before it
-- commits: the row stays locked until then, so numbers are handed out in commit order and a
-- poller that has read up to a number has seen every change committed before it (a sequence
-- would not promise that on PostgreSQL, where a lower number can commit after a higher one).
CREATE TABLE change_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_clock (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq         BIGINT NOT NULL,
    contact_id  BIGINT,
    campaign_id BIGINT,
    at          TEXT NOT NULL
);
CREATE INDEX changes_by_seq ON changes (seq);

-- A failed delivery whose recipient's server said the mailbox does not exist (and whose address
-- was suppressed for it); `campaign retry` queues again every other failure.
ALTER TABLE deliveries ADD COLUMN bounced BOOLEAN NOT NULL DEFAULT FALSE;
