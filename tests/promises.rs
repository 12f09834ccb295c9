//! The promises kept while a campaign is being sent, against a real SMTP server (aiosmtpd, which
//! logs the time of every command it answers): a withdrawal, an erasure, a restriction, a pause
//! or a cancel committed at T stops every message it concerns from reaching RCPT after T + 1 s,
//! and the ledger's `sent` is exactly what the server accepted. Both backends, with a relay
//! quota of 20 messages a second, so that the worker holds messages long after claiming them.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use canvass::domain::{Actor, Email};
use canvass::mail::Transport;
use canvass::metrics::Metrics;
use canvass::store::{StateChange, UnsubscribeRequest};
use canvass::worker::{Sending, Worker, WorkerSettings};
use support::smtpd::Smtpd;
use support::{TestStore, on_both_backends};

on_both_backends!(
    changes_made_while_a_campaign_is_sent_stop_its_mail_within_a_second,
    pause_and_cancel_stop_the_sending_within_a_second_and_the_ledger_matches_the_server,
);

const RATE: f64 = 20.0;

fn worker(db: &TestStore, url: &str) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: Transport::from_url(url).unwrap().into(),
            metrics: Arc::new(Metrics::new()),
            sending: Sending {
                rate: Some(canvass::domain::Rate::try_from(RATE).unwrap()),
                ..Sending::default()
            },
        },
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// When the server answered RCPT for each address (several times when retried).
fn rcpt_times(server: &Smtpd) -> Vec<(String, f64)> {
    server
        .events()
        .into_iter()
        .filter(|e| e["event"] == "rcpt")
        .map(|e| {
            let to = e["to"]
                .as_str()
                .unwrap()
                .trim_matches(['<', '>'])
                .to_owned();
            (to, e["t"].as_f64().unwrap())
        })
        .collect()
}

fn accepted_set(server: &Smtpd) -> BTreeSet<String> {
    let by_recipient = server.accepted_by_recipient();
    assert!(
        by_recipient.values().all(|&n| n == 1),
        "someone got two: {by_recipient:?}"
    );
    by_recipient.into_keys().collect()
}

async fn sent_set(db: &TestStore, id: i64) -> BTreeSet<String> {
    let rows: Vec<String> = match db.store.pool() {
        canvass::store::Pool::Sqlite(pool) => sqlx::query_scalar(
            "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             WHERE d.campaign_id = $1 AND d.state = 'sent'",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap(),
        canvass::store::Pool::Postgres(pool) => sqlx::query_scalar(
            "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
             WHERE d.campaign_id = $1 AND d.state = 'sent'",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    rows.into_iter().collect()
}

/// While a 120-recipient campaign goes out at 20 a second, people leave one by one, each in a
/// way of their own; after each change is committed, the server never sees their RCPT more than
/// a second later.
async fn changes_made_while_a_campaign_is_sent_stop_its_mail_within_a_second(db: TestStore) {
    let Some(server) = Smtpd::start(serde_json::json!({})) else {
        return;
    };
    let (id, addresses) = db.queue_news_to(120).await;
    let (stop, run) =
        support::run_in_background(worker(&db, &server.url("smtp", None, "127.0.0.1")));
    tokio::time::sleep(Duration::from_millis(800)).await;

    // From the end of the list, which the worker claimed at the start and holds longest.
    let mut committed: Vec<(String, f64)> = Vec::new();
    for (i, address) in addresses.iter().rev().step_by(3).take(24).enumerate() {
        let email = Email::parse(address).unwrap();
        match i % 4 {
            0 => {
                let contact = db.held(address).await.public_id;
                let request = UnsubscribeRequest {
                    contact,
                    source: "unsubscribe-link",
                    ip: None,
                    campaign: None,
                };
                db.store.unsubscribe(&[request]).await.unwrap();
            }
            1 => {
                db.store
                    .erase_contact(&email, &Actor::Operator)
                    .await
                    .unwrap();
            }
            2 => {
                db.store
                    .set_restricted(&email, true, &Actor::Operator)
                    .await
                    .unwrap();
            }
            _ => db.withdraw(address, "news", chrono::Utc::now()).await,
        }
        committed.push((address.clone(), now()));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Let the campaign finish.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.store.delivery_counts(id).await.unwrap().queued > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the campaign did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    let rcpts = rcpt_times(&server);
    for (address, at) in &committed {
        for (to, t) in rcpts.iter().filter(|(to, _)| to == address) {
            assert!(
                *t <= at + 1.0,
                "{to} reached RCPT {:.2} s after their change was committed",
                t - at
            );
        }
    }
    let accepted = accepted_set(&server);
    let sent = sent_set(&db, id).await;
    // Erased people's rows keep no address: count them apart.
    let erased_sent = db
        .count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent' AND contact_id IS NULL")
        .await as usize;
    assert_eq!(
        sent.len() + erased_sent,
        accepted.len(),
        "sent in the ledger = accepted by the server"
    );
    assert!(
        sent.is_subset(&accepted),
        "recorded sent but never accepted"
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(counts.sent + counts.skipped, 120, "{counts:?}");
    assert!(
        counts.skipped >= 12,
        "most of those who left were held, not sent: {counts:?}"
    );
    db.assert_counts_kept().await;
}

/// Staff pause a campaign mid-send, resume it, then cancel it: after each, nothing reaches the
/// server more than a second later, and every message the server accepted is `sent` in the
/// ledger, and nothing else is.
async fn pause_and_cancel_stop_the_sending_within_a_second_and_the_ledger_matches_the_server(
    db: TestStore,
) {
    let Some(server) = Smtpd::start(serde_json::json!({})) else {
        return;
    };
    let (id, _) = db.queue_news_to(200).await;
    let (stop, run) =
        support::run_in_background(worker(&db, &server.url("smtp", None, "127.0.0.1")));
    let change = |what: StateChange| {
        let store = db.store.clone();
        async move {
            store
                .change_campaign_state(id, what, &Actor::Operator)
                .await
                .unwrap();
            now()
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let paused = change(StateChange::Pause).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last_while_paused = rcpt_times(&server)
        .iter()
        .map(|(_, t)| *t)
        .fold(0.0, f64::max);
    assert!(
        last_while_paused <= paused + 1.0,
        "RCPT {:.2} s after the pause",
        last_while_paused - paused
    );
    let resumed = change(StateChange::Resume).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rcpt_times(&server).iter().any(|(_, t)| *t > resumed),
        "resuming sends again"
    );
    let cancelled = change(StateChange::Cancel).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    let last = rcpt_times(&server)
        .iter()
        .map(|(_, t)| *t)
        .fold(0.0, f64::max);
    assert!(
        last <= cancelled + 1.0,
        "RCPT {:.2} s after the cancel",
        last - cancelled
    );
    let accepted = accepted_set(&server);
    assert_eq!(
        sent_set(&db, id).await,
        accepted,
        "the ledger's sent is exactly what the server accepted"
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(
        (counts.queued, counts.failed),
        (0, 0),
        "{counts:?}: nothing left queued or failed"
    );
    assert_eq!(counts.sent + counts.skipped, 200, "{counts:?}");
    assert!(counts.sent < 150, "the cancel stopped it: {counts:?}");
    let lease = db
        .count("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL")
        .await;
    assert_eq!(lease, 0, "no lease left behind");
}
