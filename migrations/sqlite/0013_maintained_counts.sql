-- Counts kept as the data changes, so that the console shows them on a million contacts without
-- counting the contacts (and without a periodic cache that would be wrong in between).
--
-- 1. consents: the consent in force for each contact and topic, the ledger's latest entry
--    (by when it was given, then by entry). The ledger's trigger keeps it.
-- 2. mailable_counts: per constituency ('' for none) and topic, the contacts holding that
--    consent who are neither restricted nor suppressed. Their age is not part of it (it changes
--    with the calendar, not with the data): readers take away the few under the age of consent
--    themselves. Triggers on consents, contacts and suppressions keep it; replacing the postcode
--    directory counts it again.
-- 3. campaign_counts: per campaign, its deliveries by state, constituency and what came back, as
--    its report counts them. Queueing adds a campaign's rows; a trigger follows every change of
--    a delivery.
-- 4. contacts.constituency_code: each contact's constituency, kept from its postcode, for the
--    contact lists of organisers kept to constituencies.
-- `canvass counts check` (and the tests) count everything again from scratch and compare.

CREATE TABLE consents (
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic_id   INTEGER NOT NULL REFERENCES topics (id),
    granted    BOOLEAN NOT NULL,
    at         TEXT NOT NULL,
    ledger_id  INTEGER NOT NULL,
    PRIMARY KEY (contact_id, topic_id)
) WITHOUT ROWID;

CREATE INDEX consents_by_topic ON consents (topic_id, granted, contact_id);

INSERT INTO consents (contact_id, topic_id, granted, at, ledger_id)
SELECT l.contact_id, l.topic_id, l.granted, l.at, l.id
FROM consent_ledger l
WHERE l.channel = 'email'
  AND NOT EXISTS (
    SELECT 1 FROM consent_ledger newer
    WHERE newer.contact_id = l.contact_id
      AND newer.topic_id = l.topic_id
      AND newer.channel = l.channel
      AND (newer.at > l.at OR (newer.at = l.at AND newer.id > l.id)));

CREATE TRIGGER consent_ledger_in_force AFTER INSERT ON consent_ledger
WHEN NEW.channel = 'email'
BEGIN
    INSERT INTO consents (contact_id, topic_id, granted, at, ledger_id)
    VALUES (NEW.contact_id, NEW.topic_id, NEW.granted, NEW.at, NEW.id)
    ON CONFLICT (contact_id, topic_id) DO UPDATE
        SET granted = excluded.granted, at = excluded.at, ledger_id = excluded.ledger_id
        WHERE excluded.at > consents.at
           OR (excluded.at = consents.at AND excluded.ledger_id > consents.ledger_id);
END;

DROP VIEW current_consent;
CREATE VIEW current_consent AS
SELECT k.contact_id, k.topic_id, 'email' AS channel, k.granted, l.source, k.at
FROM consents k JOIN consent_ledger l ON l.id = k.ledger_id;

CREATE TABLE mailable_counts (
    constituency_code TEXT NOT NULL,
    topic_id          INTEGER NOT NULL,
    contacts          INTEGER NOT NULL,
    PRIMARY KEY (constituency_code, topic_id)
) WITHOUT ROWID;

-- What readers read (PostgreSQL's add the changes not yet folded in; SQLite has one writer at a
-- time and updates its counts in place).
CREATE VIEW mailable_totals AS SELECT constituency_code, topic_id, contacts FROM mailable_counts;

INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
SELECT COALESCE(p.constituency_code, ''), k.topic_id, count(*)
FROM consents k
JOIN contacts c ON c.id = k.contact_id
LEFT JOIN postcodes p ON p.postcode = c.postcode
WHERE k.granted AND c.restricted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
GROUP BY 1, 2;

-- A consent given or taken back by someone counted (neither restricted nor suppressed).
CREATE TRIGGER consents_counted_insert AFTER INSERT ON consents
WHEN NEW.granted
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = c.postcode), ''),
           NEW.topic_id, 1
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER consents_counted_update AFTER UPDATE OF granted ON consents
WHEN OLD.granted IS NOT NEW.granted
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = c.postcode), ''),
           NEW.topic_id, CASE WHEN NEW.granted THEN 1 ELSE -1 END
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

-- A contact restricted or freed, moved, or given another address: out of the counts as they
-- were, into them as they are.
CREATE TRIGGER contacts_counted_update AFTER UPDATE OF restricted_at, postcode, email_hash ON contacts
WHEN OLD.restricted_at IS NOT NEW.restricted_at
  OR OLD.postcode IS NOT NEW.postcode
  OR OLD.email_hash IS NOT NEW.email_hash
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = OLD.postcode), ''),
           k.topic_id, -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = NEW.postcode), ''),
           k.topic_id, 1
    FROM consents k
    WHERE k.contact_id = NEW.id AND k.granted AND NEW.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = NEW.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

-- A contact erased: out of the counts before its consents go with it.
CREATE TRIGGER contacts_counted_delete BEFORE DELETE ON contacts
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = OLD.postcode), ''),
           k.topic_id, -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

-- An address suppressed, or its suppression lifted.
CREATE TRIGGER suppressions_counted_insert AFTER INSERT ON suppressions
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = c.postcode), ''),
           k.topic_id, -1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = NEW.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER suppressions_counted_delete AFTER DELETE ON suppressions
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = c.postcode), ''),
           k.topic_id, 1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = OLD.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

-- Each contact's constituency, as the directory places its postcode: the contact lists of an
-- organiser kept to a constituency, and their counts, read a range of this index. Written
-- with the postcode; a directory replacement writes it again.
ALTER TABLE contacts ADD COLUMN constituency_code TEXT;
UPDATE contacts SET constituency_code = (SELECT p.constituency_code FROM postcodes p
                                         WHERE p.postcode = contacts.postcode)
WHERE postcode IS NOT NULL;
CREATE INDEX contacts_by_constituency ON contacts (constituency_code, id);

-- The dashboard's latest unsubscribes and bounces, newest first.
CREATE INDEX suppressions_recent ON suppressions (updated_at);

-- The people under the age of consent without a guardian's: the few that readers take away.
CREATE INDEX contacts_born ON contacts (date_of_birth) WHERE date_of_birth IS NOT NULL;

CREATE TABLE campaign_counts (
    campaign_id       INTEGER NOT NULL,
    state             TEXT NOT NULL,
    constituency_code TEXT NOT NULL,
    bounced           BOOLEAN NOT NULL,
    complained        BOOLEAN NOT NULL,
    unsubscribed      BOOLEAN NOT NULL,
    deliveries        INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, state, constituency_code, bounced, complained, unsubscribed)
) WITHOUT ROWID;

CREATE VIEW campaign_totals AS
SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries
FROM campaign_counts;

INSERT INTO campaign_counts
    (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, unsubscribed, count(*)
FROM deliveries
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE TRIGGER deliveries_counted_update
AFTER UPDATE OF state, constituency, bounced, complained, unsubscribed ON deliveries
WHEN OLD.state IS NOT NEW.state
  OR OLD.constituency IS NOT NEW.constituency
  OR OLD.bounced IS NOT NEW.bounced
  OR OLD.complained IS NOT NEW.complained
  OR OLD.unsubscribed IS NOT NEW.unsubscribed
BEGIN
    UPDATE campaign_counts SET deliveries = deliveries - 1
    WHERE campaign_id = OLD.campaign_id AND state = OLD.state
      AND constituency_code = COALESCE(OLD.constituency, '')
      AND bounced = OLD.bounced AND complained = OLD.complained
      AND unsubscribed = OLD.unsubscribed;
    INSERT INTO campaign_counts
        (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
    VALUES (NEW.campaign_id, NEW.state, COALESCE(NEW.constituency, ''), NEW.bounced,
            NEW.complained, NEW.unsubscribed, 1)
    ON CONFLICT (campaign_id, state, constituency_code, bounced, complained, unsubscribed)
    DO UPDATE SET deliveries = deliveries + 1;
END;

CREATE TRIGGER deliveries_counted_delete AFTER DELETE ON deliveries
BEGIN
    UPDATE campaign_counts SET deliveries = deliveries - 1
    WHERE campaign_id = OLD.campaign_id AND state = OLD.state
      AND constituency_code = COALESCE(OLD.constituency, '')
      AND bounced = OLD.bounced AND complained = OLD.complained
      AND unsubscribed = OLD.unsubscribed;
END;

CREATE TRIGGER campaigns_counted_delete AFTER DELETE ON campaigns
BEGIN
    DELETE FROM campaign_counts WHERE campaign_id = OLD.id;
END;
