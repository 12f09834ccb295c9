//! The public links over real HTTP: the service on a free port, a real client, a real database
//! (SQLite, and PostgreSQL when `CANVASS_TEST_POSTGRES_URL` is set).

mod support;

use canvass::domain::{Email, PublicId};
use canvass::mail::token::{Purpose, SigningKeys};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use support::app::{KEY_1, KEY_2, TestApp, granted};
use support::{TestStore, on_both_backends};

const PEOPLE: &str = "\
email,name,postcode,topics,consent_at
amira@example.org,Amira Hassan,SG13 8EQ,news;events,2026-09-14T18:30:00Z
ben@example.org,<script>alert('x')</script> & Co,AL1 3JE,campaigns,2026-09-14T18:30:00Z
";

const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

on_both_backends!(
    opening_the_unsubscribe_link_changes_nothing,
    one_click_post_unsubscribes_from_everything_without_redirect_or_cookie,
    bad_tokens_are_refused_and_change_nothing,
    a_link_signed_with_a_rotated_out_key_still_works_while_the_key_is_listed,
    a_link_for_an_erased_person_says_nothing_is_held,
    the_preference_centre_saves_topics_and_postcode,
    a_bad_postcode_or_a_grant_after_unsubscribing_changes_nothing,
    the_preference_centre_downloads_and_erases_the_persons_data,
);

async fn post_one_click(app: &TestApp, url: &str) -> reqwest::Response {
    app.client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(ONE_CLICK)
        .send()
        .await
        .unwrap()
}

async fn post_form(app: &TestApp, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    app.client
        .post(url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn get_text(app: &TestApp, url: &str) -> String {
    app.client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Checks the answer's status and that its page says `text`.
async fn assert_page(response: reqwest::Response, status: StatusCode, text: &str) {
    assert_eq!(response.status(), status);
    let page = response.text().await.unwrap();
    assert!(page.contains(text), "{page}");
}

async fn opening_the_unsubscribe_link_changes_nothing(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Unsubscribe, "amira@example.org").await;
    let before = app.db.dump().await;

    let response = app.client.get(&link).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("You will get no more emails from Hertford &amp; &lt;Stortford&gt; Labour"),
        "{page}"
    );
    assert!(page.contains("<button"));
    assert_eq!(app.db.dump().await, before);
}

async fn one_click_post_unsubscribes_from_everything_without_redirect_or_cookie(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Unsubscribe, "amira@example.org").await;

    let response = post_one_click(&app, &link).await;

    assert!(response.headers().get(LOCATION).is_none());
    assert!(response.headers().get(SET_COOKIE).is_none());
    assert_page(response, StatusCode::OK, "You are unsubscribed").await;
    let export = app.export("amira@example.org").await;
    assert_eq!(export.consents.len(), 4, "a withdrawal for every topic");
    assert!(export.consents.iter().all(|c| !c.granted));
    assert!(
        export
            .consent_history
            .iter()
            .filter(|e| !e.granted)
            .all(|e| e.source == "unsubscribe-link" && e.ip.as_deref() == Some("127.0.0.1"))
    );
    assert_eq!(
        export.suppression.map(|s| s.reason.as_str()),
        Some("unsubscribed")
    );
    assert!(
        export
            .audit
            .iter()
            .any(|a| a.action == "contact.unsubscribed" && a.ip.as_deref() == Some("127.0.0.1"))
    );
    // Ben is untouched.
    let ben = app.export("ben@example.org").await;
    assert!(ben.suppression.is_none());

    let after_first = app.db.dump().await;
    let again = post_one_click(&app, &link).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.db.dump().await, after_first, "repeating it is harmless");
}

async fn bad_tokens_are_refused_and_change_nothing(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let id = app.public_id("amira@example.org").await;
    let good = app.keys.sign(Purpose::Unsubscribe, &id);
    let good = good.as_str();
    let mut tampered = good.to_owned();
    let middle = good.len() / 2;
    let swapped = if &good[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(middle..=middle, swapped);
    let foreign: SigningKeys = KEY_2.parse().unwrap();
    let same_kid_other_secret: SigningKeys = "k1:YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQ="
        .parse()
        .unwrap();
    let preferences = app.keys.sign(Purpose::Preferences, &id);
    let cases = [
        ("tampered", format!("u/{tampered}")),
        ("truncated", format!("u/{}", &good[..good.len() - 3])),
        (
            "foreign key",
            format!("u/{}", foreign.sign(Purpose::Unsubscribe, &id).as_str()),
        ),
        (
            "same key id, other secret",
            format!(
                "u/{}",
                same_kid_other_secret
                    .sign(Purpose::Unsubscribe, &id)
                    .as_str()
            ),
        ),
        ("wrong purpose", format!("u/{}", preferences.as_str())),
        ("wrong purpose", format!("p/{good}")),
        ("oversized", format!("u/{}", good.repeat(20))),
        ("garbage", "u/%3Cscript%3E".to_owned()),
    ];
    let before = app.db.dump().await;
    for (what, path) in &cases {
        let url = format!("{}/{path}", app.base);
        let get = app.client.get(&url).send().await.unwrap();
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND].contains(&get.status()),
            "GET {what}: {}",
            get.status()
        );
        let post = post_one_click(&app, &url).await;
        assert!(
            [StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND].contains(&post.status()),
            "POST {what}: {}",
            post.status()
        );
        assert!(post.headers().get(SET_COOKIE).is_none());
    }
    assert_eq!(app.db.dump().await, before, "no table changed");
}

async fn a_link_signed_with_a_rotated_out_key_still_works_while_the_key_is_listed(db: TestStore) {
    let app = TestApp::start(db, &format!("{KEY_2},{KEY_1}"), PEOPLE).await;
    let id = app.public_id("amira@example.org").await;
    let old_keys: SigningKeys = KEY_1.parse().unwrap();
    let old_link = format!(
        "{}/u/{}",
        app.base,
        old_keys.sign(Purpose::Unsubscribe, &id).as_str()
    );

    let response = post_one_click(&app, &old_link).await;

    assert_eq!(response.status(), StatusCode::OK);
    let suppressed = app
        .db
        .count("SELECT count(*) FROM suppressions WHERE reason = 'unsubscribed'")
        .await;
    assert_eq!(suppressed, 1);
    // New links are signed with the new key, and work.
    let new_link = app.link(Purpose::Preferences, "ben@example.org").await;
    assert!(app.keys.signing().kid() == "k2");
    assert_eq!(
        app.client.get(&new_link).send().await.unwrap().status(),
        StatusCode::OK
    );
}

async fn a_link_for_an_erased_person_says_nothing_is_held(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let unsubscribe = app.link(Purpose::Unsubscribe, "amira@example.org").await;
    let preferences = app.link(Purpose::Preferences, "amira@example.org").await;
    app.db
        .store
        .erase_contact(
            &Email::parse("amira@example.org").unwrap(),
            &canvass::domain::Actor::Operator,
        )
        .await
        .unwrap();
    let before = app.db.dump().await;

    for response in [
        app.client.get(&unsubscribe).send().await.unwrap(),
        post_one_click(&app, &unsubscribe).await,
        app.client.get(&preferences).send().await.unwrap(),
        post_form(&app, &preferences, &[("action", "save"), ("topic", "news")]).await,
    ] {
        assert_page(response, StatusCode::OK, "We hold nothing about you").await;
    }
    assert_eq!(app.db.dump().await, before);
}

async fn the_preference_centre_saves_topics_and_postcode(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "amira@example.org").await;
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("lang=\"en-GB\""));
    assert!(page.contains("Hertford and Stortford (sample)"), "{page}");
    assert!(page.contains(r#"<label for="topic-news">"#));

    // Amira had news and events: she drops events, adds volunteering and moves to St Albans.
    let response = post_form(
        &app,
        &link,
        &[
            ("topic", "news"),
            ("topic", "volunteering"),
            ("postcode", "al1 1dg"),
            ("action", "save"),
        ],
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("Your choices are saved"));
    assert!(page.contains("St Albans (sample)"));
    let export = app.export("amira@example.org").await;
    assert_eq!(granted(&export), ["news", "volunteering"]);
    assert_eq!(export.postcode.as_deref(), Some("AL1 1DG"));
    assert_eq!(
        export.constituency.map(|c| c.code),
        Some("E14900004".to_owned())
    );
    let volunteering = export
        .consent_history
        .iter()
        .find(|e| e.topic == "volunteering")
        .unwrap();
    assert_eq!(volunteering.source, "preference-centre");
    assert_eq!(volunteering.ip.as_deref(), Some("127.0.0.1"));

    // Saving the same choices again records nothing more.
    let before = app.db.dump().await;
    post_form(
        &app,
        &link,
        &[
            ("topic", "news"),
            ("topic", "volunteering"),
            ("postcode", "AL1 1DG"),
        ],
    )
    .await;
    assert_eq!(app.db.dump().await, before);
}

async fn a_bad_postcode_or_a_grant_after_unsubscribing_changes_nothing(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "amira@example.org").await;
    let before = app.db.dump().await;

    let response = post_form(
        &app,
        &link,
        &[("topic", "news"), ("postcode", "NOT A CODE")],
    )
    .await;
    assert_page(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not one we recognise",
    )
    .await;
    assert_eq!(app.db.dump().await, before);

    let response = post_form(&app, &link, &[("action", "unsubscribe")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let unsubscribed = app.db.dump().await;
    assert_ne!(unsubscribed, before);

    let response = post_form(&app, &link, &[("topic", "news"), ("postcode", "SG13 8EQ")]).await;
    assert_page(response, StatusCode::CONFLICT, "Sign up again").await;
    assert_eq!(app.db.dump().await, unsubscribed);
}

async fn the_preference_centre_downloads_and_erases_the_persons_data(db: TestStore) {
    let app = TestApp::start(db, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "ben@example.org").await;

    let download = post_form(&app, &link, &[("action", "download")]).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let export: serde_json::Value = download.json().await.unwrap();
    assert_eq!(export["email"], "ben@example.org");
    assert_eq!(export["name"], "<script>alert('x')</script> & Co");

    let before = app.db.dump().await;
    let confirm = post_form(&app, &link, &[("action", "erase")]).await;
    assert_page(confirm, StatusCode::OK, "Yes, erase my data").await;
    assert_eq!(
        app.db.dump().await,
        before,
        "asking to erase only asks to confirm"
    );

    let erased = post_form(&app, &link, &[("action", "erase-confirmed")]).await;
    assert_page(erased, StatusCode::OK, "Your data is erased").await;
    let dump = app.db.dump().await;
    assert!(!dump.contains("ben@example.org"));
    assert!(!dump.contains("alert"));
    let ben = Email::parse("ben@example.org").unwrap();
    assert!(app.db.store.export_contact(&ben).await.unwrap().is_none());
    assert_eq!(
        app.db
            .store
            .suppression(&ben.hash())
            .await
            .unwrap()
            .map(|s| s.reason.as_str()),
        Some("erased")
    );
}

#[tokio::test]
async fn html_in_a_name_comes_out_escaped() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "ben@example.org").await;

    let page = get_text(&app, &link).await;

    assert!(
        page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co"),
        "{page}"
    );
    assert!(!page.contains("<script>"));
}

#[tokio::test]
async fn health_and_metrics_answer_and_metrics_never_show_a_token() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let link = app.link(Purpose::Unsubscribe, "amira@example.org").await;
    post_one_click(&app, &link).await;

    let metrics = metrics_of(&app).await;

    assert!(
        metrics.contains("canvass_unsubscribes_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/u/{token}""#), "{metrics}");
    // Made-up methods are counted under one label, not one series each.
    for n in 0..20 {
        let method = reqwest::Method::from_bytes(format!("XQZ{n}").as_bytes()).unwrap();
        let _ = app
            .client
            .request(method, format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
    }
    let metrics = metrics_of(&app).await;
    assert!(!metrics.contains("XQZ"), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    let token = link.rsplit('/').next().unwrap();
    assert!(!metrics.contains(token));
}

/// The service's `/metrics`, read with its token.
async fn metrics_of(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(support::app::METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `/metrics` tells of sign-in failures and operations: on the public address it answers only
/// the bearer token configured, and with none configured it is not there at all; on an address
/// of its own it answers without one.
#[tokio::test]
async fn metrics_are_read_only_with_their_token_or_on_their_own_address() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let url = format!("{}/metrics", app.base);
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("metrics-reader-secreT"), StatusCode::UNAUTHORIZED),
        (Some(""), StatusCode::UNAUTHORIZED),
        (Some(support::app::METRICS_TOKEN), StatusCode::OK),
    ] {
        let mut request = app.client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), status, "{token:?}");
    }

    for listen in [None, Some("127.0.0.1:0".parse().unwrap())] {
        let db = TestStore::sqlite().await;
        let service = canvass::http::Application::build(canvass::http::ServiceSettings {
            app: db.app(),
            keys: KEY_1.parse().unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: std::sync::Arc::new(canvass::http::Metrics::new()),
            trusted_proxies: Vec::new(),
            worker: None,
            metrics_access: canvass::http::MetricsAccess {
                token: None,
                listen,
            },
        })
        .await
        .unwrap();
        let public = format!("http://{}/metrics", service.local_addr());
        let own = service
            .metrics_addr()
            .map(|a| format!("http://{a}/metrics"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(service.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let status = |url: String| async move { reqwest::get(url).await.unwrap().status() };
        assert_eq!(status(public).await, StatusCode::NOT_FOUND);
        if let Some(own) = own {
            assert_eq!(status(own).await, StatusCode::OK);
        }
        stop.send(()).unwrap();
        running.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_and_changes_nothing() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Preferences, "amira@example.org").await;
    let before = app.db.dump().await;
    let huge = format!("topic=news&postcode={}", "A".repeat(100_000));

    let response = app
        .client
        .post(&link)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.db.dump().await, before);
}

#[tokio::test]
async fn without_configured_keys_one_is_generated_once_and_kept() {
    let db = TestStore::sqlite().await;
    let first = SigningKeys::load(None, &db.store).await.unwrap();
    let again = SigningKeys::load(None, &db.store).await.unwrap();
    let id = PublicId::generate();
    let token = first.sign(Purpose::Unsubscribe, &id);
    assert_eq!(
        again.verify(token.as_str(), Purpose::Unsubscribe, chrono::Utc::now()),
        Ok(id)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM settings WHERE key = 'signing_key'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_request_in_flight_when_the_service_stops_is_finished() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let link = app.link(Purpose::Unsubscribe, "amira@example.org").await;
    let path = link.strip_prefix(&app.base).unwrap().to_owned();
    let address = app.base.strip_prefix("http://").unwrap().to_owned();
    // The request's head and half its body are sent before the service is told to stop.
    let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        ONE_CLICK.len()
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    connection
        .write_all(&ONE_CLICK.as_bytes()[..10])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let stopping = app.begin_stop();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    connection
        .write_all(&ONE_CLICK.as_bytes()[10..])
        .await
        .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    stopping.await.unwrap();

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM suppressions WHERE reason = 'unsubscribed'")
            .await,
        1
    );
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "the listener is closed"
    );
}
