//! What people can consent to hear about.

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{Topic, TopicSlug};
use crate::store::StoreError;

pub async fn list(app: &App) -> Result<Vec<Topic>> {
    Ok(app.store.list_topics().await?)
}

/// Adds a topic: its slug (lower-case letters, digits, hyphens) and the name people read.
pub async fn add(app: &App, actor: &Actor, slug: &str, name: &str) -> Result<Topic> {
    super::may_write(actor)?;
    let slug = TopicSlug::parse(slug).map_err(|e| AppError::invalid("slug", e))?;
    let topic = Topic::new(slug, name).map_err(|e| AppError::invalid("name", e))?;
    match app.store.add_topic(&topic, actor).await {
        Ok(()) => Ok(topic),
        Err(StoreError::TopicExists(slug)) => Err(AppError::conflict(
            Conflict::Exists,
            format!("there is a topic '{slug}' already"),
        )),
        Err(e) => Err(e.into()),
    }
}
