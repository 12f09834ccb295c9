//! Several relays, on both engines, through real SMTP servers (tests/support/smtpd.py): one
//! stopped mid-campaign while the other carries on, every recipient delivered exactly once
//! (beyond the messages in flight) and the ledger equal to what the servers accepted; a relay
//! at its daily cap handing the rest to the other; a recipient's refusal staying with the relay
//! that gave it; messages spread by weight.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use canvass::metrics::Metrics;
use canvass::worker::{Outage, Relays, RetryPolicy, Sending, Worker, WorkerSettings};
use serde_json::json;
use support::smtpd::Smtpd;
use support::{TestStore, on_both_backends};

on_both_backends!(
    a_relay_stopped_mid_campaign_leaves_the_rest_to_the_other_and_nobody_twice,
    a_relay_at_its_daily_cap_hands_the_rest_on_and_a_refusal_stays_with_its_relay,
);

/// A worker sending through `relays` (CANVASS_SMTP_URL's form), four connections, short
/// waits.
fn worker(db: &TestStore, relays: &str) -> Worker {
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
