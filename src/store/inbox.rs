//! The messages read from the bounce, feedback-loop and unsubscribe mailboxes, by digest, so
//! that each is acted on once however often it is read.

use super::{BeginWrite, Result, Store, now, on_pool};

impl Store {
    /// Whether the message with this digest (SHA-256 of its bytes, hex) was read before.
    pub async fn inbox_message_read(&self, digest: &str) -> Result<bool> {
        let found: Option<i32> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT 1 FROM inbox_messages WHERE digest = $1")
                .bind(digest)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.is_some())
    }

    /// Records the message with this digest as read, and what it came to (`acted`, `ignored`,
    /// `unreadable`).
    pub async fn mark_inbox_message(&self, digest: &str, outcome: &str) -> Result<()> {
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query(
                "INSERT INTO inbox_messages (digest, outcome, read_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(digest)
            .bind(outcome)
            .bind(now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
