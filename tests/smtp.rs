//! The worker sending through a real SMTP server (Postfix's smtp-sink), on both backends: who
//! receives a message, and what happens when the server defers, refuses or hangs up.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use canvass::domain::{Actor, Email, SuppressionReason};
use canvass::mail::Transport;
use canvass::mail::token::{Purpose, SigningKeys};
use canvass::metrics::Metrics;
use canvass::store::UnsubscribeRequest;
use canvass::worker::{Outage, RetryPolicy, Sending, Totals, Worker, WorkerSettings};
use chrono::Utc;
use support::app::KEY_1;
use support::smtp::SmtpSink;
use support::{TestStore, news_campaign, on_both_backends};

on_both_backends!(
    only_the_eligible_receive_one_message_each,
    a_deferred_message_is_retried_after_a_wait_and_then_sent,
    a_recipient_refused_for_good_is_failed_and_suppressed_as_bounced,
    a_connection_dropped_at_the_end_of_the_data_is_retried_not_lost,
    a_relay_down_for_twenty_seconds_mid_campaign_is_waited_for,
);

const HEADER: &str =
    "email,name,postcode,date_of_birth,guardian_consent,topics,consent_at,source\n";

/// Retries come back at once in these tests.
const QUICK_RETRY: RetryPolicy = RetryPolicy {
    first_wait: Duration::from_millis(1),
    longest_wait: Duration::from_millis(1),
    attempts: 3,
};

fn sending() -> Sending {
    Sending {
        retry: QUICK_RETRY,
        ..Sending::default()
    }
}

fn worker(db: &TestStore, url: &str, sending: Sending, metrics: Arc<Metrics>) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: Transport::from_url(url).unwrap().into(),
            metrics,
            sending,
        },
    )
}

async fn import(db: &TestStore, rows: &str) {
    db.import_people(&format!("{HEADER}{rows}")).await;
}

/// A `news` campaign for constituency E14900001 or district SG1, queued; its id.
async fn queue_news(db: &TestStore) -> i64 {
    db.queue(&news_campaign(&["E14900001"], &["SG1"])).await
}

/// `n` people who may all receive the news campaign.
async fn eligible_people(db: &TestStore, n: usize) -> Vec<String> {
    db.load_sample_directory().await;
    let addresses: Vec<String> = (0..n).map(|i| format!("person{i}@example.org")).collect();
    let rows: String = addresses
        .iter()
        .map(|a| format!("{a},P,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n"))
        .collect();
    import(db, &rows).await;
    addresses
}

fn email(address: &str) -> Email {
    Email::parse(address).unwrap()
}

async fn state_counts(db: &TestStore, id: i64) -> (u64, u64, u64, u64) {
    let c = db.store.delivery_counts(id).await.unwrap();
    (c.queued, c.sent, c.failed, c.skipped)
}

/// The contract's rule, case by case, at the moment of sending: the queue took the people
/// allowed then, and five of them stop qualifying before the worker reaches them.
async fn only_the_eligible_receive_one_message_each(db: TestStore) {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    db.load_sample_directory().await;
    let ten_years_ago = (Utc::now().date_naive() - chrono::Months::new(120)).to_string();
    let qualifying = "news,2026-01-01T00:00:00Z,form";
    import(
        &db,
        &format!(
            "in-constituency@example.org,A,SG13 8EQ,,,{qualifying}\n\
             in-district-sg1@example.org,B,SG1 2AA,,,{qualifying}\n\
             in-sg13-outside-the-directory@example.org,C,SG13 9ZZ,,,{qualifying}\n\
             other-topic@example.org,D,SG13 8EQ,,,events,2026-01-01T00:00:00Z,form\n\
             no-consent@example.org,E,SG13 8EQ,,,,2026-01-01T00:00:00Z,form\n\
             other-constituency@example.org,F,AL1 3JE,,,{qualifying}\n\
             unsubscribes-after-queueing@example.org,I,SG13 8EQ,,,{qualifying}\n\
             restricted-after-queueing@example.org,J,SG13 8EQ,,,{qualifying}\n\
             withdraws-after-queueing@example.org,K,SG13 8EQ,,,{qualifying}\n\
             erased-after-queueing@example.org,L,SG13 8EQ,,,{qualifying}\n\
             moves-away-after-queueing@example.org,M,SG13 8EQ,,,{qualifying}\n"
        ),
    )
    .await;
    // A child is kept only with a guardian's consent, named (without it, nothing is stored).
    db.import_people(&format!(
        "email,name,postcode,date_of_birth,guardian_consent,guardian_name,\
         guardian_relationship,topics,consent_at,consent_source\n\
         child-with-guardian@example.org,H,SG13 8EQ,{ten_years_ago},true,Ann,mother,{qualifying}\n"
    ))
    .await;
    let id = queue_news(&db).await;
    assert_eq!(state_counts(&db, id).await, (8, 0, 0, 0));

    let public_id = |address: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .export_contact(&email(address))
                .await
                .unwrap()
                .unwrap()
                .public_id
        }
    };
    let request = UnsubscribeRequest {
        contact: public_id("unsubscribes-after-queueing@example.org").await,
        source: "unsubscribe-link",
        ip: None,
        campaign: None,
    };
    db.store.unsubscribe(&[request]).await.unwrap();
    db.store
        .set_restricted(
            &email("restricted-after-queueing@example.org"),
            true,
            &Actor::Operator,
        )
        .await
        .unwrap();
    db.withdraw("withdraws-after-queueing@example.org", "news", Utc::now())
        .await;
    db.store
        .erase_contact(
            &email("erased-after-queueing@example.org"),
            &Actor::Operator,
        )
        .await
        .unwrap();
    import(
        &db,
        &format!("moves-away-after-queueing@example.org,M,AL1 3JE,,,{qualifying}\n"),
    )
    .await;

    let metrics = Arc::new(Metrics::new());
    let totals = worker(&db, &sink.url(), sending(), metrics.clone())
        .drain()
        .await
        .unwrap();

    assert_eq!(
        totals,
        Totals {
            sent: 3,
            skipped: 5,
            ..Totals::default()
        }
    );
    let received = sink.received_by_recipient();
    assert_eq!(
        received.into_iter().collect::<Vec<_>>(),
        [
            ("child-with-guardian@example.org".to_owned(), 1),
            ("in-constituency@example.org".to_owned(), 1),
            ("in-district-sg1@example.org".to_owned(), 1),
        ]
    );
    assert_eq!(state_counts(&db, id).await, (0, 3, 0, 5));
    let answers = db
        .count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent' AND outcome LIKE '250 %'")
        .await;
    assert_eq!(answers, 3, "the server's answer is recorded");
    let keys: SigningKeys = KEY_1.parse().unwrap();
    for message in sink.messages() {
        let header = |name: &str| {
            message
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {message}"))
                .to_owned()
        };
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        assert_eq!(header("List-Id"), "<news.hertford.example.org>");
        let token = header("List-Unsubscribe")
            .strip_prefix("<https://links.example.org/u/")
            .and_then(|rest| rest.strip_suffix('>'))
            .map(str::to_owned)
            .unwrap();
        assert!(
            keys.verify(&token, Purpose::Unsubscribe, Utc::now())
                .is_ok()
        );
        let message_id = header("Message-ID");
        let recorded = db
            .count_with(
                "SELECT COUNT(*) FROM deliveries WHERE message_id = $1 AND state = 'sent'",
                &message_id,
            )
            .await;
        assert_eq!(recorded, 1, "{message_id} is in the ledger");
    }
    let counters = metrics.encode().unwrap();
    assert!(
        counters.contains("canvass_deliveries_sent_total 3"),
        "{counters}"
    );
    assert!(
        counters.contains("canvass_deliveries_skipped_total 5"),
        "{counters}"
    );

    let again = worker(&db, &sink.url(), sending(), Arc::new(Metrics::new()))
        .drain()
        .await
        .unwrap();
    assert_eq!(again, Totals::default());
    assert_eq!(sink.messages().len(), 3, "nobody is sent twice");
    db.assert_counts_kept().await;
}

async fn a_deferred_message_is_retried_after_a_wait_and_then_sent(db: TestStore) {
    let Some(deferring) = SmtpSink::start(&["-r", "RCPT", "-b", "451 4.3.0 Try again later"])
    else {
        return;
    };
    let people = eligible_people(&db, 4).await;
    let id = queue_news(&db).await;
    let metrics = Arc::new(Metrics::new());
    let slow_retry = waiting_an_hour();

    let first = worker(&db, &deferring.url(), slow_retry, metrics.clone())
        .drain()
        .await
        .unwrap();

    assert_eq!((first.sent, first.retried), (0, 4));
    assert!(deferring.messages().is_empty());
    assert_eq!(state_counts(&db, id).await, (4, 0, 0, 0), "still queued");
    let later = db
        .count("SELECT COUNT(*) FROM deliveries WHERE attempts = 1 AND next_attempt_at IS NOT NULL AND outcome LIKE '%451%'")
        .await;
    assert_eq!(later, 4, "each waits for its retry, and says why");
    let backlog = db.store.backlog().await.unwrap();
    assert_eq!((backlog.due, backlog.waiting), (0, 4));
    assert!(backlog.next_retry.unwrap() > Utc::now() + chrono::Duration::minutes(29));
    assert!(
        metrics
            .encode()
            .unwrap()
            .contains("canvass_deliveries_retried_total 4")
    );

    // The server takes mail again; the retries come due (here: made due now).
    let Some((accepting, second)) = send_the_retries(&db).await else {
        return;
    };

    assert_eq!(second.sent, 4);
    assert_each_received_once(&accepting, people);
    assert_eq!(state_counts(&db, id).await, (0, 4, 0, 0));
    db.assert_counts_kept().await;
}

async fn a_recipient_refused_for_good_is_failed_and_suppressed_as_bounced(db: TestStore) {
    let Some(refusing) = SmtpSink::start(&[
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 Recipient address rejected: User unknown",
    ]) else {
        return;
    };
    let people = eligible_people(&db, 3).await;
    let id = queue_news(&db).await;

    let totals = worker(&db, &refusing.url(), sending(), Arc::new(Metrics::new()))
        .drain()
        .await
        .unwrap();

    assert_eq!((totals.sent, totals.failed, totals.retried), (0, 3, 0));
    assert_eq!(state_counts(&db, id).await, (0, 0, 3, 0));
    for address in &people {
        let export = db.held(address).await;
        assert_eq!(
            export.suppression.map(|s| s.reason),
            Some(SuppressionReason::Bounced),
            "{address}"
        );
        assert!(export.audit.iter().any(|a| a.action == "suppressed.bounced"
            && a.detail.as_deref().is_some_and(|d| d.ends_with("SMTP 550"))));
    }
    assert_eq!(
        db.store.campaign(id).await.unwrap().unwrap().state.as_str(),
        "done",
        "three bounces are not a failing server"
    );
    // A bounced address is never queued again.
    let next = queue_news(&db).await;
    assert_eq!(state_counts(&db, next).await, (0, 0, 0, 0));

    // A refusal not about the recipient fails the message without suppressing anyone.
    let db2 = TestStore::sqlite().await;
    let Some(policy) =
        SmtpSink::start(&["-f", "DATA", "-B", "554 5.7.1 Message refused by policy"])
    else {
        return;
    };
    eligible_people(&db2, 2).await;
    let id2 = queue_news(&db2).await;
    let totals = worker(&db2, &policy.url(), sending(), Arc::new(Metrics::new()))
        .drain()
        .await
        .unwrap();
    assert_eq!(totals.failed, 2);
    assert_eq!(state_counts(&db2, id2).await, (0, 0, 2, 0));
    assert_eq!(db2.count("SELECT COUNT(*) FROM suppressions").await, 0);
    db.assert_counts_kept().await;
}

async fn a_connection_dropped_at_the_end_of_the_data_is_retried_not_lost(db: TestStore) {
    // The server reads each whole message, then hangs up without answering.
    let Some(dropping) = SmtpSink::start(&["-q", "."]) else {
        return;
    };
    let people = eligible_people(&db, 5).await;
    let id = queue_news(&db).await;

    let first = worker(
        &db,
        &dropping.url(),
        waiting_an_hour(),
        Arc::new(Metrics::new()),
    )
    .drain()
    .await
    .unwrap();

    assert_eq!((first.sent, first.retried), (0, 5));
    assert_eq!(
        state_counts(&db, id).await,
        (5, 0, 0, 0),
        "an unanswered message is not taken as sent, nor lost"
    );
    drop(dropping);

    let Some((accepting, second)) = send_the_retries(&db).await else {
        return;
    };
    assert_eq!(second.sent, 5);
    assert_each_received_once(&accepting, people);
    db.assert_counts_kept().await;
}

/// A working server, and a drain through it once the waiting retries are made due; `None`
/// where smtp-sink is missing.
async fn send_the_retries(db: &TestStore) -> Option<(SmtpSink, Totals)> {
    let accepting = SmtpSink::start(&[])?;
    db.execute("UPDATE deliveries SET next_attempt_at = NULL")
        .await;
    let totals = worker(db, &accepting.url(), sending(), Arc::new(Metrics::new()))
        .drain()
        .await
        .unwrap();
    Some((accepting, totals))
}

/// Each of `people`, and nobody else, received exactly one message.
fn assert_each_received_once(sink: &SmtpSink, people: Vec<String>) {
    let received = sink.received_by_recipient();
    assert_eq!(received.keys().cloned().collect::<Vec<_>>(), sorted(people));
    assert!(received.values().all(|&n| n == 1));
}

/// Retries an hour away: a drain leaves them queued.
fn waiting_an_hour() -> Sending {
    Sending {
        retry: RetryPolicy {
            first_wait: Duration::from_secs(3600),
            longest_wait: Duration::from_secs(3600),
            attempts: 3,
        },
        ..Sending::default()
    }
}

/// The relay goes down for 20 s in the middle of a campaign, as a relay restarting or a network
/// blip would: the worker waits for it (no campaign paused, nobody blamed), says so in
/// `/metrics`, and finishes the campaign by itself once the relay answers, each recipient
/// sent once. (A message whose answer the outage cut off may be sent twice: the relay may have
/// taken it. At most one is in flight per connection.)
async fn a_relay_down_for_twenty_seconds_mid_campaign_is_waited_for(db: TestStore) {
    let Some(mut sink) = SmtpSink::start(&[]) else {
        return;
    };
    let people = eligible_people(&db, 150).await;
    let id = queue_news(&db).await;
    let metrics = Arc::new(Metrics::new());
    let concurrency = 8;
    let sending = Sending {
        concurrency: std::num::NonZeroUsize::new(concurrency).unwrap(),
        rate: Some(canvass::domain::Rate::try_from(25.0).unwrap()),
        outage: Outage {
            longest_wait: Duration::from_secs(4),
            drain_patience: Duration::from_secs(600),
        },
        ..sending()
    };
    let mut worker = worker(&db, &sink.url(), sending, metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        worker
            .run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
    });
    let received = |sink: &SmtpSink| sink.received_by_recipient().len();
    let within = |limit: u64| Instant::now() + Duration::from_secs(limit);
    let deadline = within(30);
    while received(&sink) < 30 {
        assert!(Instant::now() < deadline, "the campaign did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    sink.stop();
    let before = received(&sink);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let campaign = db.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(
        campaign.state.as_str(),
        "queued",
        "not paused for an outage"
    );
    assert!(campaign.paused_reason.is_none());
    assert_eq!(
        db.count("SELECT COUNT(*) FROM deliveries WHERE state = 'failed'")
            .await,
        0,
        "nobody blamed for the relay"
    );
    let during = metrics.encode().unwrap();
    let gauge = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(
        during.contains("canvass_deliveries_deferred_total{reason=\"connection\"}"),
        "{during}"
    );
    assert!(gauge(&during, "canvass_queue_depth") >= (150 - before) as f64 - 1.0);
    assert!(gauge(&during, "canvass_oldest_due_delivery_seconds") >= 10.0);
    assert_eq!(gauge(&during, "canvass_paused_campaigns"), 0.0);

    sink.start_again();
    let deadline = within(60);
    while received(&sink) < 150 {
        if Instant::now() >= deadline {
            let states = db
                .strings(
                    "SELECT state || ' attempts ' || attempts || ' due ' || \
                     CAST(next_attempt_at IS NULL OR next_attempt_at <= CURRENT_TIMESTAMP AS TEXT) \
                     || ' held ' || CAST(lease_owner IS NOT NULL AS TEXT) || ' ' || \
                     COALESCE(outcome, '') FROM deliveries WHERE state <> 'sent'",
                )
                .await;
            panic!(
                "the campaign did not finish by itself: {} of 150 received; {states:?}",
                received(&sink)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let counts = sink.received_by_recipient();
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        sorted(people),
        "every recipient, once the relay is back"
    );
    let twice = counts.values().filter(|&&n| n > 1).count();
    assert!(
        twice <= concurrency && counts.values().all(|&n| n <= 2),
        "sent more than once: {:?}",
        counts.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let campaign = db.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state.as_str(), "done");
    db.assert_counts_kept().await;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
