//! Public sign-up with double opt-in over real HTTP, with the confirmation sent through a real
//! SMTP server (Postfix's smtp-sink), on both engines.

mod support;

use reqwest::StatusCode;
use support::app::{KEY_1, TestApp};
use support::smtp::SmtpSink;
use support::{TestStore, on_both_backends};

on_both_backends!(
    a_signup_becomes_consent_only_through_the_link_emailed_to_the_address,
    the_answer_to_a_signup_is_the_same_for_a_known_and_an_unknown_address,
    an_address_gets_at_most_three_confirmations_an_hour,
    bad_signups_and_bad_links_are_refused_and_change_nothing,
    sign_up_limits_hold_against_parallel_requests_and_count_ipv6_by_its_64,
);

const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n";

async fn start(db: TestStore) -> Option<(TestApp, SmtpSink)> {
    let sink = SmtpSink::start(&[])?;
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = TestApp::serve_mailing(db, KEY_1, Some(sink.url())).await;
    Some((app, sink))
}

fn form(email: &str) -> Vec<(&'static str, String)> {
    vec![
        ("email", email.to_owned()),
        ("name", "Sam Signup".into()),
        ("postcode", "SG13 8EQ".into()),
        ("topics", "news".into()),
        ("topics", "events".into()),
        ("wording", "website-form-v3".into()),
    ]
}

async fn subscribe(app: &TestApp, fields: &[(&str, String)]) -> reqwest::Response {
    subscribe_from(app, fields, None).await
}

/// A sign-up through the trusted proxy (the test service trusts 127.0.0.1), for `client`.
async fn subscribe_from(
    app: &TestApp,
    fields: &[(&str, String)],
    client: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/subscribe", app.base))
        .form(fields);
    if let Some(client) = client {
        request = request.header("X-Forwarded-For", format!("6.6.6.6, {client}"));
    }
    request.send().await.unwrap()
}

/// The confirmation link in a message as the sink dumped it (quoted-printable soft breaks
/// undone).
fn confirmation_link(message: &str) -> String {
    let unfolded = message.replace("=\n", "");
    let start = unfolded
        .find("https://links.example.org/confirm/")
        .expect("a confirmation link");
    unfolded[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_owned()
}

async fn a_signup_becomes_consent_only_through_the_link_emailed_to_the_address(db: TestStore) {
    let Some((app, sink)) = start(db).await else {
        return;
    };
    let answer = subscribe(&app, &form("sam@example.org")).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    assert!(answer.text().await.unwrap().contains("Check your inbox"));

    let received = sink.received_by_recipient();
    assert_eq!(received.get("sam@example.org"), Some(&1));
    // Sent as the campaigns are: its own Message-ID, signed for the sender's domain.
    let confirmation = &sink.messages()[0];
    let header = |name: &str| {
        confirmation
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("Message-ID:").ends_with("@hertford.example.org>"),
        "{confirmation}"
    );
    assert!(
        header("DKIM-Signature:").contains("d=hertford.example.org"),
        "{confirmation}"
    );
    let sam = canvass::domain::Email::parse("sam@example.org").unwrap();
    let held = || app.db.store.export_contact(&sam);
    assert!(
        held().await.unwrap().is_none(),
        "nobody is a contact before confirming"
    );
    let link = confirmation_link(&sink.messages()[0]);
    let local = link.replace("https://links.example.org", &app.base);

    let page = app.client.get(&local).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<form method=\"post\">")
    );
    assert!(
        held().await.unwrap().is_none(),
        "opening the link (as a scanner would) confirms nothing"
    );
    let confirmed = app.client.post(&local).send().await.unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("You are signed up")
    );

    let held = app.export("sam@example.org").await;
    assert_eq!(held.name.as_deref(), Some("Sam Signup"));
    let grants: Vec<_> = held.consent_history.iter().filter(|e| e.granted).collect();
    assert_eq!(grants.len(), 2, "news and events");
    for grant in grants {
        assert_eq!(grant.source, "signup");
        assert_eq!(grant.ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(grant.wording.as_deref(), Some("website-form-v3"));
    }
    // Following the link again changes nothing.
    let ledger = app.db.count("SELECT COUNT(*) FROM consent_ledger").await;
    assert_eq!(
        app.client.post(&local).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM consent_ledger").await,
        ledger
    );
}

async fn the_answer_to_a_signup_is_the_same_for_a_known_and_an_unknown_address(db: TestStore) {
    let Some((app, _sink)) = start(db).await else {
        return;
    };
    let known = subscribe(&app, &form("amira@example.org")).await;
    let unknown = subscribe(&app, &form("nobody@example.org")).await;
    assert_eq!(known.status(), unknown.status());
    assert_eq!(
        known.headers()["content-type"],
        unknown.headers()["content-type"]
    );
    assert_eq!(known.bytes().await.unwrap(), unknown.bytes().await.unwrap());

    let json = |email: &str| {
        app.client
            .post(format!("{}/subscribe", app.base))
            .json(&serde_json::json!({
                "email": email, "topics": ["news"], "wording": "app-v1"
            }))
            .send()
    };
    let known = json("amira@example.org").await.unwrap();
    let unknown = json("someone-else@example.org").await.unwrap();
    assert_eq!(
        (known.status(), unknown.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(known.bytes().await.unwrap(), unknown.bytes().await.unwrap());
}

async fn an_address_gets_at_most_three_confirmations_an_hour(db: TestStore) {
    let Some((app, sink)) = start(db).await else {
        return;
    };
    let mut answers = Vec::new();
    for _ in 0..4 {
        let answer = subscribe(&app, &form("flooded@example.org")).await;
        answers.push((answer.status(), answer.bytes().await.unwrap()));
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "the fourth answer says what the others said"
    );
    assert_eq!(
        sink.received_by_recipient().get("flooded@example.org"),
        Some(&3)
    );
}

/// Twenty sign-ups of one address at once, each from another client behind the proxy: three
/// confirmation emails, not one more. Eight at once from one client: five pass (the burst), the
/// rest are refused. An IPv6 client is counted by its /64. The consent records the client's
/// address as the proxy gave it, not the proxy's or a made-up one.
async fn sign_up_limits_hold_against_parallel_requests_and_count_ipv6_by_its_64(db: TestStore) {
    let Some((app, sink)) = start(db).await else {
        return;
    };
    let clients: Vec<String> = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    let fields = form("flooded@example.org");
    let parallel = clients
        .iter()
        .map(|client| subscribe_from(&app, &fields, Some(client)));
    for answer in futures_util::future::join_all(parallel).await {
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(
        sink.received_by_recipient().get("flooded@example.org"),
        Some(&3)
    );

    let app = &app;
    let one_client = (0..8).map(|i| {
        let fields = form(&format!("friend{i}@example.org"));
        async move {
            subscribe_from(app, &fields, Some("203.0.113.7"))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(one_client).await;
    let passed = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((passed, refused), (5, 3), "{statuses:?}");

    for i in 0..5 {
        let fields = form(&format!("v6-{i}@example.org"));
        let answer = subscribe_from(app, &fields, Some(&format!("2001:db8:1:2::{i}"))).await;
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    let same_64 =
        subscribe_from(app, &form("v6-x@example.org"), Some("2001:db8:1:2:ffff::1")).await;
    assert_eq!(same_64.status(), StatusCode::TOO_MANY_REQUESTS);
    let next_64 = subscribe_from(app, &form("v6-y@example.org"), Some("2001:db8:1:3::1")).await;
    assert_eq!(next_64.status(), StatusCode::ACCEPTED);

    // Confirmed from behind the proxy: the client's address is recorded.
    let link = confirmation_link(
        sink.messages()
            .iter()
            .find(|m| m.contains("v6-y@example.org"))
            .unwrap(),
    );
    let local = link.replace("https://links.example.org", &app.base);
    let confirmed = app
        .client
        .post(&local)
        .header("X-Forwarded-For", "2001:db8:1:3::1")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    let held = app.export("v6-y@example.org").await;
    assert!(
        held.consent_history
            .iter()
            .all(|e| e.ip.as_deref() == Some("2001:db8:1:3::1")),
        "{:?}",
        held.consent_history
    );
}

async fn bad_signups_and_bad_links_are_refused_and_change_nothing(db: TestStore) {
    let Some((app, sink)) = start(db).await else {
        return;
    };
    let before = app.db.dump().await;
    for (field, value) in [
        ("email", "not an address"),
        ("postcode", "nowhere"),
        ("topics", "no-such-topic"),
        ("wording", ""),
    ] {
        let mut fields = form("sam@example.org");
        fields.retain(|(name, _)| *name != field);
        fields.push((field, value.to_owned()));
        let answer = subscribe(&app, &fields).await;
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
    }
    let tampered = format!("{}/confirm/{}", app.base, "A".repeat(56));
    let refused = app.client.post(&tampered).send().await.unwrap();
    assert!(matches!(
        refused.status(),
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
    ));
    // An unsubscribe link is no confirmation link.
    let unsubscribe = app
        .link(
            canvass::mail::token::Purpose::Unsubscribe,
            "amira@example.org",
        )
        .await;
    let wrong = unsubscribe.replace("/u/", "/confirm/");
    assert_eq!(
        app.client.post(&wrong).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.db.dump().await, before);
    assert!(sink.messages().is_empty());
}
