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

/// The public pages by name, each beside its source.
pub const PUBLIC: &[(&str, &str)] = &[
    ("layout", include_str!("../../templates/pages/layout.hbs")),
    (
        "unsubscribe",
        include_str!("../../templates/pages/unsubscribe.hbs"),
    ),
    (
        "unsubscribed",
        include_str!("../../templates/pages/unsubscribed.hbs"),
    ),
    (
        "nothing_held",
        include_str!("../../templates/pages/nothing_held.hbs"),
    ),
    (
        "invalid_link",
        include_str!("../../templates/pages/invalid_link.hbs"),
    ),
    (
        "preferences",
        include_str!("../../templates/pages/preferences.hbs"),
    ),
    (
        "erase_confirm",
        include_str!("../../templates/pages/erase_confirm.hbs"),
    ),
    ("erased", include_str!("../../templates/pages/erased.hbs")),
    (
        "signup_sent",
        include_str!("../../templates/pages/signup_sent.hbs"),
    ),
    ("confirm", include_str!("../../templates/pages/confirm.hbs")),
    (
        "confirmed",
        include_str!("../../templates/pages/confirmed.hbs"),
    ),
    (
        "test_link",
        include_str!("../../templates/pages/test_link.hbs"),
    ),
    (
        "signup_refused",
        include_str!("../../templates/pages/signup_refused.hbs"),
    ),
    (
        "complaint",
        include_str!("../../templates/pages/complaint.hbs"),
    ),
    (
        "complaint_received",
        include_str!("../../templates/pages/complaint_received.hbs"),
    ),
];

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
        pages: &[(&str, &str)],
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
