//! The staff: API tokens (issued, looked up by hash on every API request, listed, revoked),
//! the people who sign in to the console, their one-time password links and their sessions.

use chrono::{DateTime, Utc};

use super::{BeginWrite, Result, Store, decode_error, now, on_pool};
use crate::domain::{Actor, AuditAction, Email, Name, Role, Scope, StaffMember, StaffTokenHash};
use crate::store::{Audit, InTransaction};

impl Store {}

/// A person of the staff, as `staff user list` and the console's staff page show them.
#[derive(Debug, Clone)]
pub struct StaffUser {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// Whether they have set a password (through their link).
    pub has_password: bool,
    /// Whether they sign in with a second factor.
    pub has_totp: bool,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// A member of staff to tell of a campaign: paused, or waiting for their approval.
#[derive(Debug, Clone)]
pub struct AlertRecipient {
    pub email: String,
    pub staff_name: String,
    pub campaign_name: String,
}

/// A person to add to the staff, parsed.
#[derive(Debug, Clone)]
pub struct NewStaffUser {
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub scope: Scope,
}

/// What is needed to check a person's sign-in.
#[derive(Debug, Clone)]
pub struct SignInRecord {
    pub id: i64,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
}

/// A live console session.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub user: i64,
    pub member: StaffMember,
    /// The person's own name, for the page header.
    pub display_name: String,
    /// What every form of the session must carry back.
    pub form_token: String,
}

/// A one-time link to set a password: whose it is.
#[derive(Debug, Clone)]
pub struct PasswordLink {
    pub user: i64,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffEditOutcome {
    Edited,
    /// The change would leave no enabled admin.
    LastAdmin,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableOutcome {
    Disabled,
    AlreadyDisabled,
    /// They are the last enabled admin.
    LastAdmin,
    NotFound,
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role).map_err(|e| decode_error("staff role", e))
}

impl Store {
    /// Adds a person to the staff with a one-time link to set their password; `None` when the
    /// address is taken.
    pub async fn create_staff_user(
        &self,
        user: &NewStaffUser,
        link: &StaffTokenHash,
        link_expires: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<Option<i64>> {
        let now = now();
        let id = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO staff_users (email, name, role, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (email) DO NOTHING RETURNING id",
            )
            .bind(user.email.normalized())
            .bind(user.name.as_str())
            .bind(user.role.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                tx.keep_to_scope(id, &user.scope).await?;
                tx.insert_password_link(link, id, link_expires).await?;
                let scope = user
                    .scope
                    .as_list()
                    .unwrap_or_else(|| "everyone".to_owned());
                tx.audit(Audit {
                    actor,
                    action: AuditAction::StaffUserCreated,
                    contact: None,
                    detail: Some(format!(
                        "{} ({}, {scope})",
                        user.email.normalized(),
                        user.role
                    )),
                    ip: None,
                })
                .await?;
            }
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Whom to tell that the worker paused `campaign`: every enabled admin, and its maker when
    /// still on the staff; each with the campaign's name. Empty when there is no such campaign.
    pub async fn pause_alert_recipients(&self, campaign: i64) -> Result<Vec<AlertRecipient>> {
        self.staff_to_tell(
            campaign,
            "u.role = 'admin' OR 'staff:' || u.email = k.created_by",
        )
        .await
    }

    /// Who may approve the campaign: enabled admins and organisers who wrote none of it, and
    /// whose constituencies hold every one it is limited to (a campaign limited to none, or not
    /// limited, only those kept to none); but not `asking` (as the audit log names them). Each
    /// with their name, for the email.
    pub async fn possible_approvers(
        &self,
        campaign: i64,
        asking: &str,
    ) -> Result<Vec<AlertRecipient>> {
        let mut approvers = self
            .staff_to_tell(
                campaign,
                "u.role IN ('admin', 'organiser') \
             AND NOT EXISTS (SELECT 1 FROM campaign_authors a \
                             WHERE a.campaign_id = k.id AND a.author = 'staff:' || u.email) \
             AND (NOT EXISTS (SELECT 1 FROM staff_user_constituencies s WHERE s.user_id = u.id) \
                  OR (k.limited \
                      AND EXISTS (SELECT 1 FROM campaign_limits z WHERE z.campaign_id = k.id) \
                      AND NOT EXISTS (SELECT 1 FROM campaign_limits z \
                                      WHERE z.campaign_id = k.id \
                                        AND z.constituency_code NOT IN \
                                            (SELECT s.constituency_code \
                                             FROM staff_user_constituencies s \
                                             WHERE s.user_id = u.id))))",
            )
            .await?;
        // Who asks needs no email of it.
        approvers.retain(|approver| format!("staff:{}", approver.email) != asking);
        Ok(approvers)
    }

    /// The enabled people of the staff whom `who` (a condition on `u`, the person, and `k`,
    /// the campaign) picks, each with the campaign's name, in the order they were added.
    async fn staff_to_tell(&self, campaign: i64, who: &'static str) -> Result<Vec<AlertRecipient>> {
        let sql = format!(
            "SELECT u.email, u.name, k.name FROM campaigns k CROSS JOIN staff_users u \
             WHERE k.id = $1 AND u.disabled_at IS NULL AND ({who}) ORDER BY u.id"
        );
        let rows: Vec<(String, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(campaign)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(email, staff_name, campaign_name)| AlertRecipient {
                email,
                staff_name,
                campaign_name,
            })
            .collect())
    }

    /// Every person of the staff, disabled or not, in the order they were added.
    pub async fn staff_users(&self) -> Result<Vec<StaffUser>> {
        type Row = (
            i64,
            String,
            String,
            String,
            bool,
            bool,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, email, name, role, password_hash IS NOT NULL, \
                        totp_secret IS NOT NULL, created_at, disabled_at \
                 FROM staff_users ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        let mut users = Vec::with_capacity(rows.len());
        for (id, email, name, role, has_password, has_totp, created_at, disabled_at) in rows {
            users.push(StaffUser {
                id,
                email,
                name,
                role: parse_role(&role)?,
                scope: self.staff_scope(id).await?,
                has_password,
                has_totp,
                created_at,
                disabled_at,
            });
        }
        Ok(users)
    }

    /// Changes a person's role and the constituencies they are kept to (`None`: as they are),
    /// audited; their sessions act under it from their next request. The last enabled admin
    /// stays an admin: the admins are locked while it is decided, so that two admins made
    /// organisers at once cannot leave none.
    pub async fn edit_staff_user(
        &self,
        email: &Email,
        role: Option<Role>,
        scope: Option<&Scope>,
        actor: &Actor,
    ) -> Result<StaffEditOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let admins = tx.enabled_admins().await?;
            let found: Option<(i64, String)> =
                sqlx::query_as("SELECT id, role FROM staff_users WHERE email = $1")
                    .bind(email.normalized())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((id, held)) = found else {
                return Ok(StaffEditOutcome::NotFound);
            };
            if role.is_some_and(|role| role != Role::Admin) && admins == [id] {
                return Ok(StaffEditOutcome::LastAdmin);
            }
            let mut changes = Vec::new();
            if let Some(role) = role.filter(|role| role.as_str() != held) {
                sqlx::query("UPDATE staff_users SET role = $2 WHERE id = $1")
                    .bind(id)
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                changes.push(format!("role {held} to {role}"));
            }
            if let Some(scope) = scope {
                sqlx::query("DELETE FROM staff_user_constituencies WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.keep_to_scope(id, scope).await?;
                let list = scope.as_list().unwrap_or_else(|| "everyone".to_owned());
                changes.push(format!("constituencies {list}"));
            }
            if !changes.is_empty() {
                tx.audit(Audit::of(
                    actor,
                    AuditAction::StaffUserEdited,
                    format!("{}: {}", email.normalized(), changes.join(", ")),
                ))
                .await?;
            }
            tx.commit().await?;
            StaffEditOutcome::Edited
        });
        Ok(outcome)
    }

    /// Disables a person: their sessions end, their tokens stop working, they cannot sign in.
    /// The last enabled admin is not disabled: the admins are locked while it is decided.
    pub async fn disable_staff_user(&self, email: &Email, actor: &Actor) -> Result<DisableOutcome> {
        let now = now();
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let admins = tx.enabled_admins().await?;
            let found: Option<(i64, Option<DateTime<Utc>>)> =
                sqlx::query_as("SELECT id, disabled_at FROM staff_users WHERE email = $1")
                    .bind(email.normalized())
                    .fetch_optional(&mut *tx)
                    .await?;
            let outcome = match found {
                None => DisableOutcome::NotFound,
                Some((_, Some(_))) => DisableOutcome::AlreadyDisabled,
                Some((id, None)) if admins == [id] => DisableOutcome::LastAdmin,
                Some((id, None)) => {
                    sqlx::query("UPDATE staff_users SET disabled_at = $2 WHERE id = $1")
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    for table in ["staff_sessions", "staff_password_links"] {
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DELETE FROM {table} WHERE user_id = $1"
                        )))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.audit(Audit::of(
                        actor,
                        AuditAction::StaffUserDisabled,
                        email.normalized().to_owned(),
                    ))
                    .await?;
                    DisableOutcome::Disabled
                }
            };
            tx.commit().await?;
            outcome
        });
        Ok(outcome)
    }

    /// Enables a disabled person again; `false` when no one disabled has that address.
    pub async fn enable_staff_user(&self, email: &Email, actor: &Actor) -> Result<bool> {
        let enabled = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let enabled = sqlx::query(
                "UPDATE staff_users SET disabled_at = NULL \
                 WHERE email = $1 AND disabled_at IS NOT NULL",
            )
            .bind(email.normalized())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if enabled {
                tx.audit(Audit::of(
                    actor,
                    AuditAction::StaffUserEnabled,
                    email.normalized().to_owned(),
                ))
                .await?;
            }
            tx.commit().await?;
            enabled
        });
        Ok(enabled)
    }

    /// The id of the person at `email`, unless there is none or they are disabled.
    pub async fn staff_user_id(&self, email: &Email) -> Result<Option<i64>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM staff_users WHERE email = $1 AND disabled_at IS NULL",
            )
            .bind(email.normalized())
            .fetch_optional(pool)
            .await?
        }))
    }

    /// What checking a sign-in as `email` needs, unless no one of the staff (or only a
    /// disabled person) has that address.
    pub async fn sign_in_record(&self, email: &Email) -> Result<Option<SignInRecord>> {
        let row: Option<(i64, Option<String>, Option<String>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, password_hash, totp_secret FROM staff_users \
                 WHERE email = $1 AND disabled_at IS NULL",
            )
            .bind(email.normalized())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id, password_hash, totp_secret)| SignInRecord {
            id,
            password_hash,
            totp_secret,
        }))
    }
}

// After the macros above, which they use.
mod sessions;
mod tokens;

pub use tokens::{RevokeOutcome, StaffTokenSummary};
