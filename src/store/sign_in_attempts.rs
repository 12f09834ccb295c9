//! Sign-in attempts, counted before a password is checked: each count is one upsert that
//! returns the new total, atomic on both engines, so that a burst of concurrent guesses cannot
//! all read a count below the limit and all go on to be checked.

use chrono::Duration;

use super::{BeginWrite, Result, Store, now, on_pool};

/// One more attempt under key `$1`, at `$2`; the attempts it holds now.
const COUNT: &str = "INSERT INTO sign_in_attempts (key, window_started_at, attempts) \
    VALUES ($1, $2, 1) \
    ON CONFLICT (key) DO UPDATE SET attempts = sign_in_attempts.attempts + 1 \
    RETURNING attempts";

impl Store {
    /// Counts one attempt under each of `limited` (key, limit), in a window of `window` that
    /// each key began with its first attempt (the windows that have passed are deleted first,
    /// in the same transaction, so that such a key begins a new one). Past any limit: `None`,
    /// and the attempt is not counted under `slowed`, so that refused attempts, which cost the
    /// guesser nothing, do not slow anyone else down. Otherwise how many attempts `slowed` now
    /// holds, this one included.
    pub async fn count_sign_in_attempt(
        &self,
        limited: &[(&str, i64)],
        slowed: &str,
        window: Duration,
    ) -> Result<Option<i64>> {
        let now = now();
        let count = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM sign_in_attempts WHERE window_started_at < $1")
                .bind(now - window)
                .execute(&mut *tx)
                .await?;
            let mut count = None;
            for (key, limit) in limited.iter().copied().chain([(slowed, i64::MAX)]) {
                let counted: i64 = sqlx::query_scalar(COUNT)
                    .bind(key)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                count = (counted <= limit).then_some(counted);
                if count.is_none() {
                    break;
                }
            }
            tx.commit().await?;
            count
        });
        Ok(count)
    }

    /// Takes one attempt back under each of `keys`: it succeeded, and only failures count.
    pub async fn forgive_sign_in_attempt(&self, keys: &[&str]) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for key in keys {
                sqlx::query(
                    "UPDATE sign_in_attempts SET attempts = attempts - 1 \
                     WHERE key = $1 AND attempts > 0",
                )
                .bind(*key)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
