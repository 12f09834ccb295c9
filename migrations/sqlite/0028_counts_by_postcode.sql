-- The kept counts by postcode too: per contact's postcode ('' for none), topic and constituency, the contacts
-- holding that consent who are neither restricted nor suppressed, as mailable_counts counts them
-- by constituency. The live count of an event's distance rule adds up the postcodes within its
-- miles of the venue instead of reading each person there. Kept by the same changes as
-- mailable_counts, and by a directory replacement's new constituencies on the contacts.

CREATE TABLE mailable_postcode_counts (
    postcode          TEXT NOT NULL,
    topic_id          INTEGER NOT NULL,
    -- The constituency kept on the contacts counted ('' for none), so that a rule on
    -- constituencies reads the same as it does on each contact.
    constituency_code TEXT NOT NULL,
    contacts          INTEGER NOT NULL,
    PRIMARY KEY (postcode, topic_id, constituency_code)
) WITHOUT ROWID;

-- A postcode counted no more is forgotten at once: someone erased leaves no row saying that
-- someone at their postcode once gave consent. The triggers that take one away delete the
-- rows they emptied, found through this.
CREATE INDEX mailable_postcode_counts_emptied ON mailable_postcode_counts (postcode)
WHERE contacts = 0;

-- As `canvass counts check` reads them (PostgreSQL's add the changes not yet folded in).
CREATE VIEW mailable_by_postcode AS
SELECT postcode, topic_id, constituency_code, contacts FROM mailable_postcode_counts;

INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
SELECT COALESCE(c.postcode, ''), k.topic_id, COALESCE(c.constituency_code, ''), count(*)
FROM consents k
JOIN contacts c ON c.id = k.contact_id
WHERE k.granted AND c.restricted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
GROUP BY 1, 2, 3;

CREATE TRIGGER consents_counted_by_postcode_insert AFTER INSERT ON consents
WHEN NEW.granted
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(c.postcode, ''), NEW.topic_id, COALESCE(c.constituency_code, ''), 1
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER consents_counted_by_postcode_update AFTER UPDATE OF granted ON consents
WHEN OLD.granted IS NOT NEW.granted
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(c.postcode, ''), NEW.topic_id, COALESCE(c.constituency_code, ''),
           CASE WHEN NEW.granted THEN 1 ELSE -1 END
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
    DELETE FROM mailable_postcode_counts WHERE contacts = 0;
END;

CREATE TRIGGER contacts_counted_by_postcode_update
AFTER UPDATE OF restricted_at, postcode, constituency_code, email_hash ON contacts
WHEN OLD.restricted_at IS NOT NEW.restricted_at
  OR OLD.postcode IS NOT NEW.postcode
  OR OLD.constituency_code IS NOT NEW.constituency_code
  OR OLD.email_hash IS NOT NEW.email_hash
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(OLD.postcode, ''), k.topic_id, COALESCE(OLD.constituency_code, ''), -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(NEW.postcode, ''), k.topic_id, COALESCE(NEW.constituency_code, ''), 1
    FROM consents k
    WHERE k.contact_id = NEW.id AND k.granted AND NEW.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = NEW.email_hash)
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
    DELETE FROM mailable_postcode_counts WHERE contacts = 0;
END;

CREATE TRIGGER contacts_counted_by_postcode_delete BEFORE DELETE ON contacts
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(OLD.postcode, ''), k.topic_id, COALESCE(OLD.constituency_code, ''), -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
    DELETE FROM mailable_postcode_counts WHERE contacts = 0;
END;

CREATE TRIGGER suppressions_counted_by_postcode_insert AFTER INSERT ON suppressions
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(c.postcode, ''), k.topic_id, COALESCE(c.constituency_code, ''), -1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = NEW.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
    DELETE FROM mailable_postcode_counts WHERE contacts = 0;
END;

CREATE TRIGGER suppressions_counted_by_postcode_delete AFTER DELETE ON suppressions
BEGIN
    INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts)
    SELECT COALESCE(c.postcode, ''), k.topic_id, COALESCE(c.constituency_code, ''), 1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = OLD.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (postcode, topic_id, constituency_code) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

-- The people with a date of birth by postcode: the live count of a distance rule takes away
-- those under the age of consent in the postcodes within its miles, reading only their rows.
CREATE INDEX contacts_born_by_postcode ON contacts (postcode, date_of_birth)
WHERE date_of_birth IS NOT NULL;
