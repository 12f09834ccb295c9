//! The staff: API tokens (issued, looked up by hash on every API request, listed, revoked),
//! the people who sign in to the console, their one-time password links and their sessions.

use chrono::{DateTime, Utc};

use super::{BeginWrite, Pool, Result, Store, decode_error, insert_audit, now, on_pool};
use crate::domain::{
    Actor, ConstituencyCode, Email, Name, Role, SESSION_IDLE, SESSION_LONGEST, Scope, SessionUse,
    StaffMember, StaffName, StaffTokenHash,
};

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
                insert_audit!(&mut *tx, actor: actor, action: "staff_token.created",
                    contact: None::<i64>, detail: Some(format!("{name} ({access})")),
                    ip: None::<String>)?;
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
    async fn staff_scope(&self, user: i64) -> Result<Scope> {
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

/// Keeps a one-time link (its hash) for person `$user` to set their password, inside the
/// caller's transaction.
macro_rules! insert_password_link {
    ($executor:expr, $link:expr, $user:expr, $expires:expr) => {
        sqlx::query(
            "INSERT INTO staff_password_links (token_hash, user_id, expires_at) \
             VALUES ($1, $2, $3)",
        )
        .bind($link.as_str())
        .bind($user)
        .bind($expires)
        .execute($executor)
        .await?
    };
}

/// Keeps person `$user` (who is kept to none yet) to the constituencies of `$scope`, inside
/// the caller's transaction.
macro_rules! keep_to_scope {
    ($executor:expr, $user:expr, $scope:expr) => {
        for code in $scope.constituencies().unwrap_or_default() {
            sqlx::query(
                "INSERT INTO staff_user_constituencies (user_id, constituency_code) \
                 VALUES ($1, $2)",
            )
            .bind($user)
            .bind(code.as_str())
            .execute($executor)
            .await?;
        }
    };
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
                keep_to_scope!(&mut *tx, id, &user.scope);
                insert_password_link!(&mut *tx, link, id, link_expires);
                let scope = user
                    .scope
                    .as_list()
                    .unwrap_or_else(|| "everyone".to_owned());
                insert_audit!(&mut *tx, actor: actor, action: "staff_user.created",
                    contact: None::<i64>,
                    detail: Some(format!("{} ({}, {scope})", user.email.normalized(), user.role)),
                    ip: None::<String>)?;
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
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE",
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let admins: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM staff_users WHERE role = 'admin' AND disabled_at IS NULL \
                 ORDER BY id{lock}"
            )))
            .fetch_all(&mut *tx)
            .await?;
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
                keep_to_scope!(&mut *tx, id, scope);
                let list = scope.as_list().unwrap_or_else(|| "everyone".to_owned());
                changes.push(format!("constituencies {list}"));
            }
            if !changes.is_empty() {
                insert_audit!(&mut *tx, actor: actor, action: "staff_user.edited",
                    contact: None::<i64>,
                    detail: Some(format!("{}: {}", email.normalized(), changes.join(", "))),
                    ip: None::<String>)?;
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
        let lock = match self.pool() {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => " FOR UPDATE",
        };
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let admins: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM staff_users WHERE role = 'admin' AND disabled_at IS NULL \
                 ORDER BY id{lock}"
            )))
            .fetch_all(&mut *tx)
            .await?;
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
                    insert_audit!(&mut *tx, actor: actor, action: "staff_user.disabled",
                        contact: None::<i64>, detail: Some(email.normalized().to_owned()),
                        ip: None::<String>)?;
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
                insert_audit!(&mut *tx, actor: actor, action: "staff_user.enabled",
                    contact: None::<i64>, detail: Some(email.normalized().to_owned()),
                    ip: None::<String>)?;
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

    /// Whose a live password link is: unused, unexpired, of a person not disabled.
    pub async fn password_link(&self, link: &StaffTokenHash) -> Result<Option<PasswordLink>> {
        let row: Option<(i64, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.email, u.name FROM staff_password_links l \
                 JOIN staff_users u ON u.id = l.user_id \
                 WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 \
                   AND u.disabled_at IS NULL",
            )
            .bind(link.as_str())
            .bind(now())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(user, email, name)| PasswordLink { user, email, name }))
    }

    /// Sets a password through a live link, which is then used up; every session of the
    /// person ends (someone who knew the old password is signed out). `false`: the link is
    /// not live (used meanwhile, expired, or its person disabled).
    pub async fn set_staff_password(
        &self,
        link: &StaffTokenHash,
        password_hash: &str,
        ip: Option<&str>,
    ) -> Result<bool> {
        let now = now();
        let set = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let user: Option<(i64, String)> = sqlx::query_as(
                "UPDATE staff_password_links SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                   AND user_id IN (SELECT id FROM staff_users WHERE disabled_at IS NULL) \
                 RETURNING user_id, (SELECT email FROM staff_users u WHERE u.id = user_id)",
            )
            .bind(link.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((user, email)) = &user {
                sqlx::query("UPDATE staff_users SET password_hash = $2 WHERE id = $1")
                    .bind(user)
                    .bind(password_hash)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM staff_sessions WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                insert_audit!(&mut *tx, actor: format!("staff:{email}"),
                    action: "staff_user.password_set", contact: None::<i64>,
                    detail: None::<String>, ip: ip)?;
            }
            tx.commit().await?;
            user.is_some()
        });
        Ok(set)
    }

    /// A new link to set `email`'s password; any earlier link of theirs stops working. `false`
    /// when there is no such person, or they are disabled.
    pub async fn renew_password_link(
        &self,
        email: &Email,
        link: &StaffTokenHash,
        link_expires: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<bool> {
        let renewed = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let user: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM staff_users WHERE email = $1 AND disabled_at IS NULL",
            )
            .bind(email.normalized())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(user) = user {
                sqlx::query("DELETE FROM staff_password_links WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                insert_password_link!(&mut *tx, link, user, link_expires);
                // A new link is how someone who lost their phone gets back in: their second
                // factor goes with the old password, and they turn it on again.
                sqlx::query(
                    "UPDATE staff_users SET totp_secret = NULL, totp_last_step = NULL \
                     WHERE id = $1",
                )
                .bind(user)
                .execute(&mut *tx)
                .await?;
                insert_audit!(&mut *tx, actor: actor, action: "staff_user.password_link",
                    contact: None::<i64>, detail: Some(email.normalized().to_owned()),
                    ip: None::<String>)?;
            }
            tx.commit().await?;
            user.is_some()
        });
        Ok(renewed)
    }

    /// Opens a session for person `user`, who has just proved who they are; sessions of anyone
    /// that have died meanwhile go.
    pub async fn open_staff_session(
        &self,
        user: i64,
        session: &StaffTokenHash,
        form_token: &str,
        ip: Option<&str>,
    ) -> Result<()> {
        let now = now();
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO staff_sessions (token_hash, user_id, form_token, created_at, \
                 last_seen_at) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(session.as_str())
            .bind(user)
            .bind(form_token)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM staff_sessions WHERE last_seen_at < $1 OR created_at < $2")
                .bind(now - SESSION_IDLE)
                .bind(now - SESSION_LONGEST)
                .execute(&mut *tx)
                .await?;
            let email: String = sqlx::query_scalar("SELECT email FROM staff_users WHERE id = $1")
                .bind(user)
                .fetch_one(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, actor: format!("staff:{email}"), action: "staff_user.signed_in",
                contact: None::<i64>, detail: None::<String>, ip: ip)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live session a cookie names: of a person not disabled, seen within [`SESSION_IDLE`],
    /// opened within [`SESSION_LONGEST`]. A person's own request ([`SessionUse::Person`]) moves
    /// its last sight on when that is a minute old, so that an active session stays open without
    /// a write on every request; a page's own ([`SessionUse::Page`]) never does. A dead session is
    /// deleted.
    pub async fn staff_session(
        &self,
        session: &StaffTokenHash,
        used: SessionUse,
    ) -> Result<Option<StaffSession>> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            DateTime<Utc>,
            DateTime<Utc>,
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.email, u.name, u.role, s.form_token, s.created_at, \
                        s.last_seen_at \
                 FROM staff_sessions s JOIN staff_users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND u.disabled_at IS NULL",
            )
            .bind(session.as_str())
            .fetch_optional(pool)
            .await?
        });
        let Some((user, email, name, role, form_token, created_at, last_seen_at)) = row else {
            return Ok(None);
        };
        let now = now();
        if last_seen_at < now - SESSION_IDLE || created_at < now - SESSION_LONGEST {
            self.end_staff_session(session).await?;
            return Ok(None);
        }
        if used == SessionUse::Person && now - last_seen_at > chrono::Duration::minutes(1) {
            on_pool!(self, |pool| {
                let _turn = pool.write_turn().await?;
                sqlx::query("UPDATE staff_sessions SET last_seen_at = $2 WHERE token_hash = $1")
                    .bind(session.as_str())
                    .bind(now)
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Some(StaffSession {
            user,
            member: StaffMember {
                name: email,
                role: parse_role(&role)?,
                scope: self.staff_scope(user).await?,
            },
            display_name: name,
            form_token,
        }))
    }

    /// Turns person `user`'s second factor on (with its base32 secret) or off.
    pub async fn set_totp(&self, user: i64, secret: Option<&str>, actor: &Actor) -> Result<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE staff_users SET totp_secret = $2, totp_last_step = NULL WHERE id = $1",
            )
            .bind(user)
            .bind(secret)
            .execute(&mut *tx)
            .await?;
            let action = match secret {
                Some(_) => "staff_user.two_factor_on",
                None => "staff_user.two_factor_off",
            };
            insert_audit!(&mut *tx, actor: actor, action: action, contact: None::<i64>,
                detail: None::<String>, ip: None::<String>)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The base32 secret of person `user`'s second factor, if they turned one on.
    pub async fn totp_secret(&self, user: i64) -> Result<Option<String>> {
        let secret: Option<Option<String>> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT totp_secret FROM staff_users WHERE id = $1")
                .bind(user)
                .fetch_optional(pool)
                .await?
        });
        Ok(secret.flatten())
    }

    /// Spends TOTP time step `step` of person `user`: `false` when it, or a later one, was
    /// used already (a code is taken once).
    pub async fn spend_totp_step(&self, user: i64, step: i64) -> Result<bool> {
        let spent = on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query(
                "UPDATE staff_users SET totp_last_step = $2 \
                 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
            )
            .bind(user)
            .bind(step)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(spent > 0)
    }

    /// Ends a session (signing out, or one found dead).
    pub async fn end_staff_session(&self, session: &StaffTokenHash) -> Result<()> {
        on_pool!(self, |pool| {
            let _turn = pool.write_turn().await?;
            sqlx::query("DELETE FROM staff_sessions WHERE token_hash = $1")
                .bind(session.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
