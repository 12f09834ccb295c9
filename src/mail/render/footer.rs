//! The footer every message ends with: who sends it, the imprint, why the person gets it, and
//! the links to unsubscribe and to their preferences.

use super::{MessageVars, TEXT_WIDTH, template};
use handlebars::Handlebars;

use crate::domain::Publisher;

/// What every message's footer says besides its links.
#[derive(Debug, Clone, Copy)]
pub struct Footer<'a> {
    pub publisher: &'a Publisher,
    /// The name of the topic the person agreed to hear about: why they get the message.
    pub topic: &'a str,
}

impl Footer<'_> {
    pub(super) fn html(&self, vars: &MessageVars) -> String {
        let e = |s: &str| handlebars::html_escape(s);
        let publisher = self.publisher;
        let organisation = e(&publisher.organisation);
        let mut out = format!(
            "<hr><div style=\"font-size:small;color:#555\"><p>You are getting this email \
             because you asked {organisation} for emails about {topic}. \
             <a href=\"{unsubscribe}\">Unsubscribe</a> · \
             <a href=\"{preferences}\">Your email preferences</a>",
            topic = e(self.topic),
            unsubscribe = e(&vars.unsubscribe_url),
            preferences = e(&vars.preferences_url),
        );
        if let Some(privacy) = &publisher.privacy_url {
            out.push_str(&format!(" · <a href=\"{}\">Privacy notice</a>", e(privacy)));
        }
        out.push_str(&format!(
            " · <a href=\"{}\">Complain about how we use your data</a>",
            e(&vars.complaint_url)
        ));
        out.push_str("</p><p>");
        out.push_str(&organisation);
        if let Some(address) = &publisher.postal_address {
            out.push_str(&format!(", {}", e(address)));
        }
        out.push_str("</p>");
        if let Some(imprint) = &publisher.imprint {
            out.push_str(&format!("<p>{}</p>", e(imprint)));
        }
        out.push_str("</div>");
        out
    }

    pub(super) fn text(&self, vars: &MessageVars) -> String {
        let publisher = self.publisher;
        let mut out = format!(
            "\n\n--\nYou are getting this email because you asked {} for emails about {}.\n\
             Unsubscribe: {}\nYour email preferences: {}\n",
            publisher.organisation, self.topic, vars.unsubscribe_url, vars.preferences_url
        );
        if let Some(privacy) = &publisher.privacy_url {
            out.push_str(&format!("Privacy notice: {privacy}\n"));
        }
        out.push_str(&format!(
            "Complain about how we use your data: {}\n",
            vars.complaint_url
        ));
        out.push_str(&publisher.organisation);
        if let Some(address) = &publisher.postal_address {
            out.push_str(&format!(", {address}"));
        }
        out.push('\n');
        if let Some(imprint) = &publisher.imprint {
            out.push_str(&format!("{imprint}\n"));
        }
        out
    }
}

/// A text template made by converting the HTML template itself, kept only if it renders the
/// sample exactly as converting the rendered sample does (`expected`).
pub(super) fn derived_text(
    html_source: &str,
    sample: &MessageVars,
    expected: &str,
) -> Option<Handlebars<'static>> {
    let source = html2text::from_read(html_source.as_bytes(), TEXT_WIDTH).ok()?;
    let text = template("text", &source).ok()?;
    let rendered = text.render("text", sample).ok()?;
    (rendered == expected).then_some(text)
}
