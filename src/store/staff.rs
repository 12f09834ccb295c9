//! Staff API tokens: issued, looked up by hash on every API request, listed, revoked.

use chrono::{DateTime, Utc};

use super::{BeginWrite, Result, Store, decode_error, insert_audit, now, on_pool};
use crate::domain::{Actor, StaffMember, StaffName, StaffTokenHash};

/// A token as `staff token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffTokenSummary {
    pub name: StaffName,
    pub read_only: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
}

impl Store {
    /// Keeps a new token's hash under `name`; `false` when the name is taken (by a live or a
    /// revoked token).
    pub async fn create_staff_token(
        &self,
        name: &StaffName,
        hash: &StaffTokenHash,
        read_only: bool,
        actor: &Actor,
    ) -> Result<bool> {
        let now = now();
        let created = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let created = sqlx::query(
                "INSERT INTO staff_tokens (name, token_hash, read_only, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.as_str())
            .bind(hash.as_str())
            .bind(read_only)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if created {
                let access = if read_only { "read-only" } else { "read-write" };
                insert_audit!(&mut *tx, actor: actor, action: "staff_token.created",
                    contact: None::<i64>, detail: Some(format!("{name} ({access})")),
                    ip: None::<String>)?;
            }
            tx.commit().await?;
            created
        });
        Ok(created)
    }

    /// The member of staff a presented token stands for, unless it is unknown or revoked.
    pub async fn staff_member(&self, hash: &StaffTokenHash) -> Result<Option<StaffMember>> {
        let row: Option<(String, bool)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, read_only FROM staff_tokens \
                 WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(hash.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(|(name, read_only)| {
            Ok(StaffMember {
                name: StaffName::parse(&name).map_err(|e| decode_error("staff name", e))?,
                read_only,
            })
        })
        .transpose()
    }

    pub async fn list_staff_tokens(&self) -> Result<Vec<StaffTokenSummary>> {
        type Row = (String, bool, DateTime<Utc>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, read_only, created_at, revoked_at FROM staff_tokens ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(name, read_only, created_at, revoked_at)| {
                Ok(StaffTokenSummary {
                    name: StaffName::parse(&name).map_err(|e| decode_error("staff name", e))?,
                    read_only,
                    created_at,
                    revoked_at,
                })
            })
            .collect()
    }

    /// Revokes the token named `name`: from now on it is refused.
    pub async fn revoke_staff_token(
        &self,
        name: &StaffName,
        actor: &Actor,
    ) -> Result<RevokeOutcome> {
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let revoked: Option<Option<DateTime<Utc>>> =
                sqlx::query_scalar("SELECT revoked_at FROM staff_tokens WHERE name = $1")
                    .bind(name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match revoked {
                None => RevokeOutcome::NotFound,
                Some(Some(_)) => RevokeOutcome::AlreadyRevoked,
                Some(None) => {
                    sqlx::query("UPDATE staff_tokens SET revoked_at = $2 WHERE name = $1")
                        .bind(name.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    insert_audit!(&mut *tx, actor: actor, action: "staff_token.revoked",
                        contact: None::<i64>, detail: Some(name.to_string()),
                        ip: None::<String>)?;
                    RevokeOutcome::Revoked
                }
            };
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }
}
