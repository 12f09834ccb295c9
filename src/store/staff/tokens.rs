//! The staff API's tokens: issued (to no one, or to a person, whose role and constituencies they
//! carry), listed, revoked, and the member of staff a live one acts as.

use super::parse_role;
use chrono::{DateTime, Utc};

use crate::domain::{
    Actor, AuditAction, ConstituencyCode, Role, Scope, StaffMember, StaffName, StaffTokenHash,
};
use crate::store::{Audit, BeginWrite, InTransaction, Result, Store, decode_error, now, on_pool};

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
        owner: Option<i64>,
        actor: &Actor,
    ) -> Result<bool> {
        let now = now();
        let created = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let created = sqlx::query(
                "INSERT INTO staff_tokens (name, token_hash, read_only, created_at, user_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.as_str())
            .bind(hash.as_str())
            .bind(read_only)
            .bind(now)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if created {
                let access = if read_only { "read-only" } else { "read-write" };
                tx.audit(Audit::of(
                    actor,
                    AuditAction::StaffTokenCreated,
                    format!("{name} ({access})"),
                ))
                .await?;
            }
            tx.commit().await?;
            created
        });
        Ok(created)
    }

    /// The member of staff a presented token stands for, unless it is unknown or revoked, or
    /// belongs to a person who was disabled. A token of a person has their role (a read-only
    /// one, a viewer's) and their constituencies; one of no one's sees everyone.
    pub async fn staff_member(&self, hash: &StaffTokenHash) -> Result<Option<StaffMember>> {
        type Row = (String, bool, Option<i64>, Option<String>, Option<String>);
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT t.name, t.read_only, u.id, u.email, u.role FROM staff_tokens t \
                 LEFT JOIN staff_users u ON u.id = t.user_id \
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
                   AND (t.user_id IS NULL OR u.disabled_at IS NULL)",
            )
            .bind(hash.as_str())
            .fetch_optional(pool)
            .await?
        });
        let Some((token, read_only, user, email, role)) = row else {
            return Ok(None);
        };
        let mut member = match (user, email, role) {
            (Some(user), Some(email), Some(role)) => StaffMember {
                name: email,
                role: parse_role(&role)?,
                scope: self.staff_scope(user).await?,
            },
            _ => StaffMember {
                name: token,
                role: Role::Admin,
                scope: Scope::Everyone,
            },
        };
        if read_only {
            member.role = Role::Viewer;
        }
        Ok(Some(member))
    }

    /// The constituencies person `user` is kept to.
    pub(super) async fn staff_scope(&self, user: i64) -> Result<Scope> {
        let codes: Vec<String> = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT constituency_code FROM staff_user_constituencies WHERE user_id = $1",
            )
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        let codes = codes
            .iter()
            .map(|code| ConstituencyCode::parse(code).map_err(|e| decode_error("scope", e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Scope::of(codes))
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
                    tx.audit(Audit::of(
                        actor,
                        AuditAction::StaffTokenRevoked,
                        name.to_string(),
                    ))
                    .await?;
                    RevokeOutcome::Revoked
                }
            };
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }
}
