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
--
-- The triggers never update a count in place: a counter row that every change of its
-- constituency and topic updated would be held by each until it commits (an import batch, a
-- worker's results), keeping a one-click unsubscribe waiting behind them, and two of them
-- taking two counters in opposite orders would deadlock. They append the change to
-- `mailable_count_changes` or `campaign_count_changes` instead, which takes no lock that
-- another writer waits for; readers add the changes to the counts (`mailable_totals`,
-- `campaign_totals`), and `fold_counts()` moves them into the counts, one fold at a time.
--
-- Every change of a contact's standing locks the contact's row before it is counted (FOR NO
-- KEY UPDATE, which the ledger's foreign key does not conflict with): two transactions
-- changing one contact are counted one after the other, each seeing what the other did.

CREATE TABLE consents (
    contact_id BIGINT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    topic_id   BIGINT NOT NULL REFERENCES topics (id),
    granted    BOOLEAN NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    ledger_id  BIGINT NOT NULL,
    PRIMARY KEY (contact_id, topic_id)
);

CREATE INDEX consents_by_topic ON consents (topic_id, granted, contact_id);

INSERT INTO consents (contact_id, topic_id, granted, at, ledger_id)
SELECT DISTINCT ON (l.contact_id, l.topic_id) l.contact_id, l.topic_id, l.granted, l.at, l.id
FROM consent_ledger l
WHERE l.channel = 'email'
ORDER BY l.contact_id, l.topic_id, l.at DESC, l.id DESC;

-- Once per statement, over the entries it added (an import adds thousands at once): their
-- contacts locked in the order of their ids, then the latest entry per pair made the one in
-- force where it is newer than what is.
CREATE FUNCTION consent_ledger_in_force() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM NULL FROM contacts WHERE id IN (SELECT contact_id FROM new_rows)
    ORDER BY id FOR NO KEY UPDATE;
    INSERT INTO consents (contact_id, topic_id, granted, at, ledger_id)
    SELECT DISTINCT ON (contact_id, topic_id) contact_id, topic_id, granted, at, id
    FROM new_rows
    WHERE channel = 'email'
    ORDER BY contact_id, topic_id, at DESC, id DESC
    ON CONFLICT (contact_id, topic_id) DO UPDATE
        SET granted = excluded.granted, at = excluded.at, ledger_id = excluded.ledger_id
        WHERE excluded.at > consents.at
           OR (excluded.at = consents.at AND excluded.ledger_id > consents.ledger_id);
    RETURN NULL;
END $$;

CREATE TRIGGER consent_ledger_in_force AFTER INSERT ON consent_ledger
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION consent_ledger_in_force();

DROP VIEW current_consent;
CREATE VIEW current_consent AS
SELECT k.contact_id, k.topic_id, 'email'::TEXT AS channel, k.granted, l.source, k.at
FROM consents k JOIN consent_ledger l ON l.id = k.ledger_id;

CREATE TABLE mailable_counts (
    constituency_code TEXT NOT NULL,
    topic_id          BIGINT NOT NULL,
    contacts          BIGINT NOT NULL,
    PRIMARY KEY (constituency_code, topic_id)
);

CREATE TABLE mailable_count_changes (
    constituency_code TEXT NOT NULL,
    topic_id          BIGINT NOT NULL,
    contacts          BIGINT NOT NULL
);

CREATE VIEW mailable_totals AS
SELECT constituency_code, topic_id, CAST(sum(contacts) AS BIGINT) AS contacts
FROM (SELECT constituency_code, topic_id, contacts FROM mailable_counts
      UNION ALL
      SELECT constituency_code, topic_id, contacts FROM mailable_count_changes) m
GROUP BY constituency_code, topic_id;

INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
SELECT COALESCE(p.constituency_code, ''), k.topic_id, count(*)
FROM consents k
JOIN contacts c ON c.id = k.contact_id
LEFT JOIN postcodes p ON p.postcode = c.postcode
WHERE k.granted AND c.restricted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
GROUP BY 1, 2;

-- Adds `change` to the count of each topic a contact (as `postcode`, `restricted_at` and
-- `email_hash` describe it) holds a grant of, when it is neither restricted nor suppressed;
-- `unsuppressed` counts it as if its address were not suppressed. One statement, so that the
-- constituency is read after the lock on the changes is taken (a directory replacement holds
-- it while it counts again).
CREATE FUNCTION count_contact(
    contact BIGINT, postcode TEXT, restricted_at TIMESTAMPTZ, email_hash TEXT,
    change BIGINT, unsuppressed BOOLEAN
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, topic_id, contacts)
    SELECT COALESCE((SELECT p.constituency_code FROM postcodes p WHERE p.postcode = count_contact.postcode), ''),
           k.topic_id, change
    FROM consents k
    WHERE k.contact_id = contact AND k.granted AND count_contact.restricted_at IS NULL
      AND (unsuppressed OR NOT EXISTS (SELECT 1 FROM suppressions s
                                       WHERE s.email_hash = count_contact.email_hash))
$$;

-- Adds each grant that came into force (+1) or went (-1) for a (contact, topic), in parallel
-- arrays, to the counts of the contact's constituency, when it is neither restricted nor
-- suppressed.
CREATE FUNCTION count_consents(contact_ids BIGINT[], topic_ids BIGINT[], changes INT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, topic_id, contacts)
    SELECT COALESCE(p.constituency_code, ''), k.topic_id, sum(k.change)
    FROM unnest(contact_ids, topic_ids, changes) AS k (contact_id, topic_id, change)
    JOIN contacts c ON c.id = k.contact_id
    LEFT JOIN postcodes p ON p.postcode = c.postcode
    WHERE c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    GROUP BY 1, 2
    HAVING sum(k.change) <> 0
$$;

-- Once per statement (the ledger's trigger writes a statement's worth of consents at once).
-- A trigger with transition tables serves one event: one for inserts, one for updates.
CREATE FUNCTION consents_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM count_consents(array_agg(contact_id), array_agg(topic_id), array_agg(1))
        FROM new_rows WHERE granted;
    ELSE
        PERFORM count_consents(array_agg(n.contact_id), array_agg(n.topic_id),
                               array_agg(CASE WHEN n.granted THEN 1 ELSE -1 END))
        FROM new_rows n
        JOIN old_rows o ON o.contact_id = n.contact_id AND o.topic_id = n.topic_id
        WHERE o.granted <> n.granted;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER consents_counted_insert AFTER INSERT ON consents
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION consents_counted();

CREATE TRIGGER consents_counted_update AFTER UPDATE ON consents
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION consents_counted();

CREATE FUNCTION contacts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM count_contact(OLD.id, OLD.postcode, OLD.restricted_at, OLD.email_hash, -1, FALSE);
        RETURN OLD;
    END IF;
    IF OLD.restricted_at IS NOT DISTINCT FROM NEW.restricted_at
       AND OLD.postcode IS NOT DISTINCT FROM NEW.postcode
       AND OLD.email_hash IS NOT DISTINCT FROM NEW.email_hash THEN
        RETURN NULL;
    END IF;
    PERFORM count_contact(OLD.id, OLD.postcode, OLD.restricted_at, OLD.email_hash, -1, FALSE);
    PERFORM count_contact(NEW.id, NEW.postcode, NEW.restricted_at, NEW.email_hash, 1, FALSE);
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_counted_update AFTER UPDATE ON contacts
FOR EACH ROW EXECUTE FUNCTION contacts_counted();

-- Before the contact goes, while its consents are there to say what it was counted in.
CREATE TRIGGER contacts_counted_delete BEFORE DELETE ON contacts
FOR EACH ROW EXECUTE FUNCTION contacts_counted();

CREATE FUNCTION suppressions_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM NULL FROM contacts
    WHERE email_hash = (CASE WHEN TG_OP = 'DELETE' THEN OLD.email_hash ELSE NEW.email_hash END)
    FOR NO KEY UPDATE;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER suppressions_lock BEFORE INSERT OR DELETE ON suppressions
FOR EACH ROW EXECUTE FUNCTION suppressions_lock();

CREATE FUNCTION suppressions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c contacts;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT * INTO c FROM contacts WHERE email_hash = OLD.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.postcode, c.restricted_at, c.email_hash, 1, TRUE);
        END IF;
    ELSE
        SELECT * INTO c FROM contacts WHERE email_hash = NEW.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.postcode, c.restricted_at, c.email_hash, -1, TRUE);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER suppressions_counted AFTER INSERT OR DELETE ON suppressions
FOR EACH ROW EXECUTE FUNCTION suppressions_counted();

-- A campaign's postcode prefixes are ranges of this index, in byte order whatever the
-- database's collation.
CREATE INDEX contacts_postcode_bytes ON contacts (postcode COLLATE "C");

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
    campaign_id       BIGINT NOT NULL,
    state             TEXT NOT NULL,
    constituency_code TEXT NOT NULL,
    bounced           BOOLEAN NOT NULL,
    complained        BOOLEAN NOT NULL,
    unsubscribed      BOOLEAN NOT NULL,
    deliveries        BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, state, constituency_code, bounced, complained, unsubscribed)
);

INSERT INTO campaign_counts
    (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, unsubscribed, count(*)
FROM deliveries
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE TABLE campaign_count_changes (
    campaign_id       BIGINT NOT NULL,
    state             TEXT NOT NULL,
    constituency_code TEXT NOT NULL,
    bounced           BOOLEAN NOT NULL,
    complained        BOOLEAN NOT NULL,
    unsubscribed      BOOLEAN NOT NULL,
    deliveries        BIGINT NOT NULL
);

CREATE INDEX campaign_count_changes_by_campaign ON campaign_count_changes (campaign_id);

CREATE VIEW campaign_totals AS
SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed,
       CAST(sum(deliveries) AS BIGINT) AS deliveries
FROM (SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries
      FROM campaign_counts
      UNION ALL
      SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries
      FROM campaign_count_changes) k
GROUP BY campaign_id, state, constituency_code, bounced, complained, unsubscribed;

-- Once per statement, over the rows it changed: a claim of a thousand deliveries changes no
-- count and costs one pass over its rows; a thousand results cost a few rows of changes.
CREATE FUNCTION deliveries_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_count_changes
        (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
    SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, unsubscribed,
           sum(change)
    FROM (SELECT campaign_id, state, constituency, bounced, complained, unsubscribed,
                 -1 AS change FROM old_rows
          UNION ALL
          SELECT campaign_id, state, constituency, bounced, complained, unsubscribed,
                 1 AS change FROM new_rows) d
    GROUP BY 1, 2, 3, 4, 5, 6
    HAVING sum(change) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_counted AFTER UPDATE ON deliveries
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION deliveries_counted();

-- (A campaign's own deletion takes its counts first: nothing is left for its deliveries.)
CREATE FUNCTION deliveries_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO campaign_count_changes
        (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
    SELECT campaign_id, state, COALESCE(constituency, ''), bounced, complained, unsubscribed,
           -count(*)
    FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_uncounted AFTER DELETE ON deliveries
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION deliveries_uncounted();

CREATE FUNCTION campaigns_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM campaign_counts WHERE campaign_id = OLD.id;
    DELETE FROM campaign_count_changes WHERE campaign_id = OLD.id;
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_counted_delete AFTER DELETE ON campaigns
FOR EACH ROW EXECUTE FUNCTION campaigns_counted_delete();

-- Moves the changes into the counts: what readers see is the same before and after. One fold
-- at a time (another one asked for meanwhile has nothing to do); only folds update counts in
-- place, so no writer of changes ever waits for them.
CREATE FUNCTION fold_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('canvass.fold_counts')) THEN
        RETURN;
    END IF;
    WITH folded AS (DELETE FROM mailable_count_changes RETURNING *)
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT constituency_code, topic_id, sum(contacts) FROM folded GROUP BY 1, 2
    ON CONFLICT (constituency_code, topic_id)
    DO UPDATE SET contacts = mailable_counts.contacts + excluded.contacts;
    WITH folded AS (DELETE FROM campaign_count_changes RETURNING *)
    INSERT INTO campaign_counts
        (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
    SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed,
           sum(deliveries)
    FROM folded GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (campaign_id, state, constituency_code, bounced, complained, unsubscribed)
    DO UPDATE SET deliveries = campaign_counts.deliveries + excluded.deliveries;
END $$;
