-- The kept counts read each contact's constituency from the contact (contacts.constituency_code,
-- written with the postcode and again by a directory replacement) instead of looking its
-- postcode up in the directory for every consent: a bulk import made one more random read of
-- the 2.7 million postcodes per consent it recorded. A contact whose constituency changes moves
-- between the counts as a contact whose postcode changed did.

DROP FUNCTION count_contact(BIGINT, TEXT, TIMESTAMPTZ, TEXT, BIGINT, BOOLEAN);

-- Adds `change` to the count of each topic a contact (as `constituency_code`, `restricted_at`
-- and `email_hash` describe it) holds a grant of, when it is neither restricted nor suppressed;
-- `unsuppressed` counts it as if its address were not suppressed.
CREATE FUNCTION count_contact(
    contact BIGINT, constituency_code TEXT, restricted_at TIMESTAMPTZ, email_hash TEXT,
    change BIGINT, unsuppressed BOOLEAN
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, topic_id, contacts)
    SELECT COALESCE(count_contact.constituency_code, ''), k.topic_id, change
    FROM consents k
    WHERE k.contact_id = contact AND k.granted AND count_contact.restricted_at IS NULL
      AND (unsuppressed OR NOT EXISTS (SELECT 1 FROM suppressions s
                                       WHERE s.email_hash = count_contact.email_hash))
$$;

CREATE OR REPLACE FUNCTION count_consents(contact_ids BIGINT[], topic_ids BIGINT[], changes INT[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO mailable_count_changes (constituency_code, topic_id, contacts)
    SELECT COALESCE(c.constituency_code, ''), k.topic_id, sum(k.change)
    FROM unnest(contact_ids, topic_ids, changes) AS k (contact_id, topic_id, change)
    JOIN contacts c ON c.id = k.contact_id
    WHERE c.restricted_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash)
    GROUP BY 1, 2
    HAVING sum(k.change) <> 0
$$;

CREATE OR REPLACE FUNCTION contacts_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM count_contact(OLD.id, OLD.constituency_code, OLD.restricted_at, OLD.email_hash,
                              -1, FALSE);
        RETURN OLD;
    END IF;
    IF OLD.restricted_at IS NOT DISTINCT FROM NEW.restricted_at
       AND OLD.constituency_code IS NOT DISTINCT FROM NEW.constituency_code
       AND OLD.email_hash IS NOT DISTINCT FROM NEW.email_hash THEN
        RETURN NULL;
    END IF;
    PERFORM count_contact(OLD.id, OLD.constituency_code, OLD.restricted_at, OLD.email_hash,
                          -1, FALSE);
    PERFORM count_contact(NEW.id, NEW.constituency_code, NEW.restricted_at, NEW.email_hash,
                          1, FALSE);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION suppressions_counted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c contacts;
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT * INTO c FROM contacts WHERE email_hash = OLD.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.constituency_code, c.restricted_at, c.email_hash,
                                  1, TRUE);
        END IF;
    ELSE
        SELECT * INTO c FROM contacts WHERE email_hash = NEW.email_hash;
        IF FOUND THEN
            PERFORM count_contact(c.id, c.constituency_code, c.restricted_at, c.email_hash,
                                  -1, TRUE);
        END IF;
    END IF;
    RETURN NULL;
END $$;
