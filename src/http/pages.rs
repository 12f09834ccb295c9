//! Server-rendered pages: the public ones from `templates/pages/`, the staff console's from
//! `templates/console/` (compiled into the binary). Handlebars escapes every `{{value}}`; no
//! template uses the unescaped form.

use handlebars::{Handlebars, html_escape};
use serde::Serialize;

use crate::domain::Publisher;

/// The pages' footer, fixed for the process: who publishes, the imprint, the privacy notice.
/// Escaped here, and braces taken out, since it becomes a template of its own.
fn footer(publisher: &Publisher) -> String {
    let e = |s: &str| html_escape(s).replace(['{', '}'], "");
    let mut out = format!("<footer><p>{}", e(&publisher.organisation));
    if let Some(address) = &publisher.postal_address {
        out.push_str(&format!(", {}", e(address)));
    }
    out.push_str("</p>");
    if let Some(imprint) = &publisher.imprint {
        out.push_str(&format!("<p>{}</p>", e(imprint)));
    }
    out.push_str("<p>");
    if let Some(privacy) = &publisher.privacy_url {
        out.push_str(&format!("<a href=\"{}\">Privacy notice</a> · ", e(privacy)));
    }
    out.push_str("<a href=\"/complaint\">Complain about how we use your data</a></p>");
    out.push_str("</footer>");
    out
}

/// Declares an enum of templates: each variant's name, and its source, `FOLDER/NAME.hbs`
/// (the folder as the invoking file reaches it).
macro_rules! templates {
    ($(#[$meta:meta])* $enum:ident in $folder:literal {
        $($(#[$doc:meta])* $variant:ident => $name:literal),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $enum {
            $($(#[$doc])* $variant),*
        }

        impl $enum {
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// Each one's name beside its source, for [`Pages::new`](crate::http::pages::Pages::new).
            pub fn sources() -> impl Iterator<Item = (&'static str, &'static str)> {
                Self::ALL.iter().map(|t| (t.name(), t.source()))
            }

            /// The name it is registered under.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }

            fn source(self) -> &'static str {
                match self {
                    $(Self::$variant => include_str!(concat!($folder, $name, ".hbs"))),*
                }
            }
        }
    };
}
pub(crate) use templates;

templates! {
    /// A public page: what a recipient's link, the sign-up form or the complaint form shows.
    PublicPage in "../../templates/pages/" {
        Layout => "layout",
        Unsubscribe => "unsubscribe",
        Unsubscribed => "unsubscribed",
        NothingHeld => "nothing_held",
        InvalidLink => "invalid_link",
        Preferences => "preferences",
        EraseConfirm => "erase_confirm",
        Erased => "erased",
        SignupSent => "signup_sent",
        Confirm => "confirm",
        Confirmed => "confirmed",
        TestLink => "test_link",
        SignupRefused => "signup_refused",
        Complaint => "complaint",
        ComplaintReceived => "complaint_received",
    }
}

// `{{count n}}`: a number as people read it, `14,180`.
handlebars::handlebars_helper!(count: |n: Json| match n.as_u64() {
    Some(n) => crate::domain::thousands(n),
    None => match n {
        handlebars::JsonValue::String(text) => text.clone(),
        handlebars::JsonValue::Null => String::new(),
        other => other.to_string(),
    },
});

// `{{uk_time at}}`: a time the data holds in UTC (RFC 3339), as people in the UK read it,
// `5 Dec 2026 19:30 GMT`; anything else as it is.
handlebars::handlebars_helper!(uk_time: |at: Json| {
    let at = at.as_str().unwrap_or_default();
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(at) => crate::domain::uk_time(at.to_utc()),
        Err(_) => at.to_owned(),
    }
});

pub struct Pages {
    registry: Handlebars<'static>,
}

impl Pages {
    /// Compiles `pages`, with a footer naming `publisher`: every page carries the imprint and
    /// the privacy notice, as every email does.
    pub fn new(
        publisher: &Publisher,
        pages: impl IntoIterator<Item = (&'static str, &'static str)>,
    ) -> Result<Self, Box<handlebars::TemplateError>> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(false);
        registry.register_helper("count", Box::new(count));
        registry.register_helper("uk_time", Box::new(uk_time));
        for (name, source) in pages {
            registry.register_template_string(name, source)?;
        }
        registry.register_template_string("footer", footer(publisher))?;
        Ok(Self { registry })
    }

    /// Renders a page, or says why it could not.
    pub fn try_render(
        &self,
        name: &str,
        data: &impl Serialize,
    ) -> Result<String, handlebars::RenderError> {
        self.registry.render(name, data)
    }

    /// Renders a page. The data is this module's own structs, so a failure is a bug in a
    /// template; it is logged and a plain message shown.
    pub fn render(&self, name: &str, data: &impl Serialize) -> String {
        self.registry.render(name, data).unwrap_or_else(|error| {
            tracing::error!(%error, page = name, "rendering a page");
            "<!doctype html><html lang=\"en-GB\"><title>Error</title><p>Something went wrong."
                .to_owned()
        })
    }
}
