-- The kept counts read each contact's constituency from the contact (contacts.constituency_code,
-- written with the postcode and again by a directory replacement) instead of looking its
-- postcode up in the directory for every consent: a bulk import made one more random read of
-- the 2.7 million postcodes per consent it recorded. A contact whose constituency changes moves
-- between the counts as a contact whose postcode changed did.

DROP TRIGGER consents_counted_insert;
DROP TRIGGER consents_counted_update;
DROP TRIGGER contacts_counted_update;
DROP TRIGGER contacts_counted_delete;
DROP TRIGGER suppressions_counted_insert;
DROP TRIGGER suppressions_counted_delete;

CREATE TRIGGER consents_counted_insert AFTER INSERT ON consents
WHEN NEW.granted
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), NEW.topic_id, 1
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER consents_counted_update AFTER UPDATE OF granted ON consents
WHEN OLD.granted IS NOT NEW.granted
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), NEW.topic_id, CASE WHEN NEW.granted THEN 1 ELSE -1 END
    FROM contacts c
    WHERE c.id = NEW.contact_id AND c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER contacts_counted_update
AFTER UPDATE OF restricted_at, constituency_code, email_hash ON contacts
WHEN OLD.restricted_at IS NOT NEW.restricted_at
  OR OLD.constituency_code IS NOT NEW.constituency_code
  OR OLD.email_hash IS NOT NEW.email_hash
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(OLD.constituency_code, ''), k.topic_id, -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(NEW.constituency_code, ''), k.topic_id, 1
    FROM consents k
    WHERE k.contact_id = NEW.id AND k.granted AND NEW.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = NEW.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER contacts_counted_delete BEFORE DELETE ON contacts
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(OLD.constituency_code, ''), k.topic_id, -1
    FROM consents k
    WHERE k.contact_id = OLD.id AND k.granted AND OLD.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = OLD.email_hash)
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER suppressions_counted_insert AFTER INSERT ON suppressions
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), k.topic_id, -1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = NEW.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;

CREATE TRIGGER suppressions_counted_delete AFTER DELETE ON suppressions
BEGIN
    INSERT INTO mailable_counts (constituency_code, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), k.topic_id, 1
    FROM contacts c JOIN consents k ON k.contact_id = c.id
    WHERE c.email_hash = OLD.email_hash AND k.granted AND c.restricted_at IS NULL
    ON CONFLICT (constituency_code, topic_id) DO UPDATE SET contacts = contacts + excluded.contacts;
END;
