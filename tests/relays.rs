//! Several relays, on both engines, through real SMTP servers (tests/support/smtpd.py): one
//! stopped mid-campaign while the other carries on, every recipient delivered exactly once
//! (beyond the messages in flight) and the ledger equal to what the servers accepted; a relay
//! at its daily cap handing the rest to the other; a recipient's refusal staying with the relay
//! that gave it. And pacing by recipient domain: a domain that puts messages off (421, 4.7.x)
//! waits alone, costing no attempts, while the others are sent; a domain's cap holds.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use canvass::domain::Rate;
use canvass::mail::Relays;
use canvass::metrics::Metrics;
use canvass::worker::{Outage, RetryPolicy, Sending, Worker, WorkerSettings};
use serde_json::json;
use support::smtpd::Smtpd;
use support::{TestStore, on_both_backends};

on_both_backends!(
    a_relay_stopped_mid_campaign_leaves_the_rest_to_the_other_and_nobody_twice,
    a_relay_at_its_daily_cap_hands_the_rest_on_and_a_refusal_stays_with_its_relay,
    a_domain_that_puts_messages_off_waits_alone_and_a_capped_domain_keeps_its_rate,
    a_relay_at_its_own_rate_leaves_the_rest_to_the_other,
);

/// A worker sending through `relays` (CANVASS_SMTP_URL's form), four connections, short
/// waits.
fn worker(db: &TestStore, relays: &str) -> Worker {
    worker_capping(db, relays, Vec::new())
}

/// The same, with caps per recipient domain.
fn worker_capping(db: &TestStore, relays: &str, domain_rates: Vec<(String, Rate)>) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: Relays::parse(relays).unwrap(),
            metrics: Arc::new(Metrics::new()),
            sending: Sending {
                concurrency: 4.try_into().unwrap(),
                retry: RetryPolicy {
                    first_wait: Duration::from_millis(100),
                    longest_wait: Duration::from_millis(400),
                    attempts: 30,
                },
                outage: Outage {
                    longest_wait: Duration::from_secs(1),
                    drain_patience: Duration::from_secs(30),
                },
                domain_rates,
                ..Sending::default()
            },
        },
    )
}

fn plain(server: &Smtpd) -> String {
    server.url("smtp", None, "127.0.0.1")
}

/// Who the ledger says was sent to.
async fn sent_in_ledger(db: &TestStore) -> Vec<String> {
    db.strings(
        "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
         WHERE d.state = 'sent' ORDER BY c.email",
    )
    .await
}

async fn a_relay_stopped_mid_campaign_leaves_the_rest_to_the_other_and_nobody_twice(db: TestStore) {
    let Some(mut first) = Smtpd::start(json!({})) else {
        return;
    };
    let Some(second) = Smtpd::start(json!({})) else {
        return;
    };
    let (_, people) = db.queue_news_to(200).await;
    let mut worker = worker(&db, &format!("{}, {}", plain(&first), plain(&second)));
    let drained = tokio::spawn(async move { worker.drain().await });
    // The first relay dies once it has taken some.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while first.accepted().len() < 30 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first relay took nothing"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill();
    let totals = drained.await.unwrap().unwrap();
    assert_eq!(totals.sent, 200, "{totals:?}");
    assert_eq!(totals.failed, 0, "{totals:?}");

    let mut accepted: BTreeMap<String, usize> = first.accepted_by_recipient();
    for (to, n) in second.accepted_by_recipient() {
        *accepted.entry(to).or_default() += n;
    }
    assert!(first.accepted().len() >= 30 && !second.accepted().is_empty());
    // Everyone, once; a repeat only for a message in flight when the relay died.
    let mut expected = people.clone();
    expected.sort();
    assert_eq!(accepted.keys().cloned().collect::<Vec<_>>(), expected);
    let repeats: usize = accepted.values().map(|n| n - 1).sum();
    assert!(
        repeats <= 4,
        "{repeats} repeated, more than the four in flight"
    );
    // The ledger says sent exactly for those the servers accepted.
    assert_eq!(sent_in_ledger(&db).await, expected);
}

async fn a_relay_at_its_daily_cap_hands_the_rest_on_and_a_refusal_stays_with_its_relay(
    db: TestStore,
) {
    let refusal = json!({"replies": [
        {"command": "RCPT", "match": "person7@", "reply": "550 5.1.1 no such user"}
    ]});
    let Some(capped) = Smtpd::start(refusal.clone()) else {
        return;
    };
    let Some(other) = Smtpd::start(refusal) else {
        return;
    };
    let (_, people) = db.queue_news_to(60).await;
    // The capped relay has five times the weight: it fills its day first.
    let relays = format!("{}?daily=10&weight=5, {}", plain(&capped), plain(&other));
    let totals = worker(&db, &relays).drain().await.unwrap();
    assert_eq!((totals.sent, totals.failed), (59, 1), "{totals:?}");
    // At most its cap (the refused one may have taken a place), the rest through the other.
    assert!(capped.accepted().len() <= 10, "{}", capped.accepted().len());
    assert!(capped.accepted().len() >= 9, "{}", capped.accepted().len());
    assert_eq!(capped.accepted().len() + other.accepted().len(), 59);
    assert_eq!(
        db.count("SELECT sent FROM relay_usage WHERE period = 'day'")
            .await,
        10,
        "the cap is counted in the database"
    );
    // The refusal was heard once, from one relay, and never tried on the other.
    let refusals: usize = [&capped, &other]
        .iter()
        .map(|server| {
            server
                .events()
                .iter()
                .filter(|e| {
                    e["event"] == "refused" && e["arg"].as_str().unwrap_or("").contains("person7@")
                })
                .count()
        })
        .sum();
    assert_eq!(refusals, 1);
    let mut expected: Vec<String> = people
        .into_iter()
        .filter(|p| p != "person7@example.org")
        .collect();
    expected.sort();
    assert_eq!(sent_in_ledger(&db).await, expected);
}

async fn a_domain_that_puts_messages_off_waits_alone_and_a_capped_domain_keeps_its_rate(
    db: TestStore,
) {
    let Some(server) = Smtpd::start(json!({"replies": [
        {"command": "RCPT", "match": "@slow.example", "reply": "421 4.7.28 Try again later"}
    ]})) else {
        return;
    };
    db.load_sample_directory().await;
    let mut rows = String::from("email,name,postcode,topics,consent_at\n");
    for (domain, n) in [
        ("example.org", 30),
        ("slow.example", 20),
        ("capped.example", 10),
    ] {
        for i in 0..n {
            rows.push_str(&format!(
                "p{i}@{domain},P,SG13 8EQ,news,2026-01-01T00:00:00Z\n"
            ));
        }
    }
    db.import_people(&rows).await;
    db.queue(&support::news_campaign(&[], &[])).await;
    let capped = vec![("capped.example".to_owned(), Rate::try_from(0.5).unwrap())];
    let started = std::time::Instant::now();
    let totals = worker_capping(&db, &plain(&server), capped)
        .drain()
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();

    // Everyone at example.org, whatever slow.example does.
    let sent = server.accepted_by_recipient();
    assert_eq!(
        sent.keys()
            .filter(|to| to.ends_with("@example.org"))
            .count(),
        30
    );
    // slow.example was asked only while the first deferral was in flight (four connections),
    // then waited without costing its people an attempt.
    let asked = server
        .events()
        .iter()
        .filter(|e| {
            e["event"] == "refused" && e["arg"].as_str().unwrap_or("").contains("@slow.example")
        })
        .count();
    assert!((1..=4).contains(&asked), "slow.example asked {asked} times");
    assert_eq!(totals.retried as usize, asked);
    let waiting_free = db
        .count(
            "SELECT count(*) FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             WHERE c.email LIKE '%@slow.example' AND d.state = 'queued' AND d.attempts = 0 \
             AND d.next_attempt_at IS NOT NULL",
        )
        .await;
    assert_eq!(waiting_free as usize, 20 - asked);
    // capped.example: at half a message a second, never more than its bucket and the time
    // allow; the rest wait for their turn, no attempt counted.
    let to_capped = sent
        .keys()
        .filter(|to| to.ends_with("@capped.example"))
        .count();
    let allowed = 1 + (elapsed * 0.5).ceil() as usize;
    assert!(
        (1..=allowed).contains(&to_capped),
        "{to_capped} sent in {elapsed:.1} s"
    );
    let capped_waiting = db
        .count(
            "SELECT count(*) FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             WHERE c.email LIKE '%@capped.example' AND d.state = 'queued' AND d.attempts = 0",
        )
        .await;
    assert_eq!(capped_waiting as usize, 10 - to_capped);
}

async fn a_relay_at_its_own_rate_leaves_the_rest_to_the_other(db: TestStore) {
    let Some(slow) = Smtpd::start(json!({})) else {
        return;
    };
    let Some(fast) = Smtpd::start(json!({})) else {
        return;
    };
    let (_, people) = db.queue_news_to(40).await;
    let relays = format!("{}?rate=1, {}", plain(&slow), plain(&fast));
    let started = std::time::Instant::now();
    let totals = worker(&db, &relays).drain().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(totals.sent, 40);
    // The slow relay never beyond its rate (and its bucket of one); the other took the rest
    // instead of everyone waiting for it.
    let through_slow = slow.accepted().len();
    assert!(
        through_slow as f64 <= 1.0 + elapsed + 1.0,
        "{through_slow} through the slow relay in {elapsed:.1} s"
    );
    assert_eq!(through_slow + fast.accepted().len(), people.len());
}
