//! Topics people can consent to.

use super::{BeginWrite, Result, Store, StoreError, on_pool};
use crate::domain::{Actor, AuditAction, Topic, TopicSlug};
use crate::store::{Audit, InTransaction};

impl Store {
    pub async fn list_topics(&self) -> Result<Vec<Topic>> {
        let rows: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT slug, name FROM topics ORDER BY id")
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(slug, name)| {
                let slug = TopicSlug::parse(&slug).ok()?;
                Some(Topic { slug, name })
            })
            .collect())
    }

    pub async fn add_topic(&self, topic: &Topic, actor: &Actor) -> Result<()> {
        let inserted = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let inserted = sqlx::query(
                "INSERT INTO topics (slug, name) VALUES ($1, $2) ON CONFLICT (slug) DO NOTHING",
            )
            .bind(topic.slug.as_str())
            .bind(&topic.name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted > 0 {
                let detail = format!("topic {}", topic.slug);
                tx.audit(Audit::of(actor, AuditAction::TopicAdded, detail))
                    .await?;
            }
            tx.commit().await?;
            inserted
        });
        if inserted == 0 {
            return Err(StoreError::TopicExists(topic.slug.to_string()));
        }
        Ok(())
    }
}
