-- The kept counts by postcode too: per contact's postcode ('' for none), topic and constituency, the contacts
-- holding that consent who are neither restricted nor suppressed, as mailable_counts counts them
-- by constituency. The live count of an event's distance rule adds up the postcodes within its
-- miles of the venue instead of reading each person there. The triggers' changes now carry the
-- postcode, and a fold moves them into both counts; a directory replacement folds them here
-- (its new constituencies on the contacts among them) instead of dropping them.

-- The changes waiting, without a postcode: into the counts first, with no one writing more.
LOCK TABLE mailable_count_changes IN SHARE ROW EXCLUSIVE MODE;
WITH folded AS (DELETE FROM mailable_count_changes RETURNING *)
INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
SELECT constituency_code, topic_id, sum(contacts) FROM folded GROUP BY 1, 2
ON CONFLICT (constituency_code, topic_id)
DO UPDATE SET contacts = mailable_counts.contacts + excluded.contacts;

ALTER TABLE mailable_count_changes ADD COLUMN postcode TEXT NOT NULL DEFAULT '';
ALTER TABLE mailable_count_changes ALTER COLUMN postcode DROP DEFAULT;

CREATE TABLE mailable_postcode_counts (
    postcode          TEXT NOT NULL,
    topic_id          BIGINT NOT NULL,
    -- The constituency kept on the contacts counted ('' for none), so that a rule on
    -- constituencies reads the same as it does on each contact.
    constituency_code TEXT NOT NULL,
    contacts          BIGINT NOT NULL,
    PRIMARY KEY (postcode, topic_id, constituency_code)
);

-- A postcode counted no more is forgotten at each fold: someone erased leaves no row saying
-- that someone at their postcode once gave consent (erasure folds at once).
CREATE INDEX mailable_postcode_counts_emptied ON mailable_postcode_counts (postcode)
WHERE contacts = 0;

-- The counts with the changes not yet folded in, row by row (summing gives the count), as
-- `canvass counts check` reads them. The live count of a distance rule folds first and
-- reads the counts alone, through their key: the changes have no index by postcode, which
-- every change written would pay for.
CREATE VIEW mailable_by_postcode AS
SELECT postcode, topic_id, constituency_code, contacts FROM mailable_postcode_counts
UNION ALL
SELECT postcode, topic_id, constituency_code, contacts FROM mailable_count_changes;

INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
SELECT COALESCE(c.postcode, ''), k.topic_id, COALESCE(c.constituency_code, ''), count(*)
FROM consents k
JOIN contacts c ON c.id = k.contact_id
WHERE k.granted AND c.restricted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
GROUP BY 1, 2, 3;

DROP FUNCTION count_contact(BIGINT, TEXT, TIMESTAMPTZ, TEXT, BIGINT, BOOLEAN);

-- Adds `change` to the counts of each topic a contact (as `constituency_code`, `postcode`,
-- `restricted_at` and `email_hash` describe it) holds a grant of, when it is neither restricted
-- nor suppressed; `unsuppressed` counts it as if its address were not suppressed.
CREATE FUNCTION count_contact(
    contact BIGINT, constituency_code TEXT, postcode TEXT, restricted_at TIMESTAMPTZ,
    email_hash TEXT, change BIGINT, unsuppressed BOOLEAN
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, postcode, topic_id, contacts)
    SELECT COALESCE(count_contact.constituency_code, ''), COALESCE(count_contact.postcode, ''),
           k.topic_id, change
    FROM consents k
    WHERE k.contact_id = contact AND k.granted AND count_contact.restricted_at IS NULL
      AND (unsuppressed OR NOT EXISTS (SELECT 1 FROM suppressions s
                                       WHERE s.email_hash = count_contact.email_hash))
$$;

CREATE OR REPLACE FUNCTION count_consents(contact_ids BIGINT[], topic_ids BIGINT[], changes INT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, postcode, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), COALESCE(c.postcode, ''), k.topic_id, sum(k.change)
    FROM unnest(contact_ids, topic_ids, changes) AS k (contact_id, topic_id, change)
    JOIN contacts c ON c.id = k.contact_id
    WHERE c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    GROUP BY 1, 2, 3
    HAVING sum(k.change) <> 0
$$;

CREATE OR REPLACE FUNCTION contacts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM count_contact(OLD.id, OLD.constituency_code, OLD.postcode, OLD.restricted_at,
                              OLD.email_hash, -1, FALSE);
        RETURN OLD;
    END IF;
    IF OLD.restricted_at IS NOT DISTINCT FROM NEW.restricted_at
       AND OLD.constituency_code IS NOT DISTINCT FROM NEW.constituency_code
       AND OLD.postcode IS NOT DISTINCT FROM NEW.postcode
       AND OLD.email_hash IS NOT DISTINCT FROM NEW.email_hash THEN
        RETURN NULL;
    END IF;
    PERFORM count_contact(OLD.id, OLD.constituency_code, OLD.postcode, OLD.restricted_at,
                          OLD.email_hash, -1, FALSE);
    PERFORM count_contact(NEW.id, NEW.constituency_code, NEW.postcode, NEW.restricted_at,
                          NEW.email_hash, 1, FALSE);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION suppressions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c contacts;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT * INTO c FROM contacts WHERE email_hash = OLD.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.constituency_code, c.postcode, c.restricted_at,
                                  c.email_hash, 1, TRUE);
        END IF;
    ELSE
        SELECT * INTO c FROM contacts WHERE email_hash = NEW.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.constituency_code, c.postcode, c.restricted_at,
                                  c.email_hash, -1, TRUE);
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Moves the changes into both counts from one reading of them. `wait`: when another fold is
-- under way, wait for it and fold what it left (an erasure, whose postcode must go now);
-- otherwise leave it to that one.
DROP FUNCTION fold_counts();
CREATE FUNCTION fold_counts(wait BOOLEAN DEFAULT FALSE) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(hashtext('canvass.fold_counts'));
    ELSIF NOT pg_try_advisory_xact_lock(hashtext('canvass.fold_counts')) THEN
        RETURN;
    END IF;
    WITH folded AS (DELETE FROM mailable_count_changes RETURNING *),
    by_constituency AS (
        INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
        SELECT constituency_code, topic_id, sum(contacts) FROM folded GROUP BY 1, 2
        ON CONFLICT (constituency_code, topic_id)
        DO UPDATE SET contacts = mailable_counts.contacts + excluded.contacts
    )
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT postcode, topic_id, constituency_code, sum(contacts) FROM folded GROUP BY 1, 2, 3
    ON CONFLICT (postcode, topic_id, constituency_code)
    DO UPDATE SET contacts = mailable_postcode_counts.contacts + excluded.contacts;
    DELETE FROM mailable_postcode_counts WHERE contacts = 0;
    WITH folded AS (DELETE FROM campaign_count_changes RETURNING *)
    INSERT INTO campaign_counts
        (campaign_id, state, constituency_code, bounced, complained, unsubscribed, deliveries)
    SELECT campaign_id, state, constituency_code, bounced, complained, unsubscribed,
           sum(deliveries)
    FROM folded GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (campaign_id, state, constituency_code, bounced, complained, unsubscribed)
    DO UPDATE SET deliveries = campaign_counts.deliveries + excluded.deliveries;
END $$;

-- The people with a date of birth by postcode: the live count of a distance rule takes away
-- those under the age of consent in the postcodes within its miles, reading only their rows.
CREATE INDEX contacts_born_by_postcode ON contacts (postcode, date_of_birth)
WHERE date_of_birth IS NOT NULL;
