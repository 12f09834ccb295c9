//! The staff console in a real browser (headless Chromium, 390 px wide): the whole journey of
//! a mailing (set a password, sign in, import, compose in Markdown, test send, a second person
//! approves, send to a real SMTP server, read the report) and the refusals a browser meets
//! (wrong password, throttled sign-in, a cross-site form, an expired session, a contact out of
//! scope, a viewer trying to write). Every page on the way passes axe-core's WCAG 2.2 A and AA
//! rules and fits a phone.

mod support;

use std::time::Duration;

use canvass::app::Actor;
use fantoccini::{Client, Locator};
use support::app::{KEY_1, TestApp};
use support::browser::{
    accessibility_violations, axe_source, browser, open_browser, overflows, start_driver, wait_for,
};
use support::console::PASSWORD;
use support::smtp::SmtpSink;
use support::{TestStore, letterhead};

const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n";

/// What the organiser imports: Excel's semicolons and CRLF; one row outside Stevenage.
const STALL: &str = "email;name;postcode;topics\r\n\
    ben@example.org;Ben Okafor;SG1 2AA;news\r\n\
    gita@example.org;Gita Rao;SG2 8TE;\"news;events\"\r\n\
    hal@example.org;Hal Jones;AL1 3JE;news\r\n";

/// A browser on the console, checking each page it lands on.
struct Staff<'a> {
    client: Client,
    base: String,
    axe: &'a str,
    /// Pages checked so far, for the message when one fails.
    checked: Vec<String>,
}

impl Staff<'_> {
    async fn goto(&mut self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.check().await;
    }

    /// The page passes axe and does not scroll sideways at 390 px.
    async fn check(&mut self) {
        let url = self.client.current_url().await.unwrap().to_string();
        let violations = accessibility_violations(&self.client, self.axe).await;
        if !violations.is_empty() {
            let source = self.client.source().await.unwrap();
            panic!("{url}:\n{}\n{source}", violations.join("\n"));
        }
        assert!(
            !overflows(&self.client).await,
            "{url} scrolls sideways at 390 px"
        );
        self.checked.push(url);
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks and checks the page that follows.
    async fn press(&mut self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.check().await;
    }

    async fn text(&self) -> String {
        self.client
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn sign_in(&mut self, email: &str, password: &str) {
        self.goto("/admin/login").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.press("form[action='/admin/login'] button").await;
    }

    async fn sign_out(&mut self) {
        self.press("form[action='/admin/logout'] button").await;
    }

    /// Follows a password link and sets the tests' password.
    async fn set_password(&mut self, link: &str) {
        let path = link
            .split_once("/admin/")
            .map(|(_, p)| format!("/admin/{p}"))
            .unwrap();
        self.goto(&path).await;
        self.fill("#password", PASSWORD).await;
        self.fill("#repeat", PASSWORD).await;
        self.press("main form button").await;
        assert!(self.text().await.contains("Your password is set"));
    }
}

/// Serves `page` from another origin (another port); its address.
async fn elsewhere(page: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}/")
}

/// The data protection officer's pages (the registers, a request's clock, a complaint, the
/// proof of a message, the dashboard's warning) and the public complaint page, each passing axe
/// at 390 px; the public page without JavaScript.
#[tokio::test]
async fn the_data_protection_officer_s_pages_in_a_real_browser() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
    let db = TestStore::sqlite().await;
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = TestApp::serve_at(db, KEY_1, None, "http://127.0.0.1").await;
    let service = app.db.app();
    let link = canvass::app::staff::add(
        &service,
        &Actor::Operator,
        "dpo@hq.example.org",
        "Dana Officer",
        "admin",
        &[],
    )
    .await
    .unwrap()
    .link;
    // An old complaint, overdue for its acknowledgement: the dashboard warns of it.
    let forty_days_ago = (chrono::Utc::now().date_naive() - chrono::Duration::days(40)).to_string();
    canvass::app::registers::log_complaint(
        &service,
        &Actor::Operator,
        &forty_days_ago,
        "letter",
        "Letter about an unwanted email",
        None,
        None,
    )
    .await
    .unwrap();

    let driver = start_driver(&driver_path).await;
    let mut staff = Staff {
        client: open_browser(&driver, &chromium).await,
        base: app.base.clone(),
        axe: &axe,
        checked: Vec::new(),
    };
    staff.set_password(&link).await;
    staff.sign_in("dpo@hq.example.org", PASSWORD).await;
    assert!(
        staff.text().await.contains("overdue"),
        "{}",
        staff.text().await
    );

    staff.goto("/admin/requests").await;
    staff.fill("#request-email", "amira@example.org").await;
    staff.press("form[action='/admin/requests'] button").await;
    let opened = staff.text().await;
    assert!(opened.contains("Opened"), "{opened}");
    staff.press("form[action$='/pause'] button").await;
    assert!(staff.text().await.contains("Paused"));
    staff.press("form[action$='/resume'] button").await;
    staff.fill("#close-outcome", "Sent her data by email").await;
    staff.press("form[action$='/close'] button").await;
    assert!(staff.text().await.contains("Closed"));
    staff.goto("/admin/requests?all=true").await;

    staff.goto("/admin/complaints").await;
    staff
        .fill("#complaint-summary", "Phoned: too many emails")
        .await;
    staff.press("form[action='/admin/complaints'] button").await;
    staff.press("form[action$='/acknowledge'] button").await;
    assert!(staff.text().await.contains("Acknowledged"));
    staff
        .goto("/admin/proof?message_id=%3Cnothing%40example.org%3E")
        .await;

    // The public page, as anyone: a form that works without script.
    staff.sign_out().await;
    staff.goto("/complaint").await;
    staff.fill("#complaint-email", "amira@example.org").await;
    staff
        .fill(
            "#complaint-summary",
            "I was emailed about something I never asked for",
        )
        .await;
    staff.press("form[action='/complaint'] button").await;
    assert!(
        staff.text().await.contains("your complaint is recorded"),
        "{}",
        staff.text().await
    );
    staff.client.close().await.unwrap();
}

#[tokio::test]
async fn the_whole_journey_and_its_refusals_in_a_real_browser() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let db = TestStore::sqlite().await;
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = TestApp::serve_at(db, KEY_1, Some(sink.url()), "http://127.0.0.1").await;
    let service = app.db.app();
    let add = |email: &'static str, role: &'static str, constituencies: Vec<String>| {
        let service = service.clone();
        async move {
            canvass::app::staff::add(
                &service,
                &Actor::Operator,
                email,
                &format!("{role} {email}"),
                role,
                &constituencies,
            )
            .await
            .unwrap()
            .link
        }
    };
    let olu_link = add("olu@hq.example.org", "organiser", vec!["E14900002".into()]).await;
    let admin_link = add("admin@hq.example.org", "admin", vec![]).await;
    let viewer_link = add("vic@hq.example.org", "viewer", vec![]).await;

    let driver = start_driver(&driver_path).await;
    let mut staff = Staff {
        client: open_browser(&driver, &chromium).await,
        base: app.base.clone(),
        axe: &axe,
        checked: Vec::new(),
    };

    // The organiser sets a password and signs in (after one mistyped attempt).
    staff.set_password(&olu_link).await;
    staff
        .sign_in("olu@hq.example.org", "not my password at all")
        .await;
    assert!(
        staff
            .text()
            .await
            .contains("that address and password do not match")
    );
    staff.sign_in("olu@hq.example.org", PASSWORD).await;
    assert!(staff.text().await.contains("Dashboard"));

    // Import a spreadsheet; the row outside Stevenage is listed as refused.
    let csv = app.db.file("stall.csv", STALL);
    staff.goto("/admin/import").await;
    staff
        .client
        .find(Locator::Id("file"))
        .await
        .unwrap()
        .send_keys(csv.to_str().unwrap())
        .await
        .unwrap();
    staff.fill("#source", "Street stall, 12 October").await;
    staff
        .client
        .execute(
            "document.getElementById('consented').value = '2026-10-12'",
            vec![],
        )
        .await
        .unwrap();
    staff.press("form[action='/admin/import'] button").await;
    staff
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//p[starts-with(normalize-space(), 'Done:')]",
        ))
        .await
        .unwrap();
    staff.check().await;
    let report = staff.text().await;
    assert!(
        report.contains("imported 2, updated 0, rejected 1"),
        "{report}"
    );
    assert!(report.contains("its postcode is not in your constituencies"));

    // The contacts page shows Stevenage alone: Amira (Hertford) is out of scope.
    staff.goto("/admin/contacts").await;
    let listed = staff.text().await;
    assert!(listed.contains("ben@example.org") && !listed.contains("amira@example.org"));
    let amira = app.public_id("amira@example.org").await;
    staff.goto(&format!("/admin/contacts/{amira}")).await;
    assert!(staff.text().await.contains("Not found"));
    let ben = app.public_id("ben@example.org").await;
    staff.goto(&format!("/admin/contacts/{ben}")).await;
    assert!(staff.text().await.contains("Consent history"));

    // Compose in Markdown.
    staff.goto("/admin/campaigns/new").await;
    staff.fill("#name", "Doorstep Saturday").await;
    staff.fill("#subject", "Join us on Saturday").await;
    staff
        .fill(
            "#body",
            "Dear {{contact.name}},\n\nWe knock on **doors** on Saturday.",
        )
        .await;
    // The live part counts and shows it as it is written.
    staff
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//section[@id='trial']//p[contains(., '2 people')]",
        ))
        .await
        .unwrap();
    staff.check().await;
    staff.press("form.stack button[type=submit]").await;
    let campaign_url = staff.client.current_url().await.unwrap().to_string();
    let page = staff.text().await;
    assert!(page.contains("2 people"), "{page}");
    assert!(page.contains("is not approved yet"));

    // A test message to the organiser's own address, through the real SMTP server.
    staff.press("form[action$='/test'] button").await;
    assert!(staff.text().await.contains("1 test message sent"));
    assert_eq!(
        staff.client.current_url().await.unwrap().as_str(),
        campaign_url,
        "after the button, the campaign's page: reloading it sends nothing again"
    );
    let tests = sink.messages();
    assert_eq!(tests.len(), 1);
    assert!(tests[0].contains("[Test] Join us on Saturday"));
    assert!(
        tests[0].contains("RCPT TO:<olu@hq.example.org>")
            || tests[0].contains("olu@hq.example.org")
    );

    staff.press("form[action$='/submit'] button").await;
    assert!(staff.text().await.contains("Waiting for approval"));
    // The admin, who may approve it, is told by email; the viewer and the author are not.
    let approvals = || -> Vec<String> {
        sink.messages()
            .into_iter()
            .filter(|m| m.contains("asks you to approve"))
            .collect()
    };
    for _ in 0..100 {
        if !approvals().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = approvals();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].contains("admin@hq.example.org"), "{}", asked[0]);
    assert_eq!(
        staff.client.current_url().await.unwrap().as_str(),
        campaign_url
    );
    staff.client.refresh().await.unwrap();
    staff.check().await;
    assert!(
        !staff.text().await.contains("told by email"),
        "a reload shows the page, not the message again"
    );
    staff.sign_out().await;

    // A viewer cannot write: the form is refused, nothing is made.
    staff.set_password(&viewer_link).await;
    staff.sign_in("vic@hq.example.org", PASSWORD).await;
    staff.goto("/admin/campaigns/new").await;
    staff.fill("#name", "Not allowed").await;
    staff.fill("#subject", "No").await;
    staff.fill("#body", "No").await;
    staff.press("form.stack button[type=submit]").await;
    assert!(staff.text().await.contains("Not allowed"));
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 1);
    staff.sign_out().await;

    // A second person approves what they read (the admin's own pages checked on the way).
    staff.set_password(&admin_link).await;
    staff.sign_in("admin@hq.example.org", PASSWORD).await;
    for page in [
        "/admin/staff",
        "/admin/audit?action=campaign",
        "/admin/topics",
        "/admin/suppressions?email=amira%40example.org",
        "/admin/account",
    ] {
        staff.goto(page).await;
    }
    staff.press("a[href='/admin/account/two-factor']").await;
    assert!(staff.text().await.contains("Scan this code"));
    // The request for approval waits on the admin's dashboard.
    staff.goto("/admin").await;
    let dashboard = staff.text().await;
    assert!(
        dashboard.contains("Waiting for your approval") && dashboard.contains("Doorstep Saturday"),
        "{dashboard}"
    );
    staff.press("a[href^='/admin/campaigns/']").await;
    staff.press("form[action$='/approve'] button").await;
    assert!(
        staff.text().await.contains("Approved"),
        "{}",
        staff.text().await
    );

    // An event near its venue: the day and time typed as a UK date and time, the distance
    // chosen, counted live, saved, and said in words.
    staff.goto("/admin/campaigns/new").await;
    staff.fill("#name", "Market stall").await;
    staff.fill("#subject", "Come to the stall").await;
    staff
        .fill(
            "#body",
            "{{#if distance_miles}}{{distance_miles}} miles away: {{/if}}the market stall.",
        )
        .await;
    staff.fill("#event_title", "Market stall").await;
    staff.fill("#event_venue", "Hertford market").await;
    staff.fill("#event_postcode", "SG13 8EQ").await;
    let day = (chrono::Utc::now() + chrono::Duration::days(10))
        .with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d")
        .to_string();
    // A date and a time field take what is typed in the browser's own order: set them as a
    // date picker does, and tell the form they changed.
    staff
        .client
        .execute(
            "document.getElementById('event_date').value = arguments[0]; \
             document.getElementById('event_time').value = '11:00'; \
             const miles = document.getElementById('within_miles'); \
             miles.value = '5'; \
             miles.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![serde_json::json!(day)],
        )
        .await
        .unwrap();
    staff
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//section[@id='trial']//p[contains(., 'within 5 miles of SG13 8EQ')]",
        ))
        .await
        .unwrap();
    staff.check().await;
    staff.press("form.stack button[type=submit]").await;
    let event_page = staff.text().await;
    assert!(
        event_page.contains("within 5 miles of SG13 8EQ") && event_page.contains("Market stall"),
        "{event_page}"
    );
    staff.sign_out().await;

    // The organiser sends it; the worker sends to the real SMTP server; the report counts it.
    staff.sign_in("olu@hq.example.org", PASSWORD).await;
    staff.client.goto(&campaign_url).await.unwrap();
    staff.check().await;
    // Send now asks first, on a page of its own, saying to how many.
    staff.press("a[href$='/queue']").await;
    let asked = staff.text().await;
    assert!(asked.contains("now to 2 people?"), "{asked}");
    assert_eq!(app.db.count("SELECT count(*) FROM deliveries").await, 0);
    staff.press("form[action$='/queue'] button").await;
    assert!(staff.text().await.contains("Queued for 2 people"));
    assert_eq!(
        staff.client.current_url().await.unwrap().as_str(),
        campaign_url
    );
    let mut worker = canvass::worker::Worker::new(
        app.db.store.clone(),
        canvass::worker::WorkerSettings {
            letterhead: canvass::mail::Letterhead {
                base_url: "http://127.0.0.1".into(),
                ..letterhead()
            },
            relays: canvass::mail::Transport::from_url(&sink.url())
                .unwrap()
                .into(),
            metrics: std::sync::Arc::new(canvass::metrics::Metrics::new()),
            sending: canvass::worker::Sending::default(),
        },
    );
    assert_eq!(worker.drain().await.unwrap().sent, 2);
    let received = sink.received_by_recipient();
    assert_eq!(received.get("ben@example.org"), Some(&1));
    assert_eq!(received.get("gita@example.org"), Some(&1));
    assert_eq!(received.get("amira@example.org"), None, "outside the scope");
    staff.client.goto(&campaign_url).await.unwrap();
    staff.check().await;
    let report = staff.text().await;
    assert!(
        report.contains("Report") && report.contains("Stevenage (sample)"),
        "{report}"
    );

    // A cross-site form is refused, and changes nothing.
    let before = app.db.dump().await;
    let forged = elsewhere(format!(
        "<!doctype html><title>Win a prize</title><form method=post action='{}/admin/logout'>\
         <input name=form_token value=x><button>Go</button></form>",
        app.base
    ))
    .await;
    staff.client.goto(&forged).await.unwrap();
    staff
        .client
        .find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = staff.client.source().await.unwrap();
    assert!(refused.contains("came from another site"), "{refused}");
    assert_eq!(app.db.dump().await, before);
    staff.client.goto(&campaign_url).await.unwrap();
    assert!(staff.text().await.contains("Report"), "still signed in");

    // An expired session sends the browser to sign in.
    app.db
        .execute("UPDATE staff_sessions SET last_seen_at = '2026-01-01T00:00:00Z'")
        .await;
    staff.client.goto(&campaign_url).await.unwrap();
    wait_for(&staff.client, "form[action='/admin/login']").await;

    // Too many tries for one address are refused, even with the right password.
    for _ in 0..5 {
        staff
            .sign_in("admin@hq.example.org", "wrong wrong wrong wrong")
            .await;
    }
    staff.sign_in("admin@hq.example.org", PASSWORD).await;
    assert!(staff.text().await.contains("too many sign-in attempts"));

    staff.client.close().await.unwrap();
    assert!(staff.checked.len() > 20, "{:?}", staff.checked);
}

/// The README's screenshots of the console, written to `docs/screenshots/`. Run by hand:
/// `cargo test --test console_browser screenshots -- --ignored`.
#[tokio::test]
#[ignore]
async fn screenshots_for_the_readme() {
    let Some((chromium, driver_path)) = browser() else {
        return;
    };
    let db = TestStore::sqlite().await;
    db.load_sample_directory().await;
    db.import_people(
        "email,name,postcode,topics,consent_at\n\
         amira@example.org,Amira Hassan,SG1 1HN,news;events,2026-09-14T18:30:00Z\n\
         ben@example.org,Ben Okafor,SG1 2AA,news,2026-09-14T18:30:00Z\n\
         chloe@example.org,Chloe Martin,SG2 8TE,news;volunteering,2026-09-15T10:00:00Z\n\
         dev@example.org,Dev Patel,SG2 7AB,events,2026-09-16T09:00:00Z\n",
    )
    .await;
    let app = TestApp::serve_at(db, KEY_1, None, "http://127.0.0.1").await;
    let service = app.db.app();
    let link = canvass::app::staff::add(
        &service,
        &Actor::Operator,
        "olu@hq.example.org",
        "Olu Adeyemi",
        "organiser",
        &["E14900002".to_owned()],
    )
    .await
    .unwrap()
    .link;
    let secret = support::console::link_secret(&link);
    canvass::app::staff::set_password(&service, secret, PASSWORD, PASSWORD, None)
        .await
        .unwrap();
    let driver = start_driver(&driver_path).await;
    let client = open_browser(&driver, &chromium).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shoot = |name: &'static str| {
        let client = client.clone();
        let path = dir.join(format!("{name}.png"));
        async move {
            tokio::time::sleep(Duration::from_millis(800)).await;
            std::fs::write(path, client.screenshot().await.unwrap()).unwrap();
        }
    };
    client.set_window_size(1280, 900).await.unwrap();
    client
        .goto(&format!("{}/admin/login", app.base))
        .await
        .unwrap();
    shoot("sign-in").await;
    for (field, value) in [("#email", "olu@hq.example.org"), ("#password", PASSWORD)] {
        client
            .find(Locator::Css(field))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    client
        .find(Locator::Css("form[action='/admin/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#stats table").await;
    shoot("dashboard").await;
    client
        .goto(&format!("{}/admin/contacts", app.base))
        .await
        .unwrap();
    shoot("contacts").await;
    client
        .goto(&format!("{}/admin/campaigns/new", app.base))
        .await
        .unwrap();
    client
        .find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("Doorstep Saturday")
        .await
        .unwrap();
    client
        .find(Locator::Id("subject"))
        .await
        .unwrap()
        .send_keys("Join us on Saturday")
        .await
        .unwrap();
    client
        .find(Locator::Id("body"))
        .await
        .unwrap()
        .send_keys("Dear {{contact.name}},\n\nWe knock on **doors** around Stevenage on Saturday at 10.\n\nSee you there!")
        .await
        .unwrap();
    wait_for(&client, "#trial iframe").await;
    client
        .execute("document.getElementById('trial').scrollIntoView()", vec![])
        .await
        .unwrap();
    shoot("composer").await;
    client
        .find(Locator::Css("form.stack button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "form[action$='/submit']").await;
    shoot("campaign").await;
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{}/admin", app.base)).await.unwrap();
    wait_for(&client, "#stats table").await;
    shoot("dashboard-phone").await;
    client.close().await.unwrap();
}
