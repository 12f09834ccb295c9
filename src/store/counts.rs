//! The counts the database keeps as its data changes (migrations 0013 and 0028): who may be
//! mailed each topic in each constituency and in each postcode, and each campaign's deliveries
//! by state. Readers here take them as they are (`mailable_totals`, `campaign_totals`), less
//! the few people under the age of consent (which the calendar changes, not the data);
//! [`Store::count_drift`] counts everything again from scratch and says where the kept counts
//! differ, for the tests and for `canvass counts check`. PostgreSQL's triggers append changes
//! rather than update counters that concurrent writers would queue behind;
//! [`Store::fold_counts`] moves them into the counts.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::{Pool, Result, Store, on_pool};
use crate::domain::{TopicSlug, latest_birth_date_to_mail};

/// How many may be mailed a topic, per (constituency code, '' for none; topic slug).
pub type Mailable = HashMap<(String, String), u64>;

/// The people counted in `mailable_counts` whom the age rule keeps from mail on `$1`: under the
/// age of consent, without a guardian's. Few, and found through `contacts_born` (SQLite's
/// `CROSS JOIN` keeps the contacts first, where its planner would start from the topics).
const UNDER_AGE: &str = "SELECT COALESCE(c.constituency_code, ''), t.slug, count(*) \
     FROM contacts c CROSS JOIN consents k JOIN topics t ON t.id = k.topic_id \
     WHERE k.contact_id = c.id AND c.date_of_birth > $1 AND NOT COALESCE(c.guardian_consent, FALSE) \
       AND k.granted AND c.restricted_at IS NULL \
       AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) \
     GROUP BY 1, 2";

/// `mailable_counts` as it would be if counted now from scratch.
macro_rules! mailable_from_scratch {
    () => {
        "SELECT COALESCE(p.constituency_code, ''), k.topic_id, count(*) \
         FROM consents k \
         JOIN contacts c ON c.id = k.contact_id \
         LEFT JOIN postcodes p ON p.postcode = c.postcode \
         WHERE k.granted AND c.restricted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) \
         GROUP BY 1, 2"
    };
}
const MAILABLE_FROM_SCRATCH: &str = mailable_from_scratch!();

/// The statements that count `mailable_counts` again from scratch, inside a directory
/// replacement (whose new postcodes move people between constituencies).
pub(super) const RECOUNT_MAILABLE: [&str; 2] = [
    "DELETE FROM mailable_counts",
    concat!(
        "INSERT INTO mailable_counts (constituency_code, topic_id, contacts) ",
        mailable_from_scratch!()
    ),
];
/// PostgreSQL's first steps of the recount: wait for the transactions changing counts and hold
/// off new ones until the replacement commits, so that a change counted after it reads the new
/// directory; then take the changes out, counting them by postcode only (the recount counts
/// them by constituency anyway).
pub(super) const POSTGRES_BEFORE_RECOUNT: [&str; 3] = [
    "LOCK TABLE mailable_count_changes, mailable_counts IN SHARE ROW EXCLUSIVE MODE",
    // The counts by postcode are not counted again: they take the changes, the contacts'
    // new constituencies among them.
    "WITH folded AS (DELETE FROM mailable_count_changes RETURNING *) \
     INSERT INTO mailable_postcode_counts (postcode, topic_id, constituency_code, contacts) \
     SELECT postcode, topic_id, constituency_code, sum(contacts) FROM folded GROUP BY 1, 2, 3 \
     ON CONFLICT (postcode, topic_id, constituency_code) \
     DO UPDATE SET contacts = mailable_postcode_counts.contacts + excluded.contacts",
    "DELETE FROM mailable_postcode_counts WHERE contacts = 0",
];

/// `mailable_postcode_counts` as it would be if counted now from scratch.
const MAILABLE_BY_POSTCODE_FROM_SCRATCH: &str = "SELECT COALESCE(c.postcode, ''), k.topic_id, \
         COALESCE(c.constituency_code, ''), count(*) \
     FROM consents k \
     JOIN contacts c ON c.id = k.contact_id \
     WHERE k.granted AND c.restricted_at IS NULL \
       AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) \
     GROUP BY 1, 2, 3";

/// `consents` as it would be if read from the ledger now: its latest entry per pair.
const CONSENTS_FROM_SCRATCH: &str = "SELECT l.contact_id, l.topic_id, l.granted \
     FROM consent_ledger l \
     WHERE l.channel = 'email' AND NOT EXISTS ( \
         SELECT 1 FROM consent_ledger newer \
         WHERE newer.contact_id = l.contact_id AND newer.topic_id = l.topic_id \
           AND newer.channel = l.channel \
           AND (newer.at > l.at OR (newer.at = l.at AND newer.id > l.id)))";

/// `campaign_counts` as it would be if counted now from scratch.
const CAMPAIGNS_FROM_SCRATCH: &str = "SELECT campaign_id, state, COALESCE(constituency, ''), \
         bounced, complained, unsubscribed, count(*) \
     FROM deliveries GROUP BY 1, 2, 3, 4, 5, 6";

/// Contacts whose `constituency_code` is not the one the directory places their postcode in.
const MISPLACED_CONTACTS: &str = "SELECT c.id FROM contacts c \
     WHERE c.constituency_code IS DISTINCT FROM \
         (SELECT p.constituency_code FROM postcodes p WHERE p.postcode = c.postcode)";

type CampaignKey = (i64, String, String, bool, bool, bool);

impl Store {
    /// Who may be mailed each topic (`topic`: that one only) on `on`, by constituency: the kept
    /// counts less those under age.
    pub async fn mailable(&self, topic: Option<&TopicSlug>, on: NaiveDate) -> Result<Mailable> {
        type Row = (String, String, i64);
        self.fold_counts().await?;
        let (kept, under_age): (Vec<Row>, Vec<Row>) = on_pool!(self, |pool| {
            let kept = sqlx::query_as(
                "SELECT m.constituency_code, t.slug, m.contacts \
                     FROM mailable_totals m JOIN topics t ON t.id = m.topic_id \
                     WHERE ($1 IS NULL OR t.slug = $1) AND m.contacts <> 0",
            )
            .bind(topic.map(TopicSlug::as_str))
            .fetch_all(pool)
            .await?;
            let under_age = sqlx::query_as(UNDER_AGE)
                .bind(latest_birth_date_to_mail(on))
                .fetch_all(pool)
                .await?;
            (kept, under_age)
        });
        let mut counts: HashMap<(String, String), i64> = kept
            .into_iter()
            .map(|(code, topic, n)| ((code, topic), n))
            .collect();
        for (code, topic, n) in under_age {
            if let Some(count) = counts.get_mut(&(code, topic)) {
                *count -= n;
            }
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(key, n)| (key, n as u64))
            .collect())
    }

    /// Moves the changes PostgreSQL's triggers appended into the counts, if no one else is
    /// doing it (what readers see is the same before and after). SQLite counts in place.
    pub async fn fold_counts(&self) -> Result<()> {
        if let Pool::Postgres(pool) = self.pool() {
            sqlx::query("SELECT fold_counts()").execute(pool).await?;
        }
        Ok(())
    }

    /// Moves every change committed so far into the counts, waiting for a fold under way:
    /// after an erasure, so that no count is left naming the erased person's postcode; and
    /// before reading the counts by postcode alone, whose changes are not indexed.
    pub(super) async fn fold_counts_now(&self) -> Result<()> {
        if let Pool::Postgres(pool) = self.pool() {
            sqlx::query("SELECT fold_counts(TRUE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Where the counts the database keeps, and the constituencies it keeps on contacts, differ
    /// from the same counted again from scratch: one line each (none: they agree). Reads every
    /// contact and delivery.
    pub async fn count_drift(&self) -> Result<Vec<String>> {
        type Consent = (i64, i64, bool);
        type Count = (String, i64, i64);
        type PostcodeCount = (String, i64, String, i64);
        type CampaignCount = (i64, String, String, bool, bool, bool, i64);
        /// Each table counted from scratch, then as kept.
        type Both<T> = (Vec<T>, Vec<T>);
        // Folded, no postcode counted no more may be kept (PostgreSQL deletes them as it folds).
        self.fold_counts_now().await?;
        let emptied: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT count(*) FROM mailable_postcode_counts WHERE contacts = 0")
                .fetch_one(pool)
                .await?
        });
        let misplaced: Vec<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(MISPLACED_CONTACTS)
                .fetch_all(pool)
                .await?
        });
        let (
            (consents, kept_consents),
            (mailable, kept_mailable),
            (by_postcode_counted, kept_by_postcode),
            (campaigns, kept_campaigns),
        ): (
            Both<Consent>,
            Both<Count>,
            Both<PostcodeCount>,
            Both<CampaignCount>,
        ) = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let consents = sqlx::query_as(CONSENTS_FROM_SCRATCH)
                .fetch_all(&mut *tx)
                .await?;
            let kept_consents =
                sqlx::query_as("SELECT contact_id, topic_id, granted FROM consents")
                    .fetch_all(&mut *tx)
                    .await?;
            let mailable = sqlx::query_as(MAILABLE_FROM_SCRATCH)
                .fetch_all(&mut *tx)
                .await?;
            let kept_mailable =
                sqlx::query_as("SELECT constituency_code, topic_id, contacts FROM mailable_totals")
                    .fetch_all(&mut *tx)
                    .await?;
            let by_postcode_counted = sqlx::query_as(MAILABLE_BY_POSTCODE_FROM_SCRATCH)
                .fetch_all(&mut *tx)
                .await?;
            let kept_by_postcode = sqlx::query_as(
                "SELECT postcode, topic_id, constituency_code, CAST(sum(contacts) AS BIGINT) \
                 FROM mailable_by_postcode GROUP BY 1, 2, 3",
            )
            .fetch_all(&mut *tx)
            .await?;
            let campaigns = sqlx::query_as(CAMPAIGNS_FROM_SCRATCH)
                .fetch_all(&mut *tx)
                .await?;
            let kept_campaigns = sqlx::query_as(
                "SELECT campaign_id, state, constituency_code, bounced, complained, \
                     unsubscribed, deliveries FROM campaign_totals",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            (
                (consents, kept_consents),
                (mailable, kept_mailable),
                (by_postcode_counted, kept_by_postcode),
                (campaigns, kept_campaigns),
            )
        });
        let mut drift: Vec<String> = misplaced
            .into_iter()
            .map(|id| format!("contact {id}: constituency not its postcode's"))
            .collect();
        let pairs = |rows: Vec<Consent>| -> BTreeMap<(i64, i64), i64> {
            rows.into_iter()
                .map(|(contact, topic, granted)| ((contact, topic), i64::from(granted)))
                .collect()
        };
        compare(
            "consent in force (contact, topic)",
            pairs(consents),
            pairs(kept_consents),
            &mut drift,
        );
        let counts = |rows: Vec<Count>| -> BTreeMap<(String, i64), i64> {
            rows.into_iter()
                .map(|(code, topic, n)| ((code, topic), n))
                .collect()
        };
        compare(
            "mailable (constituency, topic)",
            counts(mailable),
            counts(kept_mailable),
            &mut drift,
        );
        let by_postcode = |rows: Vec<PostcodeCount>| -> BTreeMap<(String, i64, String), i64> {
            rows.into_iter()
                .map(|(postcode, topic, code, n)| ((postcode, topic, code), n))
                .collect()
        };
        compare(
            "mailable (postcode, topic, constituency)",
            by_postcode(by_postcode_counted),
            by_postcode(kept_by_postcode),
            &mut drift,
        );
        if emptied > 0 {
            drift.push(format!(
                "mailable by postcode: {emptied} postcodes counted no more are kept"
            ));
        }
        let campaign = |rows: Vec<CampaignCount>| -> BTreeMap<CampaignKey, i64> {
            rows.into_iter()
                .map(|(id, state, code, b, c, u, n)| ((id, state, code, b, c, u), n))
                .collect()
        };
        compare(
            "deliveries (campaign, state, constituency, bounced, complained, unsubscribed)",
            campaign(campaigns),
            campaign(kept_campaigns),
            &mut drift,
        );
        Ok(drift)
    }
}

/// Adds a line to `drift` for each key whose count differs (a missing key counts 0).
fn compare<K: Ord + std::fmt::Debug>(
    what: &str,
    counted: BTreeMap<K, i64>,
    kept: BTreeMap<K, i64>,
    drift: &mut Vec<String>,
) {
    let keys: std::collections::BTreeSet<&K> = counted.keys().chain(kept.keys()).collect();
    for key in keys {
        let (a, b) = (
            counted.get(key).copied().unwrap_or(0),
            kept.get(key).copied().unwrap_or(0),
        );
        if a != b {
            drift.push(format!("{what} {key:?}: counted {a}, kept {b}"));
        }
    }
}
