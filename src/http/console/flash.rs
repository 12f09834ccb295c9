//! What a button did, told on the page it leads to. Every console form that acts answers 303
//! (Post/Redirect/Get), so that reloading the page it leads to posts nothing again; what it did
//! or why it was refused travels in a cookie that lives a minute and is shown once.
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`, `__Host-` and `Secure` over https, and its
//! text is signed with the session's own secret: a cookie planted by a neighbouring host, or
//! left by another session, says nothing. It never carries a secret (a password link is shown
//! on the page that answers its form, once). A form refused for what was typed into it is the
//! other exception: it is shown again with what was typed and the reason (422), since a
//! redirect would lose the typing.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use sha2::Sha256;

use super::super::AppState;
use super::session::Signed;

/// The cookie's name: with `__Host-`, a browser takes it only over https, for the whole host,
/// from the host itself.
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-canvass_flash"
    } else {
        "canvass_flash"
    }
}

/// The most of a message a cookie carries; anything longer is cut at a character boundary.
const LONGEST: usize = 1000;

/// A message for the next page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "text")]
pub enum Flash {
    /// What was done.
    Notice(String),
    /// Why nothing was done.
    Refusal(String),
}

impl Flash {
    /// 303 to `to`, carrying this message for `signed`'s session.
    pub fn redirect(self, state: &AppState, signed: &Signed, to: &str) -> Response {
        let (kind, text) = match &self {
            Self::Notice(text) => ('n', text),
            Self::Refusal(text) => ('r', text),
        };
        let mut end = text.len().min(LONGEST);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let text = &text[..end];
        let signature = sign(&signed.secret, kind, text);
        let value = utf8_percent_encode(text, NON_ALPHANUMERIC);
        let secure = super::session::secure(state);
        let cookie = format!(
            "{}={signature}.{kind}{value}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict{}",
            cookie_name(secure),
            secure_attribute(secure)
        );
        let mut response = Redirect::to(to).into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("a percent-encoded cookie"),
        );
        response
    }

    /// The message a request carries for the session whose secret is `secret`, if any.
    pub fn presented(headers: &HeaderMap, secret: &str, secure: bool) -> Option<Self> {
        let name = cookie_name(secure);
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)?
            .1
            .trim();
        let (signature, value) = value.split_once('.')?;
        let kind = value.chars().next()?;
        let text = percent_decode_str(value.get(1..)?)
            .decode_utf8()
            .ok()?
            .into_owned();
        let expected = sign(secret, kind, &text);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            signature.as_bytes(),
            expected.as_bytes(),
        )) {
            return None;
        }
        match kind {
            'n' => Some(Self::Notice(text)),
            'r' => Some(Self::Refusal(text)),
            _ => None,
        }
    }

    /// Whether a request carries a message cookie at all (signed for this session or not).
    pub fn carried(headers: &HeaderMap, secure: bool) -> bool {
        let name = cookie_name(secure);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .any(|pair| {
                pair.trim()
                    .split_once('=')
                    .is_some_and(|(key, _)| key == name)
            })
    }

    /// The `Set-Cookie` that forgets the message once a page has shown it.
    pub fn shown(state: &AppState) -> HeaderValue {
        let secure = super::session::secure(state);
        HeaderValue::from_str(&format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
            cookie_name(secure),
            secure_attribute(secure)
        ))
        .expect("a fixed cookie")
    }
}

/// The message's signature: HMAC-SHA256 keyed with the session's secret (which only the
/// browser holding the session has; the database keeps its hash), over its kind and text.
fn sign(secret: &str, kind: char, text: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(b"canvass flash\0");
    mac.update(kind.to_string().as_bytes());
    mac.update(text.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secure_attribute(secure: bool) -> &'static str {
    if secure { "; Secure" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(flash: &Flash, signed_with: &str, read_with: &str) -> Option<Flash> {
        let (kind, text) = match flash {
            Flash::Notice(text) => ('n', text),
            Flash::Refusal(text) => ('r', text),
        };
        let value = utf8_percent_encode(text, NON_ALPHANUMERIC);
        let signature = sign(signed_with, kind, text);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "other=1; canvass_flash={signature}.{kind}{value}; last=2"
            ))
            .unwrap(),
        );
        Flash::presented(&headers, read_with, false)
    }

    #[test]
    fn a_message_comes_back_as_it_was_sent_whatever_it_holds() {
        for text in ["Queued for 14,180 people.", "a;b=c \"d\" é ✓", ""] {
            for flash in [Flash::Notice(text.into()), Flash::Refusal(text.into())] {
                assert_eq!(carried(&flash, "s1", "s1"), Some(flash));
            }
        }
    }

    #[test]
    fn a_message_signed_for_another_session_or_forged_says_nothing() {
        let flash = Flash::Notice("You won a prize".into());
        assert_eq!(carried(&flash, "someone else's", "mine"), None);
        for value in ["", "x", "zabc", "n%FF", "00.nHello", ".nHello"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("canvass_flash={value}")).unwrap(),
            );
            assert_eq!(Flash::presented(&headers, "mine", false), None, "{value}");
        }
    }
}
