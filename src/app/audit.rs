//! The audit log: who changed what, and when. It spans every constituency, so only admins (and
//! the operator) read it whole; everyone sees a contact's own entries on their page.

use super::{Actor, App, Result};
use crate::domain::AuditEntry;
pub use crate::store::{AUDIT_PAGE, AuditQuery};

/// A page of the log, newest first, and how many entries match in all.
pub async fn list(app: &App, actor: &Actor, query: &AuditQuery) -> Result<(Vec<AuditEntry>, u64)> {
    super::must_be_admin(actor)?;
    Ok(app.store.audit_entries(query).await?)
}
