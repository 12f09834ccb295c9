//! Retention: contacts kept no longer than their purpose needs. A contact with no consent in
//! force, no open rights request or complaint, no restriction, no sign-up and nothing done by
//! or to them since the cutoff is erased as `contact erase` erases; IP addresses recorded before the cutoff (the
//! audit log's, the consent ledger's evidence, sign-ups') are blanked.

use chrono::{DateTime, Utc};

use super::{BeginWrite, Result, Store, on_pool};
use crate::domain::{Actor, AuditAction, EmailHash};

/// Whether the contact `c` is past retention at the cutoff (the parameter named by `cutoff`,
/// such as `$3`): nothing in force (no grant, or a suppression), no open request, not restricted, and
/// nothing recorded about them since. The statement that erases checks this again, so that
/// someone who signs up again meanwhile stays.
pub(super) fn retention_over(cutoff: &str) -> String {
    RETENTION_OVER.replace("$cutoff", cutoff)
}

const RETENTION_OVER: &str = "\
    (c.restricted_at IS NULL \
     AND c.created_at < $cutoff AND c.updated_at < $cutoff \
     AND (EXISTS (SELECT 1 FROM suppressions s WHERE s.email_hash = c.email_hash) \
          OR NOT EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id AND k.granted)) \
     AND NOT EXISTS (SELECT 1 FROM rights_requests r \
                     WHERE r.email_hash = c.email_hash AND r.closed_on IS NULL) \
     AND NOT EXISTS (SELECT 1 FROM consent_ledger l \
                     WHERE l.contact_id = c.id AND (l.at >= $cutoff OR l.recorded_at >= $cutoff)) \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.contact_id = c.id AND d.sent_at >= $cutoff) \
     AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.contact_id = c.id AND a.at >= $cutoff) \
     AND NOT EXISTS (SELECT 1 FROM signups g \
                     WHERE g.email_hash = c.email_hash AND g.created_at >= $cutoff) \
     AND NOT EXISTS (SELECT 1 FROM complaints k \
                     WHERE k.email_hash = c.email_hash \
                       AND (k.closed_on IS NULL OR k.logged_at >= $cutoff)))";

/// What retention would do at a cutoff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionDue {
    /// The public ids of the contacts to erase.
    pub contacts: Vec<String>,
    /// IP addresses recorded before the cutoff, still held.
    pub ip_addresses: u64,
}

impl RetentionDue {
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.ip_addresses == 0
    }
}

/// What retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionApplied {
    pub erased: u64,
    pub ip_addresses: u64,
}

/// Where IP addresses are kept: each table, the time that ages a row, and which rows keep
/// theirs. The consent in force keeps its evidence, which `canvass proof` shows; what it
/// replaced does not.
const IP_COLUMNS: &[(&str, &str, &str)] = &[
    ("audit_log", "at", "TRUE"),
    (
        "consent_ledger",
        "recorded_at",
        "NOT EXISTS (SELECT 1 FROM consents k WHERE k.ledger_id = consent_ledger.id)",
    ),
    ("signups", "created_at", "TRUE"),
];

impl Store {
    /// What retention would do at `cutoff` (the start of the retention period before now).
    pub async fn retention_due(&self, cutoff: DateTime<Utc>) -> Result<RetentionDue> {
        let contacts = self.past_retention(cutoff).await?;
        let mut ip_addresses = 0;
        for (table, aged_by, blanked) in IP_COLUMNS {
            let count: i64 = on_pool!(self, |pool| {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table} \
                     WHERE ip IS NOT NULL AND {aged_by} < $1 AND {blanked}"
                )))
                .bind(cutoff)
                .fetch_one(pool)
                .await?
            });
            ip_addresses += count as u64;
        }
        Ok(RetentionDue {
            contacts: contacts
                .into_iter()
                .map(|(public_id, _)| public_id)
                .collect(),
            ip_addresses,
        })
    }

    /// Erases the contacts past retention at `cutoff` and blanks the IP addresses recorded
    /// before it; each erasure audited and journalled as any is.
    pub async fn apply_retention(
        &self,
        cutoff: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<RetentionApplied> {
        let mut applied = RetentionApplied::default();
        for (_, hash) in self.past_retention(cutoff).await? {
            let erasure = super::contacts::Erasure::Retention { cutoff };
            if self.erase(&hash, actor, erasure).await? == super::ErasureOutcome::Erased {
                applied.erased += 1;
            }
        }
        for (table, aged_by, blanked) in IP_COLUMNS {
            let blanked = on_pool!(self, |pool| {
                let _turn = pool.write_turn().await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE {table} SET ip = NULL \
                     WHERE ip IS NOT NULL AND {aged_by} < $1 AND {blanked}"
                )))
                .bind(cutoff)
                .execute(pool)
                .await?
                .rows_affected()
            });
            applied.ip_addresses += blanked;
        }
        if applied != RetentionApplied::default() {
            self.record_audit(
                actor,
                AuditAction::RetentionApplied,
                &format!(
                    "before {}: {} contacts erased, {} IP addresses blanked",
                    cutoff.format("%Y-%m-%d"),
                    applied.erased,
                    applied.ip_addresses
                ),
            )
            .await?;
            // What was erased leaves no trace in the database's free pages.
            self.scrub_files().await?;
        }
        Ok(applied)
    }

    /// The contacts past retention at `cutoff`: their public ids and hashes.
    async fn past_retention(&self, cutoff: DateTime<Utc>) -> Result<Vec<(String, EmailHash)>> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT c.public_id, c.email_hash FROM contacts c WHERE {} ORDER BY c.id",
                retention_over("$1")
            )))
            .bind(cutoff)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(public_id, hash)| Ok((public_id, super::stored_hash(&hash)?)))
            .collect()
    }
}
