//! The preference centre in a real browser: headless Chromium driven through chromedriver.
//! Skipped, with a message, only where no browser is installed; under CI a skip is a failure
//! (`.ci/run` installs Debian's `chromium` and `chromium-driver`).

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canvass::token::Purpose;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use support::TestStore;
use support::app::{KEY_1, TestApp, granted};

const PEOPLE: &str = "\
email,name,postcode,topics,consent_at
amira@example.org,Amira Hassan,SG13 8EQ,news;events,2026-09-14T18:30:00Z
";

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_owned)
}

/// The browser and its driver, or `None` (with a message) where they are not installed.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = find(&[
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no Chromium or chromedriver under CI: the browser test must run there"
            );
            eprintln!("SKIPPED: install chromium and chromium-driver to run the browser test");
            None
        }
    }
}

async fn start_driver(path: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start listening");
}

async fn open_browser(driver: &Driver, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=390,844"],
        }),
    );
    // chromedriver listens on plain HTTP on this machine: no TLS stack is needed.
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver opens a session")
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

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
