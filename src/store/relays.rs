//! The relays' hourly and daily caps, counted for every worker on the database together. A
//! window is the clock hour or UTC day of the worker that counts; a host whose clock is behind
//! counts into the window already begun rather than start it again.

use chrono::{DateTime, TimeZone, Utc};

use super::{BeginWrite, Result, Store, on_pool};

impl Store {
    /// Counts one message against `relay`'s caps (`hourly`, `daily`), both or neither, in the
    /// statement that counts it: `None` when counted; else when the window that is full ends.
    pub async fn count_relay_message(
        &self,
        relay: &str,
        hourly: Option<u32>,
        daily: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let second = now.timestamp();
        let windows: Vec<(&str, u32, i64, i64)> = [
            hourly.map(|cap| ("hour", cap, second - second.rem_euclid(3600), 3600)),
            daily.map(|cap| ("day", cap, second - second.rem_euclid(86_400), 86_400)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if windows.is_empty() {
            return Ok(None);
        }
        let full = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let mut full = None;
            for (period, cap, starts_at, length) in &windows {
                let counted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO relay_usage (relay, period, starts_at, sent) \
                     VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (relay, period) DO UPDATE SET \
                         sent = CASE WHEN excluded.starts_at > relay_usage.starts_at \
                             THEN 1 ELSE relay_usage.sent + 1 END, \
                         starts_at = CASE WHEN excluded.starts_at > relay_usage.starts_at \
                             THEN excluded.starts_at ELSE relay_usage.starts_at END \
                     WHERE excluded.starts_at > relay_usage.starts_at OR relay_usage.sent < $4 \
                     RETURNING sent",
                )
                .bind(relay)
                .bind(*period)
                .bind(*starts_at)
                .bind(i64::from(*cap))
                .fetch_optional(&mut *tx)
                .await?;
                if counted.is_none() {
                    full = Utc.timestamp_opt(starts_at + length, 0).single();
                    break;
                }
            }
            match full {
                Some(_) => tx.rollback().await?,
                None => tx.commit().await?,
            }
            full
        });
        Ok(full)
    }

    /// Gives back the place a message took in `relay`'s windows, when nothing of it was sent
    /// (the relay could not be reached, or the message was held back).
    pub async fn uncount_relay_message(&self, relay: &str) -> Result<()> {
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query("UPDATE relay_usage SET sent = sent - 1 WHERE relay = $1 AND sent > 0")
                .bind(relay)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
