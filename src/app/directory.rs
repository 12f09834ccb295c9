//! The postcode directory as the doors read it: where a postcode lies, and the constituencies
//! with how many people in each may be mailed.

use super::{Actor, App, AppError, Result};
use crate::domain::Postcode;

pub use crate::store::{ConstituencySummary, PostcodeLookup};

/// The constituency `postcode` lies in, as the directory has it.
pub async fn lookup(app: &App, postcode: &str) -> Result<(Postcode, PostcodeLookup)> {
    let postcode = Postcode::parse(postcode).map_err(|e| AppError::invalid("postcode", e))?;
    match app.store.lookup_postcode(&postcode).await? {
        Some(found) => Ok((postcode, found)),
        None => Err(AppError::NotFound(format!(
            "{postcode} is not in the postcode directory"
        ))),
    }
}

/// The constituencies whose code or name holds `search` (all of them without), with how many
/// people in each may be mailed something; for the operator and admins.
pub async fn constituencies(
    app: &App,
    actor: &Actor,
    search: Option<&str>,
) -> Result<Vec<ConstituencySummary>> {
    super::must_be_admin(actor)?;
    Ok(app.store.constituencies(search).await?)
}
