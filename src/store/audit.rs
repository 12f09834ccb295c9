//! The audit log as staff read it: newest first, filtered by who and what.

use super::{Result, Store, on_pool};
use crate::domain::AuditEntry;

/// Entries on a page of the console.
pub const AUDIT_PAGE: u32 = 50;

/// Which entries to show: those whose actor holds `actor` and whose action starts with
/// `action` (any case), on page `page` (from 1).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub page: u32,
}

/// `%`, `_` and `\` taken literally in a LIKE pattern.
fn literal(text: &str) -> String {
    text.to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Store {
    /// A page of the audit log, newest first, and how many entries match in all.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<(Vec<AuditEntry>, u64)> {
        let actor = query
            .actor
            .as_deref()
            .map(|a| format!("%{}%", literal(a.trim())));
        let action = query
            .action
            .as_deref()
            .map(|a| format!("{}%", literal(a.trim())));
        let offset = i64::from(query.page.max(1) - 1) * i64::from(AUDIT_PAGE);
        const WHERE: &str = "WHERE ($1 IS NULL OR lower(actor) LIKE $1 ESCAPE '\\') \
                             AND ($2 IS NULL OR lower(action) LIKE $2 ESCAPE '\\')";
        let (entries, total): (Vec<AuditEntry>, i64) = on_pool!(self, |pool| {
            let entries = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT at, actor, action, detail, ip FROM audit_log {WHERE} \
                 ORDER BY id DESC LIMIT $3 OFFSET $4"
            )))
            .bind(actor.clone())
            .bind(action.clone())
            .bind(i64::from(AUDIT_PAGE))
            .bind(offset)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM audit_log {WHERE}"
            )))
            .bind(actor)
            .bind(action)
            .fetch_one(pool)
            .await?;
            (entries, total)
        });
        Ok((entries, total as u64))
    }
}
