//! The staff: adding, listing and disabling the people who sign in to the console, their
//! passwords, sign-in and sessions, and the API tokens that may belong to them.
//!
//! Passwords are hashed with argon2id (19 MiB, 2 passes: OWASP's choice) on a blocking thread,
//! at most [`HASHES_AT_ONCE`] at a time, so that memory stays bounded whatever arrives. Every
//! sign-in attempt is counted in the database before its password is hashed ([`attempt`]), and
//! one for an address nobody has costs the same hashing, so that neither timing nor the answer
//! tells who has an account.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};

use super::{Actor, App, AppError, Conflict, Result};
use crate::domain::{
    Email, Name, Password, Role, Scope, SessionUse, StaffMember, StaffName, StaffSecret,
    StaffTokenHash,
};
use crate::store::{DisableOutcome, NewStaffUser, StaffEditOutcome, StaffUser};

pub use crate::store::{RevokeOutcome, StaffSession, StaffTokenSummary};

mod two_factor;

use two_factor::totp_step;
pub use two_factor::{
    TotpEnrolment, confirm_totp, enrolment_uri, has_totp, start_totp, turn_off_totp,
};

/// How long a link to set a password works.
pub const PASSWORD_LINK_HOURS: i64 = 24;
/// Where a password link points, under the base URL.
pub const PASSWORD_PATH: &str = "/admin/password/";

/// A new person of the staff, and the link that sets their password (shown once).
pub struct Added {
    pub id: i64,
    pub link: String,
    pub expires: DateTime<Utc>,
}

/// Adds a person to the staff. `constituencies` (codes or unique names) keep them to those
/// contacts; none: everyone.
pub async fn add(
    app: &App,
    actor: &Actor,
    email: &str,
    name: &str,
    role: &str,
    constituencies: &[String],
) -> Result<Added> {
    super::must_be_admin(actor)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    let name = Name::parse(name)
        .map_err(|e| AppError::invalid("name", e))?
        .ok_or_else(|| AppError::invalid("name", "give the person's name"))?;
    let role = Role::parse(role).map_err(|e| AppError::invalid("role", e))?;
    let scope = scope_of(app, constituencies).await?;
    let (secret, expires) = password_link_secret();
    let user = NewStaffUser {
        email,
        name,
        role,
        scope,
    };
    let id = app
        .store
        .create_staff_user(&user, &secret.hash(), expires, actor)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                Conflict::Exists,
                format!("{} is on the staff already", user.email.normalized()),
            )
        })?;
    Ok(Added {
        id,
        link: password_link(app, &secret),
        expires,
    })
}

/// Changes what a person of the staff may do: their role (`None`: as it is) and the
/// constituencies they are kept to (`None`: as they are; empty: all). The last enabled admin
/// stays an admin.
pub async fn edit(
    app: &App,
    actor: &Actor,
    email: &str,
    role: Option<&str>,
    constituencies: Option<&[String]>,
) -> Result<()> {
    super::must_be_admin(actor)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    let role = role
        .map(Role::parse)
        .transpose()
        .map_err(|e| AppError::invalid("role", e))?;
    let scope = match constituencies {
        Some(constituencies) => Some(scope_of(app, constituencies).await?),
        None => None,
    };
    match app
        .store
        .edit_staff_user(&email, role, scope.as_ref(), actor)
        .await?
    {
        StaffEditOutcome::Edited => Ok(()),
        StaffEditOutcome::LastAdmin => Err(AppError::Denied(
            "that is the last admin: make another person an admin first".into(),
        )),
        StaffEditOutcome::NotFound => Err(no_such_person(&email)),
    }
}

/// A new link for `email` to set their password (a forgotten one, or a link that expired);
/// earlier links stop working.
pub async fn renew_password_link(app: &App, actor: &Actor, email: &str) -> Result<Added> {
    super::must_be_admin(actor)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    let (secret, expires) = password_link_secret();
    let id = app.store.staff_user_id(&email).await?;
    let renewed = app
        .store
        .renew_password_link(&email, &secret.hash(), expires, actor)
        .await?;
    match (renewed, id) {
        (true, Some(id)) => Ok(Added {
            id,
            link: password_link(app, &secret),
            expires,
        }),
        _ => Err(no_such_person(&email)),
    }
}

/// Everyone on the staff: for admins.
pub async fn list(app: &App, actor: &Actor) -> Result<Vec<StaffUser>> {
    super::must_be_admin(actor)?;
    Ok(app.store.staff_users().await?)
}

/// Disables a person: signed out everywhere, their tokens refused, never signing in again.
pub async fn disable(app: &App, actor: &Actor, email: &str) -> Result<bool> {
    super::must_be_admin(actor)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    if actor_name(actor) == email.normalized() {
        return Err(AppError::Denied(
            "you cannot disable yourself: ask another admin".into(),
        ));
    }
    match app.store.disable_staff_user(&email, actor).await? {
        DisableOutcome::Disabled => Ok(true),
        DisableOutcome::AlreadyDisabled => Ok(false),
        DisableOutcome::LastAdmin => Err(AppError::Denied(
            "that is the last admin: add another before disabling them".into(),
        )),
        DisableOutcome::NotFound => Err(no_such_person(&email)),
    }
}

/// Lets a disabled person back in: they sign in with a new password link (which turns any
/// second factor off).
pub async fn enable(app: &App, actor: &Actor, email: &str) -> Result<Added> {
    super::must_be_admin(actor)?;
    let email = Email::parse(email).map_err(|e| AppError::invalid("email", e))?;
    if !app.store.enable_staff_user(&email, actor).await? {
        return Err(AppError::NotFound(format!(
            "no one disabled on the staff has the address {}",
            email.normalized()
        )));
    }
    renew_password_link(app, actor, email.normalized()).await
}

/// Issues an API token, of no one (it sees everyone) or of the person at `owner` (it has their
/// role and constituencies, and stops with them). The secret is shown once.
pub async fn issue_token(
    app: &App,
    actor: &Actor,
    name: &str,
    read_only: bool,
    owner: Option<&str>,
) -> Result<StaffSecret> {
    super::must_be_admin(actor)?;
    let name = StaffName::parse(name).map_err(|e| AppError::invalid("name", e))?;
    let owner = match owner {
        None => None,
        Some(email) => {
            let email = Email::parse(email).map_err(|e| AppError::invalid("owner", e))?;
            Some(
                app.store
                    .staff_user_id(&email)
                    .await?
                    .ok_or_else(|| no_such_person(&email))?,
            )
        }
    };
    let secret = StaffSecret::generate();
    if !app
        .store
        .create_staff_token(&name, &secret.hash(), read_only, owner, actor)
        .await?
    {
        return Err(AppError::conflict(
            Conflict::Exists,
            format!("a token named '{name}' exists already (revoked tokens keep their names)"),
        ));
    }
    Ok(secret)
}

/// The API tokens, revoked ones too; for the operator and admins.
pub async fn tokens(app: &App, actor: &Actor) -> Result<Vec<StaffTokenSummary>> {
    super::must_be_admin(actor)?;
    Ok(app.store.list_staff_tokens().await?)
}

/// Revokes the API token named `name`: from now on it is refused.
pub async fn revoke_token(app: &App, actor: &Actor, name: &str) -> Result<RevokeOutcome> {
    super::must_be_admin(actor)?;
    let name = StaffName::parse(name).map_err(|e| AppError::invalid("name", e))?;
    Ok(app.store.revoke_staff_token(&name, actor).await?)
}

/// Whose API token `presented` is, while it is live: the member of staff it acts as.
pub async fn token_holder(app: &App, presented: &str) -> Result<Option<StaffMember>> {
    Ok(app
        .store
        .staff_member(&StaffTokenHash::of(presented))
        .await?)
}

/// Whose a password link is, while it works: their address and name, for the page.
pub async fn password_link_holder(app: &App, secret: &str) -> Result<(String, String)> {
    let link = app
        .store
        .password_link(&StaffTokenHash::of(secret))
        .await?
        .ok_or_else(dead_link)?;
    Ok((link.email, link.name))
}

/// Sets a password through a live link, which is then spent.
pub async fn set_password(
    app: &App,
    secret: &str,
    password: &str,
    repeated: &str,
    ip: Option<IpAddr>,
) -> Result<()> {
    let link = StaffTokenHash::of(secret);
    if app.store.password_link(&link).await?.is_none() {
        return Err(dead_link());
    }
    if password != repeated {
        return Err(AppError::invalid(
            "repeat",
            "the two passwords differ; type the same one twice",
        ));
    }
    let password = Password::parse(password).map_err(|e| AppError::invalid("password", e))?;
    let hash = hash_password(password).await?;
    let ip = ip.map(|ip| ip.to_string());
    match app
        .store
        .set_staff_password(&link, &hash, ip.as_deref())
        .await?
    {
        true => Ok(()),
        false => Err(dead_link()),
    }
}

/// A session opened: the cookie's secret (shown to the browser only) and its form token.
pub struct SignedIn {
    pub session: StaffSecret,
    pub member: crate::domain::StaffMember,
}

/// Checks an address and password (and, for someone who turned it on, a code of their second
/// factor) and opens a session. A wrong address or password says the same, whatever was
/// wrong; too many tries for one address or from one IP are refused before checking.
pub async fn sign_in(
    app: &App,
    email: &str,
    password: &str,
    code: &str,
    ip: IpAddr,
) -> Result<SignedIn> {
    let refused = || AppError::invalid("password", "that address and password do not match");
    let email = Email::parse(email).map_err(|_| refused())?;
    let attempt = attempt(app, &email, ip).await?;
    let record = app.store.sign_in_record(&email).await?;
    let stored = record.as_ref().and_then(|r| r.password_hash.clone());
    let matches = verify_password(password.to_owned(), stored).await;
    let Some(record) = record.filter(|_| matches) else {
        return Err(refused());
    };
    if let Some(secret) = &record.totp_secret {
        let Some(step) = totp_step(secret, email.normalized(), code)? else {
            return Err(AppError::invalid(
                "code",
                "enter the 6-digit code your authenticator app shows now",
            ));
        };
        if !app.store.spend_totp_step(record.id, step).await? {
            return Err(AppError::invalid(
                "code",
                "that code was used already; wait for the next one",
            ));
        }
    }
    // Only failures count: this attempt is taken back.
    app.store.forgive_sign_in_attempt(&attempt.keys()).await?;
    let session = StaffSecret::generate();
    let form_token = StaffSecret::generate();
    app.store
        .open_staff_session(
            record.id,
            &session.hash(),
            form_token.expose(),
            Some(&ip.to_string()),
        )
        .await?;
    let member = app
        .store
        .staff_session(&session.hash(), SessionUse::Person)
        .await?
        .ok_or_else(refused)?
        .member;
    Ok(SignedIn { session, member })
}

/// The live session a cookie's secret opens, for a request made as `used` says.
pub async fn session(app: &App, secret: &str, used: SessionUse) -> Result<Option<StaffSession>> {
    Ok(app
        .store
        .staff_session(&StaffTokenHash::of(secret), used)
        .await?)
}

pub async fn sign_out(app: &App, secret: &str) -> Result<()> {
    Ok(app
        .store
        .end_staff_session(&StaffTokenHash::of(secret))
        .await?)
}

/// The scope of constituencies given by code or unique name.
async fn scope_of(app: &App, constituencies: &[String]) -> Result<Scope> {
    let codes = app
        .store
        .constituency_codes(constituencies)
        .await?
        .map_err(|message| AppError::invalid("constituency", message))?;
    let codes = codes
        .iter()
        .map(|code| {
            crate::domain::ConstituencyCode::parse(code)
                .map_err(|e| AppError::invalid("constituency", e))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Scope::of(codes))
}

fn password_link_secret() -> (StaffSecret, DateTime<Utc>) {
    (
        StaffSecret::generate(),
        crate::store::now() + chrono::Duration::hours(PASSWORD_LINK_HOURS),
    )
}

fn password_link(app: &App, secret: &StaffSecret) -> String {
    format!("{}{PASSWORD_PATH}{}", app.base_url, secret.expose())
}

fn no_such_person(email: &Email) -> AppError {
    AppError::NotFound(format!(
        "no one on the staff (or no one enabled) has the address {}",
        email.normalized()
    ))
}

fn dead_link() -> AppError {
    AppError::NotFound(
        "this link has been used or has expired; ask an admin for a new one".to_owned(),
    )
}

async fn hash_password(password: Password) -> Result<String> {
    hashing(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| AppError::invalid("password", e))
}

/// Whether `password` matches `stored`; with nothing stored, a hash of nothing is checked all
/// the same, so that the time taken does not tell.
async fn verify_password(password: String, stored: Option<String>) -> bool {
    static NOBODY: LazyLock<String> = LazyLock::new(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(StaffSecret::generate().expose().as_bytes(), &salt)
            .expect("a random password hashes")
            .to_string()
    });
    hashing(move || {
        let exists = stored.is_some();
        let stored = stored.unwrap_or_else(|| NOBODY.clone());
        let matches = PasswordHash::new(&stored).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        exists && matches
    })
    .await
}

/// How long an attempt counts against its address, IP, or both.
pub const ATTEMPT_WINDOW: chrono::Duration = chrono::Duration::minutes(15);
/// Attempts at one address from one IP within the window, the rest refused: a guesser at one
/// machine gets five tries.
pub const ATTEMPTS_PER_ADDRESS_AND_IP: i64 = 5;
/// Attempts from one IP at any addresses within the window, the rest refused.
pub const ATTEMPTS_PER_IP: i64 = 20;
/// Attempts at one address from anywhere within the window before each further one waits: a
/// guess spread over many machines is slowed down, never refused, so that nobody can lock a
/// colleague out of their own account by guessing at it.
pub const ATTEMPTS_PER_ADDRESS_UNSLOWED: i64 = 10;
/// How much longer each attempt at an address waits past [`ATTEMPTS_PER_ADDRESS_UNSLOWED`], up
/// to [`LONGEST_WAIT`].
const WAIT_STEP: Duration = Duration::from_millis(250);
const LONGEST_WAIT: Duration = Duration::from_secs(5);
/// Password hashes computed at once, at most: argon2id takes 19 MiB each.
pub const HASHES_AT_ONCE: usize = 2;

/// A sign-in attempt, counted before anything is checked: under its address and IP together,
/// its IP, and its address. Only failures count: one that succeeds is taken back.
struct Attempt {
    keys: [String; 3],
}

impl Attempt {
    fn keys(&self) -> [&str; 3] {
        [&self.keys[0], &self.keys[1], &self.keys[2]]
    }
}

/// Counts an attempt at `email` from `ip`, atomically and before its password is hashed: past
/// the limits per address and IP and per IP it is refused; past the attempts an address takes
/// unslowed, it waits a little longer each time.
async fn attempt(app: &App, email: &Email, ip: IpAddr) -> Result<Attempt> {
    let account = email.hash();
    let attempt = Attempt {
        keys: [
            format!("pair:{}:{ip}", account.as_str()),
            format!("ip:{ip}"),
            format!("account:{}", account.as_str()),
        ],
    };
    let [pair, from_ip, account] = attempt.keys();
    let limits = [
        (pair, ATTEMPTS_PER_ADDRESS_AND_IP),
        (from_ip, ATTEMPTS_PER_IP),
    ];
    let Some(at_account) = app
        .store
        .count_sign_in_attempt(&limits, account, ATTEMPT_WINDOW)
        .await?
    else {
        return Err(AppError::Limited(
            "too many sign-in attempts; wait a few minutes and try again".to_owned(),
        ));
    };
    tokio::time::sleep(slowed_by(at_account)).await;
    Ok(attempt)
}

/// How long the `attempts`th attempt at one address within the window waits.
fn slowed_by(attempts: i64) -> Duration {
    let past = u32::try_from(attempts - ATTEMPTS_PER_ADDRESS_UNSLOWED).unwrap_or(0);
    WAIT_STEP.saturating_mul(past).min(LONGEST_WAIT)
}

/// Runs `work` (a password hash) on a blocking thread, once one of [`HASHES_AT_ONCE`] places is
/// free. The place goes with the work onto its thread: a request abandoned while its hash runs
/// (the client hung up) must not free the place before the hash ends, or hashes would pile up
/// without bound.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    static PLACES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE);
    let place = PLACES
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _place = place;
        work()
    })
    .await
    .expect("hashing a password does not panic")
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Staff(member) => member.name.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Half of the burst is abandoned a moment after it starts, as by clients that hang up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_than_a_few_hashes_run_at_once_whatever_arrives_or_hangs_up() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let burst: Vec<_> = (0..40)
            .map(|i| {
                let (running, most) = (running.clone(), most.clone());
                let hash = hashing(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
                tokio::spawn(async move {
                    match i % 2 {
                        0 => drop(tokio::time::timeout(Duration::from_millis(1), hash).await),
                        _ => hash.await,
                    }
                })
            })
            .collect();
        for hash in burst {
            hash.await.unwrap();
        }
        // The abandoned hashes still running finish too.
        while running.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(most.load(Ordering::SeqCst), HASHES_AT_ONCE);
    }

    #[test]
    fn attempts_at_an_address_are_slowed_more_and_more_but_never_refused() {
        assert_eq!(slowed_by(1), Duration::ZERO);
        assert_eq!(slowed_by(ATTEMPTS_PER_ADDRESS_UNSLOWED), Duration::ZERO);
        assert_eq!(slowed_by(ATTEMPTS_PER_ADDRESS_UNSLOWED + 1), WAIT_STEP);
        assert_eq!(slowed_by(ATTEMPTS_PER_ADDRESS_UNSLOWED + 4), WAIT_STEP * 4);
        assert_eq!(slowed_by(10_000), LONGEST_WAIT);
    }
}
