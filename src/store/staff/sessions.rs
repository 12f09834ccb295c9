//! Signing in: the one-time links that set a password, the console's sessions, and the second
//! factor's secret and the codes already spent.

use super::{PasswordLink, StaffSession, parse_role};
use chrono::{DateTime, Utc};

use crate::domain::{
    Actor, AuditAction, Email, SESSION_IDLE, SESSION_LONGEST, SessionUse, StaffMember,
    StaffTokenHash,
};
use crate::store::{Audit, BeginWrite, InTransaction, Result, Store, now, on_pool};

impl Store {
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
                tx.audit(Audit {
                    actor: &format!("staff:{email}"),
                    action: AuditAction::StaffUserPasswordSet,
                    contact: None,
                    detail: None,
                    ip,
                })
                .await?;
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
                tx.insert_password_link(link, user, link_expires).await?;
                // A new link is how someone who lost their phone gets back in: their second
                // factor goes with the old password, and they turn it on again.
                sqlx::query(
                    "UPDATE staff_users SET totp_secret = NULL, totp_last_step = NULL \
                     WHERE id = $1",
                )
                .bind(user)
                .execute(&mut *tx)
                .await?;
                tx.audit(Audit::of(
                    actor,
                    AuditAction::StaffUserPasswordLink,
                    email.normalized().to_owned(),
                ))
                .await?;
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
            tx.audit(Audit {
                actor: &format!("staff:{email}"),
                action: AuditAction::StaffUserSignedIn,
                contact: None,
                detail: None,
                ip,
            })
            .await?;
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
                Some(_) => AuditAction::StaffUserTwoFactorOn,
                None => AuditAction::StaffUserTwoFactorOff,
            };
            tx.audit(Audit::of(actor, action, None::<String>)).await?;
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
