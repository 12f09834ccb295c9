//! The templates' checks: what each refuses, and what a message comes out as.

use chrono::TimeZone;

use super::*;
use crate::domain::Publisher;
use crate::domain::{Audience, TopicSlug};

fn campaign(html: &str, text: Option<&str>, event: bool) -> NewCampaign {
    NewCampaign {
        name: "Test".into(),
        topic: TopicSlug::parse("news").unwrap(),
        subject: "Hello".into(),
        html_template: html.into(),
        text_template: text.map(Into::into),
        markdown: None,
        from: None,
        reply_to: None,
        election_material: false,
        audience: Audience::default(),
        event: event.then(|| Event {
            title: "Hustings".into(),
            starts_at: Utc.with_ymd_and_hms(2026, 12, 5, 19, 30, 0).unwrap(),
            venue: "Corn Exchange".into(),
            postcode: None,
        }),
    }
}

#[test]
fn markdown_is_escaped_laid_out_inlined_and_keeps_its_values() {
    let html = markdown_template(
        "# News for {{contact.name}}\n\n<script>alert(1)</script> <b>bold</b>\n\n\
         [safe](https://example.org) [evil](javascript:alert(1))\n",
    )
    .unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;"),
        "raw HTML is shown, escaped: {html}"
    );
    assert!(!html.contains("javascript:"), "{html}");
    assert!(html.contains("href=\"https://example.org\""), "{html}");
    assert!(html.contains("{{contact.name}}"), "{html}");
    assert!(!html.contains("<style"), "the CSS is inlined: {html}");
    assert!(html.contains("<h1 style=\""), "{html}");
    assert!(html.contains("max-width: 600px"), "the layout: {html}");

    let mut campaign = campaign(&html, None, false);
    campaign.markdown = Some("# News".into());
    let templates = Templates::compile(&campaign).unwrap();
    let publisher = Publisher {
        organisation: "Hertford Labour".into(),
        ..Publisher::default()
    };
    let footer = Footer {
        publisher: &publisher,
        topic: "News",
    };
    let bodies = templates
        .render(&MessageVars::sample(None), &footer)
        .unwrap();
    assert!(
        bodies.html.contains("News for Sam Sample"),
        "{}",
        bodies.html
    );
    assert!(
        bodies.text.contains("News for Sam Sample"),
        "{}",
        bodies.text
    );
    assert!(
        bodies.text.contains("Unsubscribe"),
        "the footer: {}",
        bodies.text
    );
    assert!(
        !bodies.text.contains("<h1") && !bodies.text.contains("style="),
        "text, not markup: {}",
        bodies.text
    );
}

#[test]
fn no_template_may_put_a_value_in_unescaped_whatever_the_spelling() {
    let compiled = |markdown: &str| {
        let html = markdown_template(markdown)?;
        Templates::compile(&campaign(&html, None, false)).map(|_| ())
    };
    for unescaped in [
        "Hi {{{contact.name}}}",
        "Hi {{&contact.name}}",
        "Hi &#123;&#123;{contact.name}}}",
        "Hi {{\\{contact.name}}}",
        "Hi &lbrace;&lbrace;&lbrace;contact.name}}}",
    ] {
        assert!(compiled(unescaped).is_err(), "{unescaped}");
    }
    for html in ["<p>{{{contact.name}}}</p>", "<p>{{~ &contact.name}}</p>"] {
        assert!(
            Templates::compile(&campaign(html, None, false)).is_err(),
            "{html}"
        );
    }
    // The text part escapes nothing anyway.
    assert!(Templates::compile(&campaign("<p>x</p>", Some("{{{contact.name}}}"), false)).is_ok());
}

#[test]
fn deep_or_wide_markdown_is_refused_before_it_is_rendered() {
    for deep in [
        format!("{} x", ">".repeat(20_000)),
        format!("{} x", "> ".repeat(40)),
        (0..200)
            .map(|i| format!("{}- x\n", "  ".repeat(i)))
            .collect(),
        format!("|{}\n|{}\n", "a|".repeat(100), "-|".repeat(100)),
        "x".repeat(MAX_MARKDOWN_BYTES + 1),
    ] {
        assert!(markdown_template(&deep).is_err());
    }
    // Emphasis and links nest within a paragraph too.
    assert!(markdown_template(&format!("{}x{}", "*".repeat(20_000), "*".repeat(20_000))).is_err());
    assert!(markdown_template(&"*a ".repeat(5_000)).is_err());
    assert!(markdown_template(&"[".repeat(20_000)).is_err());
    assert!(markdown_template("> quoted\n> > twice\n\n- a\n  - b\n").is_ok());
}

#[test]
fn a_constituency_shown_to_everyone_is_refused_and_one_guarded_is_taken() {
    let check = |html: &str| {
        let campaign = campaign(html, None, false);
        Templates::compile(&campaign)
            .unwrap()
            .check_blanks(&campaign)
    };
    assert!(check("<p>News from {{constituency.name}}</p>").is_err());
    assert!(
        check("<p>News from {{#if constituency.name}}{{constituency.name}}{{else}}your area{{/if}}</p>")
            .is_ok()
    );
    assert!(check("<p>Hello {{contact.name}}</p>").is_ok());
}

#[test]
fn a_syntax_error_or_unknown_variable_is_refused_when_compiled() {
    assert!(Templates::compile(&campaign("<p>{{#if}}</p>", None, false)).is_err());
    assert!(Templates::compile(&campaign("<p>{{contact.nmae}}</p>", None, false)).is_err());
    assert!(Templates::compile(&campaign("<p>{{event.title}}</p>", None, false)).is_err());
    assert!(Templates::compile(&campaign("<p>{{event.title}}</p>", None, true)).is_ok());
    assert!(Templates::compile(&campaign("<p>x</p>", Some("{{oops}}"), false)).is_err());
}

#[test]
fn partials_huge_and_deeply_nested_templates_are_refused_before_rendering() {
    for hostile in [
        // Calls itself for ever: overflowed the stack of `serve` and aborted the process.
        r#"{{#*inline "x"}}a{{> x}}{{/inline}}{{> x}}"#.to_owned(),
        // Doubles at each level: 2^30 copies.
        (1..=30).fold(r#"{{#*inline "p0"}}ab{{/inline}}"#.to_owned(), |t, i| {
            format!(
                r#"{t}{{{{#*inline "p{i}"}}}}{{{{> p{}}}}}{{{{> p{}}}}}{{{{/inline}}}}"#,
                i - 1,
                i - 1
            )
        }) + "{{> p30}}",
        "{{#if contact.name}}".repeat(100_000) + &"{{/if}}".repeat(100_000),
        // Sub-expressions nested thousands deep overflowed the stack of `serve` too.
        format!(
            "{{{{#if {}contact.name{}}}}}x{{{{/if}}}}",
            "(not ".repeat(3000),
            ")".repeat(3000)
        ),
        format!(
            "{{{{{}contact \"name\"{}}}}}",
            "(lookup ".repeat(3000),
            ")".repeat(3000)
        ),
        "x".repeat(MAX_TEMPLATE_BYTES + 1),
        "{{> unsubscribe}}".to_owned(),
    ] {
        let shown: String = hostile.chars().take(40).collect();
        assert!(
            Templates::compile(&campaign(&hostile, None, false)).is_err(),
            "{shown}"
        );
        assert!(
            Templates::compile(&campaign("<p>x</p>", Some(&hostile), false)).is_err(),
            "text: {shown}"
        );
    }
    let nested = "{{#if contact.name}}".repeat(10) + "x" + &"{{/if}}".repeat(10);
    assert!(Templates::compile(&campaign(&nested, None, false)).is_ok());
}

#[test]
fn the_log_helper_is_refused_so_that_templates_cannot_log_a_name() {
    let logging = campaign("<p>{{log contact.name}}</p>", None, false);
    assert!(Templates::compile(&logging).is_err());
    let logging = campaign(
        "<p>x</p>",
        Some("{{log contact.name level=\"error\"}}"),
        false,
    );
    assert!(Templates::compile(&logging).is_err());
}

fn publisher() -> Publisher {
    Publisher {
        organisation: "Hertford & Stortford Labour".into(),
        postal_address: Some("1 Fore Street, Hertford SG14 1AA".into()),
        imprint: Some("Promoted by A. Agent on behalf of H&S Labour".into()),
        privacy_url: Some("https://hertford.example.org/privacy".into()),
    }
}

fn footer(publisher: &Publisher) -> Footer<'_> {
    Footer {
        publisher,
        topic: "Events",
    }
}

/// The law's part of every message, in both parts, whatever the template hides.
#[test]
fn every_message_says_who_sends_it_why_and_how_to_leave() {
    let hiding = "<html><body>{{#if false}}{{unsubscribe_url}}{{preferences_url}}{{/if}}\
                  <p>Hi</p></body></html>";
    let templates = Templates::compile(&campaign(hiding, None, false)).unwrap();
    let vars = MessageVars::sample(None);
    let publisher = publisher();
    let bodies = templates.render(&vars, &footer(&publisher)).unwrap();
    for (part, body, organisation, imprint) in [
        (
            "html",
            &bodies.html,
            "Hertford &amp; Stortford Labour",
            "on behalf of H&amp;S Labour",
        ),
        (
            "text",
            &bodies.text,
            "Hertford & Stortford Labour",
            "on behalf of H&S Labour",
        ),
    ] {
        for needle in [
            "about Events",
            organisation,
            "1 Fore Street, Hertford SG14 1AA",
            imprint,
            "https://hertford.example.org/privacy",
            "https://example.org/u/sample",
            "https://example.org/p/sample",
        ] {
            assert!(body.contains(needle), "{part} lacks {needle}: {body}");
        }
    }
    assert!(bodies.html.find("Fore Street").unwrap() < bodies.html.find("</body>").unwrap());
}

#[test]
fn values_are_escaped_in_html_and_links_are_always_there() {
    let templates =
        Templates::compile(&campaign("<p>Dear {{contact.name}}</p>", None, false)).unwrap();
    let mut vars = MessageVars::sample(None);
    vars.contact.name = Some("<b>Bob</b> & co".into());
    let bodies = templates.render(&vars, &footer(&publisher())).unwrap();
    assert!(bodies.html.contains("Dear &lt;b&gt;Bob&lt;/b&gt; &amp; co"));
    assert!(bodies.html.contains("https://example.org/u/sample"));
    assert!(bodies.html.contains("https://example.org/p/sample"));
    assert!(
        bodies.text.contains("Dear <b>Bob</b> & co"),
        "{}",
        bodies.text
    );
    assert!(bodies.text.contains("https://example.org/u/sample"));
    assert!(bodies.text.contains("https://example.org/p/sample"));
}

#[test]
fn the_text_derived_once_reads_as_converting_each_message_would() {
    for (file, event) in [("newsletter.html", false), ("event.html", true)] {
        let path = format!("{}/examples/templates/{file}", env!("CARGO_MANIFEST_DIR"));
        let html = std::fs::read_to_string(path).unwrap();
        let campaign = campaign(&html, None, event);
        let templates = Templates::compile(&campaign).unwrap();
        assert!(
            templates.text.is_some(),
            "{file}: a text template was derived"
        );
        let mut vars = MessageVars::sample(campaign.event.as_ref());
        vars.contact.name = Some("Ben <b>O'Kafor</b> & co * _x_".into());
        vars.unsubscribe_url = "https://links.example.org/u/AbC-123_x".into();
        let (html, text) = templates.bodies(&vars).unwrap();
        let converted = html2text::from_read(html.as_bytes(), TEXT_WIDTH).unwrap();
        assert_eq!(text, converted, "{file}");
    }
}

#[test]
fn an_event_mailing_shows_the_event() {
    let templates = Templates::compile(&campaign(
        "<p>{{event.title}} on {{event.date}} at {{event.venue}}</p>",
        Some("{{event.title}}, {{event.time}} <{{unsubscribe_url}}> {{preferences_url}}"),
        true,
    ))
    .unwrap();
    let event = campaign("", None, true).event;
    let bodies = templates
        .render(&MessageVars::sample(event.as_ref()), &footer(&publisher()))
        .unwrap();
    assert!(
        bodies
            .html
            .contains("Hustings on Saturday 5 December 2026 at Corn Exchange")
    );
    assert!(
        bodies.text.starts_with(
            "Hustings, 7:30pm <https://example.org/u/sample> https://example.org/p/sample\n\n--\n"
        ),
        "{}",
        bodies.text
    );
}

#[test]
fn event_times_are_shown_in_uk_time() {
    let at = |s: &str| Event {
        title: "Fete".into(),
        starts_at: s.parse().unwrap(),
        venue: "Green".into(),
        postcode: None,
    };
    let winter = EventVars::of(&at("2026-12-05T19:30:00Z"));
    assert_eq!(
        (winter.date.as_str(), winter.time.as_str()),
        ("Saturday 5 December 2026", "7:30pm")
    );
    // British Summer Time: an hour ahead of UTC.
    let summer = EventVars::of(&at("2026-07-04T23:30:00Z"));
    assert_eq!(
        (summer.date.as_str(), summer.time.as_str()),
        ("Sunday 5 July 2026", "12:30am")
    );
}
