//! A campaign's message bodies: its HTML (and optional text) template, compiled once and checked
//! when the campaign is created, so that a syntax error or an unknown variable is refused there
//! and not discovered half-way through a send.
//!
//! Templates see `{{contact.name}}`, `{{contact.postcode}}`, `{{constituency.name}}`,
//! `{{event.title}}`, `{{event.date}}`, `{{event.time}}`, `{{event.venue}}`,
//! `{{event.postcode}}` (event mailings only), `{{distance_miles}}` (event mailings with a
//! postcode: the miles from the person's postcode to the venue, rounded; 0 under half a mile),
//! `{{unsubscribe_url}}` and `{{preferences_url}}`.
//! Values are HTML-escaped in the HTML part. Every body carries a visible unsubscribe link and a
//! preference-centre link: when a template leaves them out, a footer adds them.

use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use handlebars::template::{Template, TemplateElement};
use serde::Serialize;

use crate::domain::{Event, LinkTag, NewCampaign};
use crate::mail::token::{Purpose, SigningKeys};
use crate::store::Recipient;

mod footer;

pub use footer::Footer;
use footer::derived_text;

/// The largest template taken (the API takes campaign bodies up to this size too): a
/// newsletter is tens of kilobytes.
pub const MAX_TEMPLATE_BYTES: usize = 1024 * 1024;
/// Blocks (`{{#if}}`, `{{#each}}`...) nested deeper than this are refused before parsing: the
/// parser recurses on them, and a template of a million openings would overflow its stack.
const MAX_NESTING: usize = 32;

/// Width the text part derived from HTML is wrapped to: wide enough that no link is ever cut in
/// two (a cut link is a dead link; mail clients wrap prose themselves).
const TEXT_WIDTH: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the {part} template: {message}")]
    Invalid { part: &'static str, message: String },
}

/// The largest Markdown taken: a newsletter is a few kilobytes, and its HTML grows several-fold.
const MAX_MARKDOWN_BYTES: usize = 128 * 1024;
/// The most emphasis and link markers (`*`, `_`, `[`) one Markdown paragraph may hold: they
/// nest, and the renderer recurses on nesting.
const MAX_INLINE_MARKERS: usize = 256;
/// The most columns a Markdown table may have.
const MAX_TABLE_COLUMNS: usize = 32;

/// canvass's own email layout, around a campaign written in Markdown.
const MARKDOWN_LAYOUT: &str = include_str!("../../../templates/email/layout.html");

/// The HTML template made from a campaign's Markdown: rendered by comrak with raw HTML escaped
/// and unsafe links dropped, placed in canvass's responsive layout, its CSS inlined (css-inline,
/// which fetches nothing). `{{contact.name}}` and the other values work as in an HTML
/// template; triple braces, which would put a value in unescaped, are refused.
pub fn markdown_template(markdown: &str) -> Result<String, TemplateError> {
    if markdown.len() > MAX_MARKDOWN_BYTES {
        return Err(invalid(
            "Markdown",
            format!("over the limit of {MAX_MARKDOWN_BYTES} bytes"),
        ));
    }
    // Nesting is what makes Markdown expensive to render (the renderer recurses on it), and
    // no email needs much of it: quotes and lists a few deep, tables of a few columns.
    for line in markdown.lines() {
        let quotes = line
            .chars()
            .take_while(|c| *c == '>' || c.is_whitespace())
            .filter(|c| *c == '>')
            .count();
        let indent = line.chars().take_while(|c| c.is_whitespace()).count();
        let cells = line.matches('|').count();
        if quotes > MAX_NESTING || indent > 4 * MAX_NESTING || cells > MAX_TABLE_COLUMNS {
            return Err(invalid(
                "Markdown",
                format!(
                    "quotes or lists nested more than {MAX_NESTING} deep, or a table of more \
                     than {MAX_TABLE_COLUMNS} columns"
                ),
            ));
        }
    }
    // Emphasis and links nest too, within a paragraph: bound the markers that open them.
    for paragraph in markdown.split("\n\n") {
        let markers = paragraph
            .chars()
            .filter(|c| matches!(c, '*' | '_' | '['))
            .count();
        if markers > MAX_INLINE_MARKERS {
            return Err(invalid(
                "Markdown",
                format!(
                    "a paragraph with over {MAX_INLINE_MARKERS} of *, _ and [: split it with a \
                     blank line"
                ),
            ));
        }
    }
    let mut options = comrak::Options::default();
    options.render.escape = true;
    options.extension.table = true;
    options.extension.autolink = true;
    let body = comrak::markdown_to_html(markdown, &options);
    let page = MARKDOWN_LAYOUT.replace("CANVASS_CONTENT", &body);
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .build();
    inliner.inline(&page).map_err(|e| invalid("Markdown", e))
}

/// Where the links of a preview or a test send point: a page that says so and does nothing.
pub const TRIAL_LINK_PATH: &str = "test-link";

/// What a template is rendered with for one recipient.
#[derive(Debug, Clone, Serialize)]
pub struct MessageVars {
    pub contact: ContactVars,
    pub constituency: ConstituencyVars,
    /// Present only for event mailings, so that `{{event.title}}` in a campaign mailing is
    /// refused when it is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventVars>,
    /// Present only for event mailings with a venue postcode; null for someone whose postcode
    /// has no place on the map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_miles: Option<Option<u32>>,
    pub unsubscribe_url: String,
    pub preferences_url: String,
    /// The public page that takes a complaint about how the party uses personal data.
    pub complaint_url: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ContactVars {
    pub name: Option<String>,
    pub postcode: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConstituencyVars {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventVars {
    pub title: String,
    /// "Saturday 5 December 2026", in UK time.
    pub date: String,
    /// "7:30pm", in UK time (GMT or BST, as on the day).
    pub time: String,
    pub starts_at: DateTime<Utc>,
    pub venue: String,
    pub postcode: Option<String>,
}

impl EventVars {
    pub fn of(event: &Event) -> Self {
        let local = event.starts_at.with_timezone(&chrono_tz::Europe::London);
        Self {
            title: event.title.clone(),
            date: local.format("%A %-d %B %Y").to_string(),
            time: local.format("%-I:%M%P").to_string(),
            starts_at: event.starts_at,
            venue: event.venue.clone(),
            postcode: event.postcode.as_ref().map(|p| p.as_str().to_owned()),
        }
    }
}

impl MessageVars {
    /// What one recipient's message shows, with their own signed links under `base_url`, which
    /// name the campaign by its link tag.
    pub fn for_recipient(
        recipient: &Recipient,
        event: Option<&Event>,
        campaign: Option<&LinkTag>,
        keys: &SigningKeys,
        base_url: &str,
    ) -> Self {
        let base = base_url.trim_end_matches('/');
        let now = Utc::now();
        let link = |purpose, path| {
            let token = keys.sign_link(purpose, &recipient.public_id, campaign, now);
            format!("{base}/{path}/{}", token.as_str())
        };
        Self {
            contact: ContactVars {
                name: recipient.name.clone(),
                postcode: recipient.postcode.clone(),
            },
            constituency: ConstituencyVars {
                name: recipient.constituency.clone(),
            },
            event: event.map(EventVars::of),
            distance_miles: distance_miles(event, recipient),
            unsubscribe_url: link(Purpose::Unsubscribe, "u"),
            preferences_url: link(Purpose::Preferences, "p"),
            complaint_url: format!("{base}/complaint"),
        }
    }

    /// Values for a preview or a test send: the person's own, or sample ones, with links that
    /// open a page saying the message was a test, and change nothing.
    pub fn trial(recipient: Option<&Recipient>, event: Option<&Event>, base_url: &str) -> Self {
        let inert = format!("{}/{TRIAL_LINK_PATH}", base_url.trim_end_matches('/'));
        let mut vars = Self::sample(event);
        if let Some(recipient) = recipient {
            vars.contact = ContactVars {
                name: recipient.name.clone(),
                postcode: recipient.postcode.clone(),
            };
            vars.constituency = ConstituencyVars {
                name: recipient.constituency.clone(),
            };
            vars.distance_miles = distance_miles(event, recipient);
        }
        vars.unsubscribe_url = inert.clone();
        vars.preferences_url = inert;
        vars.complaint_url = format!("{}/complaint", base_url.trim_end_matches('/'));
        vars
    }

    /// Values for checking a campaign's templates, and for a preview when nobody qualifies.
    pub fn sample(event: Option<&Event>) -> Self {
        Self {
            contact: ContactVars {
                name: Some("Sam Sample".into()),
                postcode: Some("SG13 8EQ".into()),
            },
            constituency: ConstituencyVars {
                name: Some("Hertford and Stortford".into()),
            },
            event: event.map(EventVars::of),
            distance_miles: event.and_then(|e| e.postcode.as_ref()).map(|_| Some(3)),
            unsubscribe_url: "https://example.org/u/sample".into(),
            preferences_url: "https://example.org/p/sample".into(),
            complaint_url: "https://example.org/complaint".into(),
        }
    }
}

/// `{{distance_miles}}` for `recipient`: only for an event with a venue postcode.
fn distance_miles(event: Option<&Event>, recipient: &Recipient) -> Option<Option<u32>> {
    event.and_then(|e| e.postcode.as_ref())?;
    Some(recipient.miles_from_venue.map(|miles| miles.round() as u32))
}

/// The bodies of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bodies {
    pub html: String,
    pub text: String,
}

/// A campaign's compiled templates: the HTML one escapes values, the text one does not.
pub struct Templates {
    html: Handlebars<'static>,
    text: Option<Handlebars<'static>>,
}

fn invalid(part: &'static str, error: impl std::fmt::Display) -> TemplateError {
    TemplateError::Invalid {
        part,
        message: error.to_string(),
    }
}

/// Refuses what a campaign template has no use for and a hostile one could abuse: more than
/// [`MAX_TEMPLATE_BYTES`], blocks nested past [`MAX_NESTING`], and partials and inline
/// templates (`{{> name}}`, `{{#*inline}}`), which can call themselves for ever or double at
/// each level.
fn check_shape(part: &'static str, source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(invalid(
            part,
            format!(
                "{} bytes, over the limit of {MAX_TEMPLATE_BYTES}",
                source.len()
            ),
        ));
    }
    let mut depth: usize = 0;
    for (at, _) in source.match_indices("{{") {
        let inside = &source[at + 2..];
        // `{{{value}}}` and `{{&value}}` put a value in unescaped: in HTML, a name from the
        // public sign-up form could then carry markup into everyone's email.
        let opening = inside.trim_start_matches(|c: char| c == '~' || c.is_whitespace());
        if part != "text" && (opening.starts_with('{') || opening.starts_with('&')) {
            return Err(invalid(
                part,
                "{{{...}}} and {{&...}} would put a value in without escaping it; write {{...}}",
            ));
        }
        match inside.trim_start_matches('~').as_bytes().first() {
            Some(b'#') => depth += 1,
            Some(b'/') => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Sub-expressions, `(not (not ...))`, recurse in the parser and the renderer alike.
        let expression = &inside[..inside.find("}}").unwrap_or(inside.len())];
        let mut parentheses: usize = 0;
        for byte in expression.bytes() {
            match byte {
                b'(' => parentheses += 1,
                b')' => parentheses = parentheses.saturating_sub(1),
                _ => {}
            }
            if parentheses > MAX_NESTING {
                return Err(invalid(
                    part,
                    format!("sub-expressions nested more than {MAX_NESTING} deep"),
                ));
            }
        }
        if depth > MAX_NESTING {
            return Err(invalid(
                part,
                format!("blocks nested more than {MAX_NESTING} deep"),
            ));
        }
    }
    fn plain(template: &Template) -> bool {
        template.elements.iter().all(|element| match element {
            TemplateElement::PartialExpression(_)
            | TemplateElement::PartialBlock(_)
            | TemplateElement::DecoratorExpression(_)
            | TemplateElement::DecoratorBlock(_) => false,
            TemplateElement::HelperBlock(helper)
            | TemplateElement::Expression(helper)
            | TemplateElement::HtmlExpression(helper) => {
                helper.template.as_ref().is_none_or(plain)
                    && helper.inverse.as_ref().is_none_or(plain)
            }
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => true,
            // Whatever a later handlebars adds is refused until it is looked at.
            _ => false,
        })
    }
    let parsed = Template::compile(source).map_err(|e| invalid(part, e))?;
    if plain(&parsed) {
        Ok(())
    } else {
        Err(invalid(
            part,
            "partials and inline templates ({{> name}}, {{#*inline}}) are not taken",
        ))
    }
}

fn template(part: &'static str, source: &str) -> Result<Handlebars<'static>, TemplateError> {
    check_shape(part, source)?;
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    // `{{log contact.name}}` would write the person's name into the logs.
    registry.unregister_helper("log");
    if part == "text" {
        registry.register_escape_fn(handlebars::no_escape);
    }
    registry
        .register_template_string(part, source)
        .map_err(|e| invalid(part, e))?;
    Ok(registry)
}

/// How long compiling a campaign's templates (and rendering the sample) may take.
const COMPILE_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Templates {
    /// [`Templates::compile`] on a blocking thread, so that a large template does not hold an
    /// async worker of the service, given up after a few seconds.
    pub async fn compile_in_background(campaign: &NewCampaign) -> Result<Self, TemplateError> {
        let campaign = campaign.clone();
        in_background(move || Self::compile(&campaign)).await
    }

    /// What a new or changed campaign's templates must pass, on a blocking thread within the
    /// same time: they compile and render the sample ([`Templates::compile`]), and, when its
    /// audience can hold someone in no constituency (`placeless`), show no blank where a
    /// constituency goes ([`Templates::check_blanks`]).
    pub async fn check_in_background(
        campaign: &NewCampaign,
        placeless: bool,
    ) -> Result<(), TemplateError> {
        let campaign = campaign.clone();
        in_background(move || {
            let templates = Self::compile(&campaign)?;
            templates.check_distance_blank(&campaign)?;
            if placeless {
                templates.check_blanks(&campaign)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Compiles the campaign's templates and renders them once with sample values: a syntax
    /// error or a variable the campaign does not have is refused here. Without a text template,
    /// one is derived from the HTML template (converted to text once, placeholders and all)
    /// when it renders the sample exactly as converting each rendered message would; otherwise
    /// each message's HTML is converted as it is sent.
    pub fn compile(campaign: &NewCampaign) -> Result<Self, TemplateError> {
        let mut templates = Self {
            html: template("HTML", &campaign.html_template)?,
            text: campaign
                .text_template
                .as_deref()
                .map(|text| template("text", text))
                .transpose()?,
        };
        let sample = MessageVars::sample(campaign.event.as_ref());
        let (_, text) = templates.bodies(&sample)?;
        if templates.text.is_none() {
            templates.text = derived_text(&campaign.html_template, &sample, &text);
        }
        Ok(templates)
    }

    /// Refuses a template that shows `{{constituency.name}}` to everyone, with no
    /// `{{#if constituency.name}}` around it: people whose postcode places them in no
    /// constituency would read a blank where it goes. For an audience that can hold them.
    pub fn check_blanks(&self, campaign: &NewCampaign) -> Result<(), TemplateError> {
        const MARK: &str = "CANVASS-CONSTITUENCY-MARK";
        let shown_bare = self.shown_bare(campaign, MARK, |vars, shown| {
            vars.constituency.name = shown.then(|| MARK.into());
        })?;
        if shown_bare {
            Err(invalid(
                "HTML",
                "{{constituency.name}} would be blank for people this audience can hold whose \
                 postcode places them in no constituency (it reaches everyone, or a postcode \
                 area); write {{#if constituency.name}}{{constituency.name}}{{else}}your \
                 area{{/if}}, or aim it at constituencies only",
            ))
        } else {
            Ok(())
        }
    }

    /// Refuses a template that shows `{{distance_miles}}` with no `{{#if distance_miles}}`
    /// around it, for an event mailing that can reach someone whose postcode has no place on
    /// the map: one without a distance rule.
    pub fn check_distance_blank(&self, campaign: &NewCampaign) -> Result<(), TemplateError> {
        const MARK: u32 = 987_654_321;
        let placed = campaign.event.as_ref().and_then(|e| e.postcode.as_ref());
        if placed.is_none() || campaign.audience.near.is_some() {
            return Ok(());
        }
        let shown_bare = self.shown_bare(campaign, &MARK.to_string(), |vars, shown| {
            vars.distance_miles = Some(shown.then_some(MARK));
        })?;
        if shown_bare {
            Err(invalid(
                "HTML",
                "{{distance_miles}} would be blank for people whose postcode has no place on \
                 the map; write {{#if distance_miles}}{{distance_miles}} miles away{{/if}}, or \
                 reach only people within some miles of the venue",
            ))
        } else {
            Ok(())
        }
    }

    /// Whether the HTML shows a value `set` puts in (as `mark`) bare: present when it is,
    /// and the rest of the page the same when it is not.
    fn shown_bare(
        &self,
        campaign: &NewCampaign,
        mark: &str,
        set: impl Fn(&mut MessageVars, bool),
    ) -> Result<bool, TemplateError> {
        let mut shown = MessageVars::sample(campaign.event.as_ref());
        set(&mut shown, true);
        let mut blank = shown.clone();
        set(&mut blank, false);
        let html = |vars: &MessageVars| {
            self.html
                .render("HTML", vars)
                .map_err(|e| invalid("HTML", e))
        };
        let (with, without) = (html(&shown)?, html(&blank)?);
        Ok(with.contains(mark) && with.replace(mark, "") == without)
    }

    /// Renders one recipient's message: the template's bodies, then the footer every message
    /// carries, whatever the template says or hides (why the person gets it, both links, who
    /// sends it, the imprint).
    pub fn render(&self, vars: &MessageVars, footer: &Footer) -> Result<Bodies, TemplateError> {
        let (mut html, mut text) = self.bodies(vars)?;
        let footer_html = footer.html(vars);
        match html.rfind("</body>") {
            Some(at) => html.insert_str(at, &footer_html),
            None => html.push_str(&footer_html),
        }
        text.push_str(&footer.text(vars));
        Ok(Bodies { html, text })
    }

    /// The template's own bodies: HTML, and text (from its template, or converted).
    fn bodies(&self, vars: &MessageVars) -> Result<(String, String), TemplateError> {
        let html = self
            .html
            .render("HTML", vars)
            .map_err(|e| invalid("HTML", e))?;
        let text = match &self.text {
            Some(text) => text.render("text", vars).map_err(|e| invalid("text", e))?,
            None => {
                html2text::from_read(html.as_bytes(), TEXT_WIDTH).map_err(|e| invalid("HTML", e))?
            }
        };
        Ok((html, text))
    }
}

/// Runs `work` on a blocking thread, so that a large template does not hold an async worker of
/// the service, given up after [`COMPILE_TIME_LIMIT`].
pub(crate) async fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TemplateError> + Send + 'static,
) -> Result<T, TemplateError> {
    match tokio::time::timeout(COMPILE_TIME_LIMIT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(done)) => done,
        Ok(Err(panicked)) => Err(invalid("HTML", panicked)),
        Err(_) => Err(invalid(
            "HTML",
            format!(
                "took over {} s to compile and render",
                COMPILE_TIME_LIMIT.as_secs()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
