//! The preference centre in a real browser: headless Chromium driven through chromedriver.
//! Skipped, with a message, only where no browser is installed; under CI a skip is a failure
//! (`.ci/run` installs Debian's `chromium` and `chromium-driver`).

mod support;

use canvass::mail::token::Purpose;
use fantoccini::Locator;
use support::TestStore;
use support::app::{KEY_1, TestApp, granted};
use support::browser::{browser, click, open_browser, start_driver};

const PEOPLE: &str = "\
email,name,postcode,topics,consent_at
amira@example.org,Amira Hassan,SG13 8EQ,news;events,2026-09-14T18:30:00Z
";

#[tokio::test]
async fn a_person_changes_topics_and_postcode_then_unsubscribes_in_a_real_browser() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "amira@example.org").await;
    let driver = start_driver(&driver_path).await;
    let browser = open_browser(&driver, &chromium).await;

    browser.goto(&link).await.unwrap();
    // Basic accessibility: a language, a label for every control, text that fits a phone.
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), button')]\
               .filter(e => e.tagName === 'INPUT' ? e.labels.length === 0 : !e.textContent.trim())\
               .length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(unlabelled, serde_json::json!(0));
    let lang = browser
        .execute("return document.documentElement.lang", vec![])
        .await
        .unwrap();
    assert_eq!(lang, serde_json::json!("en-GB"));
    let overflows = browser
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflows,
        serde_json::json!(false),
        "no sideways scrolling on a phone"
    );
    // Labels are tied to their inputs: clicking the label's text ticks the box.
    click(&browser, "label[for=topic-events]").await;
    let postcode = browser.find(Locator::Id("postcode")).await.unwrap();
    postcode.clear().await.unwrap();
    postcode.send_keys("al1 1dg").await.unwrap();
    click(&browser, "button[value=save]").await;
    browser
        .wait()
        .for_element(Locator::Css(".notice[role=status]"))
        .await
        .unwrap();

    let export = app.export("amira@example.org").await;
    assert_eq!(granted(&export), ["news"], "events was unticked");
    assert_eq!(export.postcode.as_deref(), Some("AL1 1DG"));
    assert_eq!(
        export.constituency.map(|c| c.code).as_deref(),
        Some("E14900004")
    );
    let page = browser.source().await.unwrap();
    assert!(page.contains("St Albans (sample)"));

    click(&browser, "button[value=unsubscribe]").await;
    browser
        .wait()
        .for_element(Locator::XPath(
            "//h1[normalize-space()='You are unsubscribed']",
        ))
        .await
        .unwrap();
    let export = app.export("amira@example.org").await;
    assert!(export.consents.iter().all(|c| !c.granted));
    assert_eq!(
        export.suppression.map(|s| s.reason.as_str()),
        Some("unsubscribed")
    );

    browser.close().await.unwrap();
}
