//! The second factor: a TOTP secret enrolled in an authenticator app, confirmed with a code and
//! the password, turned off with a code; each code spent once.

use super::{actor_name, verify_password};

use chrono::Utc;
use rand::RngCore;

use crate::app::{Actor, App, AppError, Result};
use crate::domain::Email;

/// What an authenticator app is given to turn a second factor on: the secret (to type) and the
/// otpauth link (to scan).
pub struct TotpEnrolment {
    /// Base32, as apps take it typed.
    pub secret: String,
    pub uri: String,
}

/// The issuer authenticator apps show beside the code.
pub(super) const TOTP_ISSUER: &str = "canvass";

pub(super) fn totp(secret: &str, account: &str) -> Result<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|_| AppError::invalid("secret", "start again: the secret was damaged"))?;
    // One step either side is checked by hand, so that the step that matched is known.
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        Some(TOTP_ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| AppError::invalid("secret", e))
}

/// The time step `code` belongs to (now, or one step either side for clocks that differ), or
/// `None` when it is no code of `secret`'s.
pub(super) fn totp_step(secret: &str, account: &str, code: &str) -> Result<Option<i64>> {
    use subtle::ConstantTimeEq;
    let totp = totp(secret, account)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let now = Utc::now().timestamp();
    let step = now / 30;
    Ok([step - 1, step, step + 1].into_iter().find(|&candidate| {
        let expected = totp.generate(candidate as u64 * 30);
        bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
    }))
}

/// A new secret for `account` (the person's address) to turn their second factor on with.
pub fn start_totp(account: &str) -> Result<TotpEnrolment> {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    let secret = totp_rs::Secret::Raw(bytes.to_vec())
        .to_encoded()
        .to_string();
    let uri = totp(&secret, account)?.get_url();
    Ok(TotpEnrolment { secret, uri })
}

/// The otpauth link of a secret being turned on (to show its QR code again).
pub fn enrolment_uri(secret: &str, account: &str) -> Result<String> {
    Ok(totp(secret, account)?.get_url())
}

/// Turns the signed-in person's second factor on, once their app shows a code of `secret`.
pub async fn confirm_totp(
    app: &App,
    actor: &Actor,
    user: i64,
    secret: &str,
    code: &str,
    password: &str,
) -> Result<()> {
    let account = actor_name(actor);
    // Someone who finds a session open cannot put their own phone in its owner's place: a
    // second factor already on is turned off first (with its code), and turning one on takes
    // the password.
    if app.store.totp_secret(user).await?.is_some() {
        return Err(AppError::Denied(
            "two-factor sign-in is on already: turn it off first, with a code".into(),
        ));
    }
    let email = Email::parse(&account).map_err(|e| AppError::invalid("password", e))?;
    let stored = app
        .store
        .sign_in_record(&email)
        .await?
        .and_then(|record| record.password_hash);
    if !verify_password(password.to_owned(), stored).await {
        return Err(AppError::invalid("password", "that is not your password"));
    }
    let step = totp_step(secret, &account, code)?.ok_or_else(|| {
        AppError::invalid(
            "code",
            "that is not the code the app shows now; check the phone's clock and try again",
        )
    })?;
    app.store.set_totp(user, Some(secret), actor).await?;
    app.store.spend_totp_step(user, step).await?;
    Ok(())
}

/// Turns the signed-in person's second factor off, given a code of it.
pub async fn turn_off_totp(app: &App, actor: &Actor, user: i64, code: &str) -> Result<()> {
    let Some(secret) = app.store.totp_secret(user).await? else {
        return Ok(());
    };
    if totp_step(&secret, &actor_name(actor), code)?.is_none() {
        return Err(AppError::invalid(
            "code",
            "enter the code your authenticator app shows now",
        ));
    }
    Ok(app.store.set_totp(user, None, actor).await?)
}

/// Whether the person has a second factor on.
pub async fn has_totp(app: &App, user: i64) -> Result<bool> {
    Ok(app.store.totp_secret(user).await?.is_some())
}
