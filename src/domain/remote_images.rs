//! Images (and other resources) that a message's HTML would load from elsewhere: a campaign's
//! author could watch who opens it, the approver's preview included. The HTML is read by
//! html5ever's tokenizer, as a mail client would read it, so that character references
//! (`src="&#104;ttps:..."`), odd quoting and spacing hide nothing.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, CommentToken, EndTag, StartTag, TagToken, Token, TokenSink,
    TokenSinkResult, Tokenizer, TokenizerOpts,
};

/// The first resource `html` would load from elsewhere, as written: an image, a background, a
/// frame or object, a stylesheet, or a CSS `url(...)` or `@import`. A value that is a template
/// expression (`{{...}}`) counts: what it becomes is not known until sending.
pub fn first_remote_resource(html: &str) -> Option<String> {
    let sink = Finder::default();
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.found.into_inner()
}

#[derive(Default)]
struct Finder {
    found: RefCell<Option<String>>,
    in_style: RefCell<bool>,
}

/// Attributes whose value is a URL loaded without a click.
const LOADED: [&str; 8] = [
    "src",
    "srcset",
    "background",
    "poster",
    "data",
    "lowsrc",
    "dynsrc",
    "imagesrcset",
];

impl TokenSink for Finder {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if self.found.borrow().is_some() {
            return TokenSinkResult::Continue;
        }
        let found = match token {
            TagToken(tag) => {
                // The tokenizer gives tag and attribute names in lower case.
                let name: &str = &tag.name;
                if name == "style" {
                    *self.in_style.borrow_mut() = tag.kind == StartTag;
                }
                if tag.kind == EndTag {
                    None
                } else {
                    // Stylesheets and SVG images load from `href`; a link's `href` waits for
                    // a click.
                    let loads_href = matches!(name, "link" | "image" | "use" | "feimage");
                    tag.attrs.iter().find_map(|attr| {
                        let attribute: &str = &attr.name.local;
                        let value: &str = &attr.value;
                        match attribute {
                            "style" => remote_in_css(value),
                            "srcset" | "imagesrcset" => value
                                .split(',')
                                .filter_map(|candidate| candidate.split_whitespace().next())
                                .find(|url| is_remote(url))
                                .map(str::to_owned),
                            a if LOADED.contains(&a) => is_remote(value).then(|| value.to_owned()),
                            "href" | "xlink:href" if loads_href => {
                                is_remote(value).then(|| value.to_owned())
                            }
                            _ => None,
                        }
                    })
                }
            }
            CharacterTokens(text) if *self.in_style.borrow() => remote_in_css(&text),
            // Outlook reads the HTML in conditional comments (`<!--[if mso]>...<![endif]-->`).
            CommentToken(text) => first_remote_resource(&text),
            _ => None,
        };
        *self.found.borrow_mut() = found;
        TokenSinkResult::Continue
    }
}

/// Whether a URL loads from elsewhere: anything with a scheme but `data:` and `cid:` (parts of
/// the message itself), a protocol-relative `//host`, or a template expression.
fn is_remote(url: &str) -> bool {
    let url: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    if url.starts_with("//") || url.starts_with("\\\\") || url.contains("{{") {
        return true;
    }
    match url.split_once(':') {
        Some((scheme, _)) if !scheme.contains('/') => !matches!(scheme, "data" | "cid"),
        _ => false,
    }
}

/// The first remote `url(...)`, quoted URL (as `image-set()` takes them) or any `@import` in
/// CSS text, read after its escapes (`u\72l(` is `url(`) and without its comments.
fn remote_in_css(css: &str) -> Option<String> {
    let css = without_comments(&unescaped(css));
    let lower = css.to_ascii_lowercase();
    if lower.contains("@import") {
        return Some("@import".to_owned());
    }
    let in_url = lower.match_indices("url(").map(|(at, _)| {
        let rest = &css[at + 4..];
        let inner = rest.split(')').next().unwrap_or(rest);
        inner.trim().trim_matches(['"', '\''])
    });
    let quoted = css.split(['"', '\'']).skip(1).step_by(2);
    in_url
        .filter(|url| is_remote(url))
        .chain(quoted.filter(|text| looks_remote(text)))
        .next()
        .map(str::to_owned)
}

/// Whether a quoted CSS string is a URL from elsewhere (a font's name is not).
fn looks_remote(text: &str) -> bool {
    let text = text.trim().to_ascii_lowercase();
    ["http:", "https:", "//", "ftp:"]
        .iter()
        .any(|start| text.starts_with(start))
        || text.contains("{{")
}

/// CSS with its escapes read: `\75` or `\000075 ` is `u`, `\u` is `u`.
fn unescaped(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut hex = String::new();
        while hex.len() < 6
            && let Some(digit) = chars.next_if(char::is_ascii_hexdigit)
        {
            hex.push(digit);
        }
        if hex.is_empty() {
            out.extend(chars.next());
        } else {
            let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
            out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            chars.next_if(|c| c.is_whitespace());
        }
    }
    out
}

/// CSS without its `/* ... */` comments.
fn without_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_images_are_found_however_they_are_written() {
        for html in [
            r#"<p><img src="https://tracker.example/p.gif"></p>"#,
            r#"<IMG SRC = 'HTTP://tracker.example/p.gif'>"#,
            r#"<img src="&#104;ttps://tracker.example/p.gif">"#,
            r#"<img src=//tracker.example/p.gif>"#,
            r#"<img srcset="a.png 1x, https://tracker.example/p.gif 2x">"#,
            r#"<table background="https://tracker.example/bg.png"><tr><td>x</td></tr></table>"#,
            r#"<div style="background-image: url( 'https://tracker.example/bg.png' )">x</div>"#,
            r#"<style>p { background: url(https://tracker.example/bg.png) }</style>"#,
            r#"<style>@import "https://tracker.example/s.css";</style>"#,
            r#"<link rel="stylesheet" href="https://tracker.example/s.css">"#,
            r#"<svg><image href="https://tracker.example/p.svg"/></svg>"#,
            r#"<img src="{{unsubscribe_url}}">"#,
            r#"<iframe src="https://tracker.example/"></iframe>"#,
            r#"<div style="background:u\72l(https://tracker.example/p.png)">x</div>"#,
            r#"<style>div{background:\75rl(https://tracker.example/p.png)}</style>"#,
            r#"<div style="background-image:image-set('https://tracker.example/p.png' 1x)">"#,
            r#"<div style="background:-webkit-image-set(url(//tracker.example/p.png) 1x)">"#,
            r#"<div style="background:url/**/(https://tracker.example/p.png)">"#,
            r#"<!--[if mso]><img src="https://tracker.example/p.png"><![endif]-->"#,
            r#"<!--[if mso]><v:image src="https://tracker.example/p.png" /><![endif]-->"#,
        ] {
            assert!(first_remote_resource(html).is_some(), "{html}");
        }
    }

    #[test]
    fn links_and_images_carried_in_the_message_are_not_remote() {
        for html in [
            r#"<p><a href="https://hertford.example.org/event">Come along</a></p>"#,
            r#"<img src="data:image/png;base64,iVBORw0KGgo=" alt="">"#,
            r#"<img src="cid:logo@hertford.example.org" alt="">"#,
            r#"<p style="color: red">url(https://example.org) in plain words</p>"#,
            r#"<p style="font-family: 'Helvetica Neue', Arial">Hi</p>"#,
            "<!-- a note for the next author -->",
            "<p>Hello {{contact.name}}, see https://hertford.example.org</p>",
        ] {
            assert_eq!(first_remote_resource(html), None, "{html}");
        }
    }
}
