//! What a button did, told on the page it leads to. Every console form that acts answers 303
//! (Post/Redirect/Get), so that reloading the page it leads to posts nothing again; what it did
//! or why it was refused travels in a cookie that lives a minute and is shown once.
//!
//! The cookie is `HttpOnly` and `SameSite=Strict`, for `/admin` only. A form refused for what
//! was typed into it is the exception: it is shown again with what was typed and the reason
//! (422), since a redirect would lose the typing.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;

use super::super::AppState;

const COOKIE: &str = "canvass_flash";

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
    /// 303 to `to`, carrying this message.
    pub fn redirect(self, state: &AppState, to: &str) -> Response {
        let (kind, text) = match &self {
            Self::Notice(text) => ('n', text),
            Self::Refusal(text) => ('r', text),
        };
        let mut end = text.len().min(LONGEST);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let value = utf8_percent_encode(&text[..end], NON_ALPHANUMERIC);
        let cookie = format!(
            "{COOKIE}={kind}{value}; Path=/admin; Max-Age=60; HttpOnly; SameSite=Strict{}",
            secure_attribute(state)
        );
        let mut response = Redirect::to(to).into_response();
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("a percent-encoded cookie"),
        );
        response
    }

    /// The message a request carries, if any.
    pub fn presented(headers: &HeaderMap) -> Option<Self> {
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == COOKIE)?
            .1
            .trim();
        let text = percent_decode_str(value.get(1..)?)
            .decode_utf8()
            .ok()?
            .into_owned();
        match value.as_bytes().first()? {
            b'n' => Some(Self::Notice(text)),
            b'r' => Some(Self::Refusal(text)),
            _ => None,
        }
    }

    /// The `Set-Cookie` that forgets the message once a page has shown it.
    pub fn shown(state: &AppState) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{COOKIE}=; Path=/admin; Max-Age=0; HttpOnly; SameSite=Strict{}",
            secure_attribute(state)
        ))
        .expect("a fixed cookie")
    }
}

fn secure_attribute(state: &AppState) -> &'static str {
    match super::session::secure(state) {
        true => "; Secure",
        false => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried(flash: Flash) -> Option<Flash> {
        let text = match &flash {
            Flash::Notice(text) | Flash::Refusal(text) => text,
        };
        let kind = if matches!(flash, Flash::Notice(_)) {
            'n'
        } else {
            'r'
        };
        let value = utf8_percent_encode(text, NON_ALPHANUMERIC);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={kind}{value}; last=2")).unwrap(),
        );
        Flash::presented(&headers)
    }

    #[test]
    fn a_message_comes_back_as_it_was_sent_whatever_it_holds() {
        for text in ["Queued for 14,180 people.", "a;b=c \"d\" é ✓", ""] {
            assert_eq!(
                carried(Flash::Notice(text.into())),
                Some(Flash::Notice(text.into()))
            );
            assert_eq!(
                carried(Flash::Refusal(text.into())),
                Some(Flash::Refusal(text.into()))
            );
        }
    }

    #[test]
    fn a_cookie_of_another_shape_is_no_message() {
        for value in ["", "x", "zabc", "n%FF"] {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("{COOKIE}={value}")).unwrap(),
            );
            assert_eq!(Flash::presented(&headers), None, "{value}");
        }
    }
}
