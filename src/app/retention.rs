//! Retention (`CANVASS_RETENTION_MONTHS`): what is kept past its purpose is erased, daily under
//! `serve` and whenever `canvass retention apply` runs.

use chrono::{DateTime, Months, Utc};

use super::{Actor, App, AppError, Result, must_be_admin};
use crate::store::{RetentionApplied, RetentionDue};

/// The start of the retention period before `now`: what nothing has touched since is due.
pub fn cutoff(app: &App, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let months = app.data_protection.retention_months.ok_or_else(|| {
        AppError::invalid(
            "retention_months",
            "no retention period is set (CANVASS_RETENTION_MONTHS): nothing is erased \
             automatically",
        )
    })?;
    now.checked_sub_months(Months::new(months))
        .ok_or_else(|| AppError::invalid("retention_months", "too many months"))
}

/// What retention would do at `now`.
pub async fn check(app: &App, actor: &Actor, now: DateTime<Utc>) -> Result<RetentionDue> {
    must_be_admin(actor)?;
    Ok(app.store.retention_due(cutoff(app, now)?).await?)
}

/// Erases what is past retention at `now`, and blanks old IP addresses.
pub async fn apply(app: &App, actor: &Actor, now: DateTime<Utc>) -> Result<RetentionApplied> {
    must_be_admin(actor)?;
    Ok(app.store.apply_retention(cutoff(app, now)?, actor).await?)
}
