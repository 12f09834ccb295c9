//! The installation's sending rate, kept in the database: a token bucket that every worker
//! draws from in the statement that takes the tokens, on the database's own clock, so that the
//! rate holds for all workers together, across processes (SQLite) and hosts (PostgreSQL).

use super::{BeginWrite, Pool, Result, Store, on_pool};

/// What a draw on the bucket came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Draw {
    /// This many tokens taken: those asked for, or the bucket's whole size when it is smaller.
    Taken(f64),
    /// Not enough yet: try again after this many seconds.
    Wait(f64),
}

/// The bucket's size for a rate: a quarter of a second's messages, one at least.
const BURST_SECONDS: f64 = 0.25;

impl Store {
    /// Sets the rate of `scope`'s bucket (created full; an existing one keeps its tokens, up to
    /// its new size).
    pub async fn set_send_rate(&self, scope: &str, rate: f64) -> Result<()> {
        let sql = statements(self.pool());
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.set))
                .bind(scope)
                .bind(rate)
                .bind(BURST_SECONDS)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Takes `wanted` tokens from `scope`'s bucket if it holds them now (refilled at its rate
    /// since it was last drawn on); else says how long until it will.
    pub async fn draw_send_budget(&self, scope: &str, wanted: f64) -> Result<Draw> {
        let sql = statements(self.pool());
        let taken: Option<f64> = on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.take))
                .bind(scope)
                .bind(wanted)
                .bind(BURST_SECONDS)
                .fetch_optional(pool)
                .await?
        });
        if let Some(taken) = taken {
            return Ok(Draw::Taken(taken));
        }
        let wait: Option<f64> = on_pool!(self, |pool| {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.wait))
                .bind(scope)
                .bind(wanted)
                .bind(BURST_SECONDS)
                .fetch_optional(pool)
                .await?
        });
        Ok(Draw::Wait(wait.unwrap_or(1.0).max(0.0)))
    }
}

struct Statements {
    set: &'static str,
    take: &'static str,
    wait: &'static str,
}

/// The statements in each engine's words: its clock, and its two-argument min and max. A draw
/// takes what was asked, or the bucket's whole size when that is smaller (a worker drawing five
/// at a time from a bucket another set to hold one gets one, not nothing for ever).
fn statements(pool: &Pool) -> Statements {
    // $1 scope, $2 tokens wanted (or the rate, for `set`), $3 the burst in seconds.
    match pool {
        Pool::Sqlite(_) => Statements {
            set: "INSERT INTO send_budget (scope, rate, tokens, updated_at) \
                  VALUES ($1, $2, max(1.0, $2 * $3), unixepoch('subsec')) \
                  ON CONFLICT (scope) DO UPDATE SET rate = excluded.rate, \
                      tokens = min(send_budget.tokens, max(1.0, excluded.rate * $3))",
            take: "UPDATE send_budget SET \
                       tokens = min(max(1.0, rate * $3), \
                           tokens + rate * (unixepoch('subsec') - updated_at)) \
                           - min($2, max(1.0, rate * $3)), \
                       updated_at = unixepoch('subsec') \
                   WHERE scope = $1 AND min(max(1.0, rate * $3), \
                       tokens + rate * (unixepoch('subsec') - updated_at)) \
                       >= min($2, max(1.0, rate * $3)) \
                   RETURNING min($2, max(1.0, rate * $3))",
            wait: "SELECT (min($2, max(1.0, rate * $3)) - min(max(1.0, rate * $3), \
                       tokens + rate * (unixepoch('subsec') - updated_at))) / rate \
                   FROM send_budget WHERE scope = $1",
        },
        Pool::Postgres(_) => Statements {
            set: "INSERT INTO send_budget (scope, rate, tokens, updated_at) \
                  VALUES ($1, $2, GREATEST(1.0, $2 * $3), \
                      EXTRACT(EPOCH FROM clock_timestamp())::double precision) \
                  ON CONFLICT (scope) DO UPDATE SET rate = excluded.rate, \
                      tokens = LEAST(send_budget.tokens, GREATEST(1.0, excluded.rate * $3))",
            take: "UPDATE send_budget SET \
                       tokens = LEAST(GREATEST(1.0, rate * $3), tokens + rate * \
                           (EXTRACT(EPOCH FROM clock_timestamp())::double precision \
                            - updated_at)) - LEAST($2, GREATEST(1.0, rate * $3)), \
                       updated_at = EXTRACT(EPOCH FROM clock_timestamp())::double precision \
                   WHERE scope = $1 AND LEAST(GREATEST(1.0, rate * $3), tokens + rate * \
                       (EXTRACT(EPOCH FROM clock_timestamp())::double precision \
                        - updated_at)) >= LEAST($2, GREATEST(1.0, rate * $3)) \
                   RETURNING LEAST($2, GREATEST(1.0, rate * $3))",
            wait: "SELECT (LEAST($2, GREATEST(1.0, rate * $3)) \
                       - LEAST(GREATEST(1.0, rate * $3), tokens + rate * \
                       (EXTRACT(EPOCH FROM clock_timestamp())::double precision \
                        - updated_at))) / rate \
                   FROM send_budget WHERE scope = $1",
        },
    }
}
