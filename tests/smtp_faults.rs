//! The worker against SMTP servers that misbehave, as real relays do (aiosmtpd, scripted): a
//! wrong password, a relay that refuses everyone, a mailbox that does not exist, TLS with a
//! private CA and AUTH PLAIN and LOGIN, an untrusted certificate, a server that offers no
//! STARTTLS, a greeting that never ends or never comes, a QUIT never answered. Failures are
//! judged by where they happen: the server's and the settings' blame no recipient.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use canvass::domain::{Actor, Email, SuppressionReason};
use canvass::mail::{Timeouts, Transport};
use canvass::metrics::Metrics;
use canvass::store::{RetryOutcome, StateChange, UnsuppressOutcome};
use canvass::worker::{Outage, Sending, Totals, Worker, WorkerSettings};
use serde_json::json;
use support::smtpd::{Certs, Smtpd};
use support::{TestStore, news_campaign, on_both_backends};

on_both_backends!(
    a_wrong_password_pauses_at_once_blames_nobody_and_resume_sends,
    a_relay_refusing_every_recipient_fails_them_suppresses_nobody_and_pauses,
    only_a_mailbox_status_at_rcpt_suppresses_the_address,
    a_quota_answer_at_mail_from_is_waited_out_not_paused,
    refusals_within_a_pipelined_group_are_judged_each_as_alone,
);

const PAUSE_AFTER: u32 = 5;

/// Taken for writing by the test that measures the process's memory, for reading by the rest.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A server that cannot be used is tried again within a second, and a drain gives up on it
/// after three.
const QUICK_OUTAGE: Outage = Outage {
    longest_wait: Duration::from_secs(1),
    drain_patience: Duration::from_secs(3),
};

fn worker(db: &TestStore, transport: Transport) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: transport.into(),
            metrics: Arc::new(Metrics::new()),
            sending: Sending {
                pause_after: std::num::NonZeroU32::new(PAUSE_AFTER).unwrap(),
                outage: QUICK_OUTAGE,
                ..Sending::default()
            },
        },
    )
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        command: Duration::from_secs(2),
        message: Duration::from_secs(2),
        quit: Duration::from_secs(1),
    }
}

/// `n` people who may all receive the news campaign, queued; the campaign's id.
async fn queued(db: &TestStore, n: usize) -> i64 {
    db.load_sample_directory().await;
    let rows: String = (0..n)
        .map(|i| format!("person{i}@example.org,P,SG13 8EQ,news,2026-01-01T00:00:00Z\n"))
        .collect();
    db.import_people(&format!("email,name,postcode,topics,consent_at\n{rows}"))
        .await;
    db.queue(&news_campaign(&["E14900001"], &[])).await
}

async fn drain(db: &TestStore, transport: Transport) -> Totals {
    let mut worker = worker(db, transport);
    tokio::time::timeout(Duration::from_secs(60), worker.drain())
        .await
        .expect("the worker never hangs")
        .unwrap()
}

async fn paused_reason(db: &TestStore, id: i64) -> String {
    let campaign = db.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state.as_str(), "paused");
    campaign.paused_reason.unwrap()
}

/// No delivery is charged, failed, held or put off for the server's or the settings' fault.
async fn nobody_is_blamed(db: &TestStore, n: i64) {
    let untouched = db
        .count(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'queued' AND attempts = 0 \
             AND lease_owner IS NULL AND next_attempt_at IS NULL",
        )
        .await;
    assert_eq!(untouched, n, "every delivery still queued as it was");
    assert_eq!(db.count("SELECT COUNT(*) FROM suppressions").await, 0);
}

fn resume(db: &TestStore, id: i64) -> impl Future<Output = ()> {
    let store = db.store.clone();
    async move {
        store
            .change_campaign_state(id, StateChange::Resume, &Actor::Operator)
            .await
            .unwrap();
    }
}

async fn a_wrong_password_pauses_at_once_blames_nobody_and_resume_sends(db: TestStore) {
    let _beside_others = ALONE.read().await;
    let Some(certs) = Certs::make() else { return };
    // The party's own relay: it takes mail for the party's addresses from anyone, as a mail
    // server does, and mail for elsewhere only after AUTH.
    let Some(server) = Smtpd::start(json!({
        "tls": "implicit", "cert": certs.cert(), "key": certs.key(),
        "auth": {"user": "canvass", "password": "right horse battery"},
        "auth_required": false,
    })) else {
        return;
    };
    let id = queued(&db, 30).await;
    // Who is told: the admins still on the staff; not an organiser, not a disabled admin.
    for (email, role, constituencies) in [
        ("ada.admin@hertford.example.org", "admin", &[][..]),
        (
            "olu.organiser@hertford.example.org",
            "organiser",
            &["E14900001"],
        ),
        ("gone.admin@hertford.example.org", "admin", &[]),
    ] {
        support::console::add_staff(&db, email, role, constituencies).await;
    }
    db.store
        .disable_staff_user(
            &Email::parse("gone.admin@hertford.example.org").unwrap(),
            &Actor::Operator,
        )
        .await
        .unwrap();
    let mistyped = server.url("smtps", Some(("canvass", "wrong horse")), "localhost");
    let transport = Transport::from_url(&mistyped)
        .unwrap()
        .trusting(&certs.ca())
        .unwrap();

    let totals = drain(&db, transport).await;
    assert_eq!(totals, Totals::default());
    let reason = paused_reason(&db, id).await;
    assert!(reason.contains("refused our login"), "{reason}");
    assert!(reason.contains("535"), "{reason}");
    assert!(
        !reason.contains("wrong horse"),
        "the password is never shown: {reason}"
    );
    nobody_is_blamed(&db, 30).await;

    // The admin hears of it by email, through the same relay (which took it without the login
    // it refused): the campaign, why, and where to resume it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.accepted().is_empty() {
        assert!(Instant::now() < deadline, "no alert reached the relay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = server.accepted();
    let told: Vec<&str> = alerts
        .iter()
        .map(|a| a["to"][0].as_str().unwrap())
        .collect();
    assert_eq!(told, ["ada.admin@hertford.example.org"], "{alerts:?}");
    assert_eq!(alerts[0]["auth_user"], serde_json::Value::Null);
    let alert = server.message_files().concat().replace("=\r\n", "");
    assert!(alert.contains("Paused:"), "{alert}");
    assert!(alert.contains("refused our login"), "{alert}");
    assert!(alert.contains(&format!("/admin/campaigns/{id}")), "{alert}");
    assert!(!alert.contains("wrong horse"), "{alert}");

    // The operator fixes the password and resumes: everyone is sent, at once.
    resume(&db, id).await;
    let fixed = server.url(
        "smtps",
        Some(("canvass", "right horse battery")),
        "localhost",
    );
    let transport = Transport::from_url(&fixed)
        .unwrap()
        .trusting(&certs.ca())
        .unwrap();
    let totals = drain(&db, transport).await;
    assert_eq!(totals.sent, 30);
    let accepted: Vec<_> = server.accepted().into_iter().skip(1).collect();
    assert_eq!(accepted.len(), 30);
    assert!(
        accepted
            .iter()
            .all(|a| a["tls"] == true && a["auth_user"] == "canvass")
    );
    db.assert_counts_kept().await;
}

async fn a_relay_refusing_every_recipient_fails_them_suppresses_nobody_and_pauses(db: TestStore) {
    let _beside_others = ALONE.read().await;
    let Some(refusing) = Smtpd::start(json!({
        "replies": [{"command": "RCPT", "reply": "550 relay not permitted"}],
    })) else {
        return;
    };
    let id = queued(&db, 40).await;
    let transport = Transport::from_url(&refusing.url("smtp", None, "127.0.0.1")).unwrap();

    let totals = drain(&db, transport).await;
    assert_eq!(totals.sent, 0);
    let reason = paused_reason(&db, id).await;
    assert!(reason.contains("5 recipients in a row"), "{reason}");
    assert!(reason.contains("relay not permitted"), "{reason}");
    let failed = db.store.delivery_counts(id).await.unwrap().failed;
    assert!(
        (u64::from(PAUSE_AFTER)..=u64::from(PAUSE_AFTER) + 8).contains(&failed),
        "{failed} failed before the pause"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM suppressions").await,
        0,
        "a relay's refusal says nothing of the mailbox"
    );

    // The relay is fixed: retry queues the failures again, resume sends everyone.
    let Some(accepting) = Smtpd::start(json!({})) else {
        return;
    };
    assert_eq!(
        db.store.retry_campaign(id, &Actor::Operator).await.unwrap(),
        RetryOutcome::Requeued(failed)
    );
    resume(&db, id).await;
    let transport = Transport::from_url(&accepting.url("smtp", None, "127.0.0.1")).unwrap();
    assert_eq!(drain(&db, transport).await.sent, 40);
    assert_eq!(accepting.accepted_by_recipient().len(), 40);
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.sent, counts.failed, counts.queued), (40, 0, 0));
    db.assert_counts_kept().await;
}

/// A relay's daily quota (or throttle) answered at MAIL FROM is the relay's to lift: the worker
/// waits and tries again, the campaign is not paused, nobody is charged, and everyone is sent
/// once the relay takes mail again. `/metrics` counts the waits as `throttled`.
async fn a_quota_answer_at_mail_from_is_waited_out_not_paused(db: TestStore) {
    let _beside_others = ALONE.read().await;
    let Some(server) = Smtpd::start(json!({
        "replies": [{
            "command": "MAIL", "reply": "454 4.7.0 Daily message quota exceeded", "times": 40,
        }],
    })) else {
        return;
    };
    let id = queued(&db, 12).await;
    let metrics = Arc::new(Metrics::new());
    let mut worker = Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: Transport::from_url(&server.url("smtp", None, "127.0.0.1"))
                .unwrap()
                .into(),
            metrics: metrics.clone(),
            sending: Sending {
                outage: Outage {
                    longest_wait: Duration::from_secs(1),
                    drain_patience: Duration::from_secs(30),
                },
                ..Sending::default()
            },
        },
    );
    let totals = tokio::time::timeout(Duration::from_secs(60), worker.drain())
        .await
        .expect("the worker never hangs")
        .unwrap();
    assert_eq!(totals.sent, 12);
    assert_eq!(
        totals.failed + totals.retried,
        0,
        "nobody charged: {totals:?}"
    );
    let campaign = db.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state.as_str(), "done");
    assert!(campaign.paused_reason.is_none());
    let mails = server
        .events()
        .iter()
        .filter(|e| e["event"] == "mail")
        .count();
    assert!(mails >= 40, "{mails} MAIL FROM tried");
    let text = metrics.encode().unwrap();
    let throttled: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("canvass_deliveries_deferred_total{reason=\"throttled\"} "))
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    assert!(throttled >= 40.0, "{text}");
    assert_eq!(server.accepted_by_recipient().len(), 12);
}

async fn only_a_mailbox_status_at_rcpt_suppresses_the_address(db: TestStore) {
    let _beside_others = ALONE.read().await;
    let Some(server) = Smtpd::start(json!({
        "replies": [
            {"command": "RCPT", "match": "person1@", "reply": "550 5.1.1 no such user"},
            {"command": "RCPT", "match": "person2@", "reply": "550 5.2.1 mailbox disabled"},
            {"command": "RCPT", "match": "person3@", "reply": "550 relay not permitted"},
            {"command": "RCPT", "match": "person4@", "reply": "554 5.7.1 policy refusal"},
            {"command": "DATA_END", "match": "person5@", "reply": "554 5.6.0 content refused"},
        ],
    })) else {
        return;
    };
    let id = queued(&db, 10).await;
    let transport = Transport::from_url(&server.url("smtp", None, "127.0.0.1")).unwrap();

    let totals = drain(&db, transport).await;
    assert_eq!((totals.sent, totals.failed), (5, 5), "{totals:?}");
    let suppressed = |address: &str| {
        let store = db.store.clone();
        let hash = Email::parse(address).unwrap().hash();
        async move { store.suppression(&hash).await.unwrap().map(|s| s.reason) }
    };
    assert_eq!(
        suppressed("person1@example.org").await,
        Some(SuppressionReason::Bounced)
    );
    assert_eq!(
        suppressed("person2@example.org").await,
        Some(SuppressionReason::Bounced)
    );
    for refused in [
        "person3@example.org",
        "person4@example.org",
        "person5@example.org",
    ] {
        assert_eq!(
            suppressed(refused).await,
            None,
            "{refused} is not suppressed"
        );
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM deliveries WHERE bounced")
            .await,
        2
    );
    assert_eq!(
        db.store.retry_campaign(id, &Actor::Operator).await.unwrap(),
        RetryOutcome::Requeued(3),
        "retry takes the three refusals, not the bounces"
    );

    // Staff find a bounce wrong and lift it; an unsubscribe cannot be lifted that way.
    let person1 = Email::parse("person1@example.org").unwrap();
    assert_eq!(
        db.store
            .unsuppress(&person1, "the mailbox exists", &Actor::Operator)
            .await
            .unwrap(),
        UnsuppressOutcome::Lifted(SuppressionReason::Bounced)
    );
    assert_eq!(suppressed("person1@example.org").await, None);
    let person6 = Email::parse("person6@example.org").unwrap();
    db.store
        .suppress(&person6.hash(), SuppressionReason::Unsubscribed)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .unsuppress(&person6, "asked by phone", &Actor::Operator)
            .await
            .unwrap(),
        UnsuppressOutcome::Refused(SuppressionReason::Unsubscribed)
    );
    db.assert_counts_kept().await;
}

/// A server that takes commands in groups (RFC 2920 PIPELINING) gets MAIL FROM, RCPT TO and
/// DATA in one write. Each refusal among their answers is judged as it would be alone, and the
/// connection carries on after it.
async fn refusals_within_a_pipelined_group_are_judged_each_as_alone(db: TestStore) {
    let _beside_others = ALONE.read().await;
    let Some(server) = Smtpd::start(json!({
        "pipelining": true,
        "replies": [
            {"command": "RCPT", "match": "person1@", "reply": "550 5.1.1 no such user"},
            {"command": "RCPT", "match": "person2@", "reply": "451 4.3.0 try again later"},
            {"command": "DATA", "match": "person3@", "reply": "554 5.7.1 policy refusal"},
            {"command": "DATA_END", "match": "person4@", "reply": "554 5.6.0 content refused"},
        ],
    })) else {
        return;
    };
    queued(&db, 12).await;
    let transport = Transport::from_url(&server.url("smtp", None, "127.0.0.1")).unwrap();

    let totals = drain(&db, transport).await;
    assert_eq!(
        (totals.sent, totals.failed, totals.retried),
        (8, 3, 1),
        "{totals:?}"
    );
    assert_eq!(
        server.accepted().len(),
        8,
        "the ledger says what the server took"
    );
    let person1 = Email::parse("person1@example.org").unwrap();
    assert_eq!(
        db.store
            .suppression(&person1.hash())
            .await
            .unwrap()
            .map(|s| s.reason),
        Some(SuppressionReason::Bounced)
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM suppressions").await, 1);
    let events = server.events();
    let mails: Vec<_> = events.iter().filter(|e| e["event"] == "mail").collect();
    assert_eq!(mails.len(), 12);
    assert!(
        mails.iter().all(|e| e["pipelined"] == true),
        "RCPT TO and DATA went with MAIL FROM: {mails:?}"
    );
    let connections = events.iter().filter(|e| e["event"] == "connect").count();
    assert!(
        connections <= Sending::default().concurrency.get(),
        "a refusal costs no connection: {connections}"
    );
    db.assert_counts_kept().await;
}

/// STARTTLS and implicit TLS, each with AUTH PLAIN and with AUTH LOGIN, against a server whose
/// certificate comes from a private CA given in CANVASS_SMTP_CA_FILE.
#[tokio::test]
async fn tls_with_a_private_ca_and_auth_plain_or_login_delivers() {
    let _beside_others = ALONE.read().await;
    let Some(certs) = Certs::make() else { return };
    for (tls, scheme) in [("starttls", "smtp+starttls"), ("implicit", "smtps")] {
        for mechanism in ["PLAIN", "LOGIN"] {
            let Some(server) = Smtpd::start(json!({
                "tls": tls, "cert": certs.cert(), "key": certs.key(),
                "auth": {"user": "news@hertford", "password": "p@ss:word", "mechanisms": [mechanism]},
            })) else {
                return;
            };
            let db = TestStore::sqlite().await;
            queued(&db, 3).await;
            let url = server.url(scheme, Some(("news@hertford", "p@ss:word")), "localhost");
            let transport = Transport::from_url(&url)
                .unwrap()
                .trusting(&certs.ca())
                .unwrap();
            assert_eq!(drain(&db, transport).await.sent, 3, "{scheme} {mechanism}");
            let accepted = server.accepted();
            assert_eq!(accepted.len(), 3, "{scheme} {mechanism}");
            assert!(
                accepted
                    .iter()
                    .all(|a| a["tls"] == true && a["auth_user"] == "news@hertford"),
                "{scheme} {mechanism}: {accepted:?}"
            );
        }
    }
}

/// A certificate from a CA nobody trusts, and a server that offers no STARTTLS to a URL that
/// requires it: nothing is sent (in clear or otherwise), the campaign pauses with the reason,
/// nobody is blamed.
#[tokio::test]
async fn an_untrusted_certificate_or_a_missing_starttls_sends_nothing() {
    let _beside_others = ALONE.read().await;
    let Some(certs) = Certs::make() else { return };
    let cases = [
        (
            json!({"tls": "implicit", "cert": certs.cert(), "key": certs.key()}),
            "smtps",
            "certificate",
        ),
        (
            json!({"tls": "starttls", "cert": certs.cert(), "key": certs.key(), "offer_starttls": false}),
            "smtp+starttls",
            "STARTTLS",
        ),
    ];
    for (config, scheme, expected) in cases {
        let Some(server) = Smtpd::start(config) else {
            return;
        };
        let db = TestStore::sqlite().await;
        let id = queued(&db, 12).await;
        let transport = Transport::from_url(&server.url(scheme, None, "localhost"))
            .unwrap()
            .trusting(&certs.other_ca())
            .unwrap()
            .with_timeouts(quick());
        assert_eq!(drain(&db, transport).await, Totals::default());
        let reason = paused_reason(&db, id).await;
        assert!(reason.contains(expected), "{scheme}: {reason}");
        nobody_is_blamed(&db, 12).await;
        assert!(
            server.events().iter().all(|e| e["event"] != "mail"),
            "{scheme}: no MAIL FROM was sent"
        );
    }
}

/// A greeting that never ends costs a bounded read, one that never comes costs the connect
/// timeout, and a QUIT never answered costs the QUIT timeout: the worker neither balloons nor
/// hangs. A server that will not greet is waited for, as one that is down: the drain gives up
/// on it, the campaign is not paused, nobody is blamed.
#[tokio::test]
async fn a_hostile_server_costs_a_timeout_never_a_hang_or_a_balloon() {
    // Memory is measured for the whole process: no other test runs meanwhile.
    let _alone = ALONE.write().await;
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    };
    for (greeting, expected) in [("endless", "bytes without a turn"), ("silent", "no answer")] {
        let Some(server) = Smtpd::start(json!({"greeting": greeting})) else {
            return;
        };
        let db = TestStore::sqlite().await;
        let id = queued(&db, 12).await;
        let before = rss();
        let transport = Transport::from_url(&server.url("smtp", None, "127.0.0.1"))
            .unwrap()
            .with_timeouts(quick());
        let mut worker = worker(&db, transport);
        let totals = tokio::time::timeout(Duration::from_secs(60), worker.drain())
            .await
            .expect("the worker never hangs")
            .unwrap();
        assert_eq!(totals, Totals::default());
        assert!(
            rss() < before + 64,
            "{greeting}: grew from {before} MB to {} MB",
            rss()
        );
        let (_, reason) = worker.server_unusable().expect("the drain gave up on it");
        assert!(reason.contains(expected), "{greeting}: {reason}");
        let campaign = db.store.campaign(id).await.unwrap().unwrap();
        assert_eq!(campaign.state.as_str(), "queued", "{greeting}");
        nobody_is_blamed(&db, 12).await;
    }

    let Some(server) = Smtpd::start(json!({"quit": "hang"})) else {
        return;
    };
    let db = TestStore::sqlite().await;
    queued(&db, 5).await;
    let transport = Transport::from_url(&server.url("smtp", None, "127.0.0.1"))
        .unwrap()
        .with_timeouts(quick());
    let started = Instant::now();
    assert_eq!(drain(&db, transport).await.sent, 5);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "QUIT held the worker {:?}",
        started.elapsed()
    );
}
