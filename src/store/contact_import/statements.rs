//! The statements an import runs: its staging tables, the rows it refuses (erased, under age
//! without a guardian's consent), and the set-based upserts of contacts, consents and guardians.

/// The temporary tables rows are staged in, one row per contact (`idx` the caller's key for the
/// row, such as its line, which grows) and one per (row, topic): appended to in order, with no
/// index to write all over (the addresses staged together are distinct: [`ContactImport::add`]
/// sees to it). The column types differ between the engines; the statements that use the
/// tables do not.
pub(super) const SQLITE_STAGING: &str = "\
    CREATE TEMP TABLE import_rows (idx INTEGER PRIMARY KEY, public_id TEXT NOT NULL, \
        email TEXT NOT NULL, email_hash TEXT NOT NULL, name TEXT, postcode TEXT, \
        date_of_birth TEXT, guardian_consent BOOLEAN, consent_at TEXT NOT NULL, \
        consent_dated BOOLEAN NOT NULL, consent_source TEXT NOT NULL, guardian TEXT, \
        guardian_relationship TEXT, guardian_at TEXT, guardian_method TEXT); \
    CREATE TEMP TABLE import_topics (idx INTEGER NOT NULL, slug TEXT NOT NULL)";

pub(super) const POSTGRES_STAGING: &str = "\
    CREATE TEMP TABLE import_rows (idx BIGINT PRIMARY KEY, public_id TEXT NOT NULL, \
        email TEXT NOT NULL, email_hash TEXT NOT NULL, name TEXT, postcode TEXT, \
        date_of_birth DATE, guardian_consent BOOLEAN, consent_at TIMESTAMPTZ NOT NULL, \
        consent_dated BOOLEAN NOT NULL, consent_source TEXT NOT NULL, guardian TEXT, \
        guardian_relationship TEXT, guardian_at TIMESTAMPTZ, guardian_method TEXT); \
    CREATE TEMP TABLE import_topics (idx BIGINT NOT NULL, slug TEXT NOT NULL)";

/// Empties the staging tables, inside the transaction that applied them (PostgreSQL's
/// autovacuum never visits temporary tables: deleted rows would stay).
pub(super) const SQLITE_CLEAR_STAGING: &str = "DELETE FROM import_rows; DELETE FROM import_topics";

pub(super) const POSTGRES_CLEAR_STAGING: &str = "TRUNCATE import_rows, import_topics";

/// Drops the staging tables of a save made in one transaction, before it commits.
pub(super) const DROP_STAGING: &str = "DROP TABLE import_rows; DROP TABLE import_topics";

/// Autovacuum never analyses temporary tables; without statistics PostgreSQL's planner takes
/// them for large and scans every contact for each batch.
pub(super) const POSTGRES_ANALYZE: &str = "ANALYZE import_rows, import_topics";

pub(in crate::store) const REFUSE_ERASED: &str = "DELETE FROM import_rows WHERE EXISTS \
     (SELECT 1 FROM suppressions s \
      WHERE s.email_hash = import_rows.email_hash AND s.reason = 'erased') RETURNING idx";

/// Refuses the rows that would hold a child under 14 (born after `$1`) without a guardian's
/// consent and its evidence (who gave it), taking from the contact held what a row leaves
/// blank: a row that gives no date of birth, or no guardian's consent, for a child held is
/// judged by what is held. No door stores such a child; a guardian's withdrawal is recorded by
/// erasing the child.
pub(in crate::store) const REFUSE_UNDERAGE: &str = "DELETE FROM import_rows \
     WHERE COALESCE(import_rows.date_of_birth, \
                    (SELECT c.date_of_birth FROM contacts c \
                     WHERE c.email_hash = import_rows.email_hash)) > $1 \
       AND NOT (COALESCE(import_rows.guardian_consent, \
                         (SELECT c.guardian_consent FROM contacts c \
                          WHERE c.email_hash = import_rows.email_hash), FALSE) \
                AND (import_rows.guardian IS NOT NULL \
                     OR EXISTS (SELECT 1 FROM guardian_consents g \
                                JOIN contacts c ON c.id = g.contact_id \
                                WHERE c.email_hash = import_rows.email_hash))) \
     RETURNING idx";

/// The highest contact id before a batch: the contacts it inserts come after it, and those
/// it changes before.
pub(in crate::store) const LAST_CONTACT_ID: &str = "SELECT COALESCE(max(id), 0) FROM contacts";

/// Inserts new contacts and updates known ones. An empty cell keeps what is held, and a row
/// that changes nothing leaves the contact untouched, so that a re-import is idempotent.
pub(in crate::store) const UPSERT_CONTACTS: &str = "\
    INSERT INTO contacts (public_id, email, email_hash, name, postcode, date_of_birth, \
                          guardian_consent, source, created_at, updated_at, constituency_code) \
    SELECT r.public_id, r.email, r.email_hash, r.name, r.postcode, r.date_of_birth, \
           r.guardian_consent, $1, $2, $2, \
           (SELECT p.constituency_code FROM postcodes p WHERE p.postcode = r.postcode) \
    FROM import_rows r WHERE TRUE \
    ON CONFLICT (email_hash) DO UPDATE SET \
        email = excluded.email, \
        name = COALESCE(excluded.name, contacts.name), \
        postcode = COALESCE(excluded.postcode, contacts.postcode), \
        constituency_code = CASE WHEN excluded.postcode IS NULL THEN contacts.constituency_code \
                                 ELSE excluded.constituency_code END, \
        date_of_birth = COALESCE(excluded.date_of_birth, contacts.date_of_birth), \
        guardian_consent = COALESCE(excluded.guardian_consent, contacts.guardian_consent), \
        updated_at = excluded.updated_at \
    WHERE contacts.email IS DISTINCT FROM excluded.email \
       OR COALESCE(excluded.name, contacts.name) IS DISTINCT FROM contacts.name \
       OR COALESCE(excluded.postcode, contacts.postcode) IS DISTINCT FROM contacts.postcode \
       OR COALESCE(excluded.date_of_birth, contacts.date_of_birth) \
              IS DISTINCT FROM contacts.date_of_birth \
       OR COALESCE(excluded.guardian_consent, contacts.guardian_consent) \
              IS DISTINCT FROM contacts.guardian_consent \
    RETURNING id";

/// Appends a grant for each (contact, topic) staged, unless the address is suppressed, or the
/// consent in force is a grant already, or a withdrawal that the row's evidence does not come
/// after: an undated row (its time is the import's own) or one dated no later than the
/// withdrawal never overrides it (the ledger's latest entry is the consent in force, so nothing
/// in the ledger is newer). The rule is in the statement that grants, so that a withdrawal
/// recorded while an import runs is never undone by it.
pub(in crate::store) const GRANT_IMPORTED_CONSENTS: &str = "\
    INSERT INTO consent_ledger (contact_id, topic_id, channel, granted, source, at, recorded_at) \
    SELECT c.id, t.id, 'email', TRUE, r.consent_source, r.consent_at, $1 \
    FROM import_topics it \
    JOIN import_rows r ON r.idx = it.idx \
    JOIN contacts c ON c.email_hash = r.email_hash \
    JOIN topics t ON t.slug = it.slug \
    WHERE NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = r.email_hash) \
      AND NOT EXISTS (SELECT 1 FROM consents k \
                      WHERE k.contact_id = c.id AND k.topic_id = t.id \
                        AND (k.granted OR NOT r.consent_dated OR k.at >= r.consent_at)) \
    RETURNING contact_id";

/// The grants staged that a withdrawal keeps out, as the grant above decides: a topic withdrawn
/// from, or everything unsubscribed from or complained of. Read before the grant, in its
/// transaction.
pub(in crate::store) const WITHHELD_GRANTS: &str = "\
    SELECT r.idx, it.slug, l.at, l.source, NULL AS everything \
    FROM import_topics it \
    JOIN import_rows r ON r.idx = it.idx \
    JOIN contacts c ON c.email_hash = r.email_hash \
    JOIN topics t ON t.slug = it.slug \
    JOIN consents k ON k.contact_id = c.id AND k.topic_id = t.id \
    JOIN consent_ledger l ON l.id = k.ledger_id \
    WHERE NOT k.granted AND (NOT r.consent_dated OR k.at >= r.consent_at) \
      AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = r.email_hash) \
    UNION ALL \
    SELECT r.idx, NULL, s.updated_at, NULL, s.reason \
    FROM import_rows r \
    JOIN suppressions s ON s.email_hash = r.email_hash \
    WHERE s.reason IN ('unsubscribed', 'complaint') \
      AND EXISTS (SELECT 1 FROM import_topics it WHERE it.idx = r.idx)";

/// Keeps the evidence of a guardian's consent that rows give, the latest over what was held.
pub(in crate::store) const RECORD_GUARDIANS: &str = "\
    INSERT INTO guardian_consents (contact_id, guardian, relationship, given_at, method, \
                                   recorded_at) \
    SELECT c.id, r.guardian, r.guardian_relationship, r.guardian_at, r.guardian_method, $1 \
    FROM import_rows r JOIN contacts c ON c.email_hash = r.email_hash \
    WHERE r.guardian IS NOT NULL \
    ON CONFLICT (contact_id) DO UPDATE SET guardian = excluded.guardian, \
        relationship = excluded.relationship, given_at = excluded.given_at, \
        method = excluded.method, recorded_at = excluded.recorded_at \
    WHERE guardian_consents.guardian IS DISTINCT FROM excluded.guardian \
       OR guardian_consents.relationship IS DISTINCT FROM excluded.relationship \
       OR guardian_consents.given_at IS DISTINCT FROM excluded.given_at \
       OR guardian_consents.method IS DISTINCT FROM excluded.method";
