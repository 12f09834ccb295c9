//! Sign-in attempts, counted before a password is checked: each count is one upsert that
//! returns the new total, atomic on both engines, so that a burst of concurrent guesses cannot
//! all read a count below the limit and all go on to be checked.

use chrono::Duration;

use super::{BeginWrite, Result, Store, now, on_pool};

impl Store {
    /// Counts one attempt under each of `keys`, in a window of `window` that each key began
    /// with its first attempt (the windows that have passed are deleted first, in the same
    /// transaction, so that such a key begins a new one); how many attempts each key now holds,
    /// this one included, in the order of `keys`.
    pub async fn count_sign_in_attempt(&self, keys: &[&str], window: Duration) -> Result<Vec<i64>> {
        let now = now();
        let began_after = now - window;
        let counts = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM sign_in_attempts WHERE window_started_at < $1")
                .bind(began_after)
                .execute(&mut *tx)
                .await?;
            let mut counts = Vec::with_capacity(keys.len());
            for key in keys {
                let count: i64 = sqlx::query_scalar(
                    "INSERT INTO sign_in_attempts (key, window_started_at, attempts) \
                     VALUES ($1, $2, 1) \
                     ON CONFLICT (key) DO UPDATE SET attempts = sign_in_attempts.attempts + 1 \
                     RETURNING attempts",
                )
                .bind(*key)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                counts.push(count);
            }
            tx.commit().await?;
            counts
        });
        Ok(counts)
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
