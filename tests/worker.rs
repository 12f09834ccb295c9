//! The delivery worker, sending to the `file://` outbox, on both backends.

mod support;

use canvass::domain::Actor;
use std::sync::Arc;

use canvass::config::DkimSettings;
use canvass::mail::DkimKeys;
use canvass::mail::token::{Purpose, SigningKeys};
use canvass::mail::{Letterhead, Transport, load_dkim};
use canvass::metrics::Metrics;
use canvass::worker::{Sending, Totals, Worker, WorkerSettings};
use chrono::Utc;
use support::app::KEY_1;
use support::{TestStore, news_campaign, on_both_backends};

on_both_backends!(
    the_worker_sends_each_eligible_person_one_message_with_working_links,
    a_paused_campaign_sends_nothing_until_resumed,
    a_scheduled_campaign_is_queued_and_sent_when_due_with_the_audience_of_then,
    a_template_that_cannot_be_used_pauses_its_campaign_not_the_worker,
    a_step_sends_one_batch_and_the_next_step_the_next,
);

const PEOPLE: &str = "\
email,name,postcode,topics,consent_at
amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z
ben@example.org,Ben <b>Okafor</b>,SG14 1AA,news,2026-09-14T18:30:00Z
claire@example.org,Claire,AL1 3JE,news,2026-09-14T18:30:00Z
dev@example.org,Dev,SG13 7DG,news,2026-09-14T18:30:00Z
";

async fn setup(db: &TestStore) -> i64 {
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    db.queue(&news_campaign(&["E14900001"], &["AL99"])).await
}

fn worker(db: &TestStore) -> Worker {
    worker_counting(db, Arc::new(Metrics::new()))
}

fn worker_counting(db: &TestStore, metrics: Arc<Metrics>) -> Worker {
    worker_with(db, metrics, None, None, Sending::default())
}

fn worker_with(
    db: &TestStore,
    metrics: Arc<Metrics>,
    unsubscribe_mailto: Option<&str>,
    dkim: Option<DkimKeys>,
    sending: Sending,
) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: Letterhead {
                keys: KEY_1.parse().unwrap(),
                base_url: "https://links.example.org/".into(),
                from: "Hertford Labour <news@hertford.example.org>"
                    .parse()
                    .unwrap(),
                unsubscribe_mailto: unsubscribe_mailto.map(|a| a.parse().unwrap()),
                dkim: dkim.unwrap_or_default(),
                return_path: None,
                publisher: support::publisher(),
                reply_to: Some(
                    "Hertford Office <office@hertford.example.org>"
                        .parse()
                        .unwrap(),
                ),
                providers: Default::default(),
            },
            relays: Transport::Outbox(db.dir.path().join("outbox")).into(),
            metrics,
            sending,
        },
    )
}

/// The messages in the outbox, by file name.
fn outbox(db: &TestStore) -> Vec<(String, String)> {
    db.outbox()
}

/// A header's value, unfolded.
fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded
        .split("\r\n")
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .map(str::to_owned)
}

async fn the_worker_sends_each_eligible_person_one_message_with_working_links(db: TestStore) {
    let id = setup(&db).await;
    // Dev withdraws after the campaign was queued: he is skipped, not mailed.
    db.withdraw("dev@example.org", "news", Utc::now()).await;

    let metrics = Arc::new(Metrics::new());
    let total = worker_counting(&db, metrics.clone()).drain().await.unwrap();

    assert_eq!(
        total,
        Totals {
            sent: 2,
            skipped: 1,
            ..Totals::default()
        }
    );
    let messages = outbox(&db);
    let recipients: Vec<String> = messages
        .iter()
        .map(|(_, m)| header(m, "To").unwrap())
        .collect();
    assert_eq!(recipients.len(), 2);
    assert!(recipients.iter().any(|to| to.contains("amira@example.org")));
    assert!(recipients.iter().any(|to| to.contains("ben@example.org")));
    let keys: SigningKeys = KEY_1.parse().unwrap();
    for (_, message) in &messages {
        assert_eq!(
            header(message, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            header(message, "List-Id").as_deref(),
            Some("<news.hertford.example.org>")
        );
        assert_eq!(
            header(message, "Reply-To").as_deref(),
            Some("\"Hertford Office\" <office@hertford.example.org>")
        );
        // The imprint, in both parts (quoted-printable may fold it: compare unfolded).
        let unfolded = message.replace("=\r\n", "").replace("=\n", "");
        assert_eq!(
            unfolded
                .matches("Promoted by A. Agent on behalf of Hertford Labour")
                .count(),
            2,
            "the imprint in the text and the HTML part"
        );
        assert!(
            header(message, "Message-ID")
                .unwrap()
                .ends_with("@hertford.example.org>")
        );
        let unsubscribe = header(message, "List-Unsubscribe").unwrap();
        let token = unsubscribe
            .strip_prefix("<https://links.example.org/u/")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap();
        assert!(keys.verify(token, Purpose::Unsubscribe, Utc::now()).is_ok());
        assert!(message.contains("Hertford and Stortford (sample)"));
        assert!(message.contains("/p/"), "a preference link in the body");
    }
    let ben = &messages
        .iter()
        .find(|(_, m)| header(m, "To").unwrap().contains("ben@"))
        .unwrap()
        .1;
    assert!(
        ben.contains("Ben &lt;b&gt;Okafor&lt;/b&gt;"),
        "escaped in the HTML part"
    );
    let counters = metrics.encode().unwrap();
    assert!(
        counters.contains("canvass_deliveries_sent_total 2"),
        "{counters}"
    );
    assert!(
        counters.contains("canvass_deliveries_skipped_total 1"),
        "{counters}"
    );

    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!((counts.queued, counts.sent, counts.skipped), (0, 2, 1));
    assert_eq!(
        db.store.campaign(id).await.unwrap().unwrap().state.as_str(),
        "done"
    );
    assert_eq!(worker(&db).drain().await.unwrap(), Totals::default());
    assert_eq!(outbox(&db).len(), 2, "nobody is sent twice");
    db.assert_counts_kept().await;
}

async fn a_paused_campaign_sends_nothing_until_resumed(db: TestStore) {
    use canvass::store::StateChange;
    let id = setup(&db).await;
    db.store
        .change_campaign_state(id, StateChange::Pause, &Actor::Operator)
        .await
        .unwrap();

    assert_eq!(worker(&db).drain().await.unwrap(), Totals::default());
    assert!(outbox(&db).is_empty());

    db.store
        .change_campaign_state(id, StateChange::Resume, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(worker(&db).drain().await.unwrap().sent, 3);
    db.assert_counts_kept().await;
}

/// `step` claims one batch, sends it and stops: a rate of 8 a second over a lease of a second
/// makes a batch of two, so three people take two steps, and a third finds nothing due.
async fn a_step_sends_one_batch_and_the_next_step_the_next(db: TestStore) {
    setup(&db).await;
    let sending = Sending {
        rate: Some("8".parse().unwrap()),
        lease: std::time::Duration::from_secs(1),
        ..Sending::default()
    };
    let mut stepper = worker_with(&db, Arc::new(Metrics::new()), None, None, sending);
    let first = stepper.step().await.unwrap();
    assert_eq!(first.sent, 2, "one batch of two: {first:?}");
    assert_eq!(outbox(&db).len(), 2);
    let second = stepper.step().await.unwrap();
    assert_eq!(second.sent, 1, "the rest: {second:?}");
    assert_eq!(stepper.step().await.unwrap(), Totals::default());
    assert_eq!(worker(&db).drain().await.unwrap(), Totals::default());
    assert_eq!(outbox(&db).len(), 3, "nobody is sent twice");
    db.assert_counts_kept().await;
}

/// DKIM: every message is signed, the signature covers both List-Unsubscribe headers (and the
/// mailto one offered beside the link), and it verifies with the public key as a receiver
/// would check it (dkimpy, given the DNS record); a changed List-Unsubscribe no longer does.
#[tokio::test]
async fn dkim_signatures_cover_both_list_unsubscribe_headers_and_verify() {
    if !support::dkim::verifier_installed() {
        return;
    }
    let db = TestStore::sqlite().await;
    setup(&db).await;
    let key = db.dir.path().join("dkim.pem");
    let made = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    use base64::Engine;
    let record = format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(&public.stdout)
    );
    let dkim = Some(
        load_dkim(&[DkimSettings {
            domain: "hertford.example.org".into(),
            selector: "canvass".into(),
            key_file: key,
        }])
        .unwrap(),
    );

    let sent = worker_with(
        &db,
        Arc::new(Metrics::new()),
        Some("leave@hertford.example.org"),
        dkim,
        Sending::default(),
    )
    .drain()
    .await
    .unwrap();

    assert_eq!(sent.sent, 3);
    let verify = |message: &str| {
        support::dkim::verifies(db.dir.path(), message, &[("hertford.example.org", &record)])
    };
    for (name, message) in outbox(&db) {
        let signature = header(&message, "DKIM-Signature").expect("signed");
        let signed: Vec<String> = signature
            .split(';')
            .find_map(|tag| tag.trim().strip_prefix("h="))
            .unwrap()
            .split(':')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for needed in ["from", "list-unsubscribe", "list-unsubscribe-post"] {
            assert!(signed.iter().any(|h| h == needed), "{name}: {signed:?}");
        }
        let unsubscribe = header(&message, "List-Unsubscribe").unwrap();
        assert!(
            unsubscribe.contains(">, <mailto:leave@hertford.example.org?subject=unsubscribe%20"),
            "{unsubscribe}"
        );
        assert!(verify(&message), "{name} verifies");
        let tampered = message.replacen(
            "List-Unsubscribe: <https://",
            "List-Unsubscribe: <http://",
            1,
        );
        assert!(
            !verify(&tampered),
            "{name}: a changed List-Unsubscribe fails"
        );
    }
}

/// A draft scheduled a moment ahead is left alone until then; when it is due, a running
/// worker (a new one: the schedule is in the database) queues it with the audience of that
/// moment, and sends it. A campaign taken off the schedule stays a draft.
async fn a_scheduled_campaign_is_queued_and_sent_when_due_with_the_audience_of_then(db: TestStore) {
    use canvass::domain::Actor;
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let news = news_campaign(&["E14900001"], &[]);
    let due = db
        .store
        .create_campaign(
            &news,
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    let unscheduled = db
        .store
        .create_campaign(
            &news,
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    let soon = Utc::now() + chrono::Duration::milliseconds(1500);
    for id in [due, unscheduled] {
        db.store
            .schedule_campaign(
                id,
                Some(soon),
                &Actor::Operator,
                canvass::store::Imprint::Set,
            )
            .await
            .unwrap();
    }
    db.store
        .schedule_campaign(
            unscheduled,
            None,
            &Actor::Operator,
            canvass::store::Imprint::Set,
        )
        .await
        .unwrap();
    assert!(
        db.store
            .queue_due_campaigns(canvass::store::Imprint::Set)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    // Someone joins after the scheduling: the audience is taken when it is due.
    db.import_people("email,name,postcode,topics\nlate@example.org,Late,SG13 8EQ,news\n")
        .await;

    let (stop, run) = support::run_in_background(worker(&db));
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    stop.send(()).unwrap();
    let totals = run.await.unwrap().unwrap();

    let campaign = db.store.campaign(due).await.unwrap().unwrap();
    assert_ne!(campaign.state.as_str(), "draft");
    assert!(campaign.scheduled_at.is_none());
    assert_eq!(totals.sent, 4, "{totals:?}");
    assert!(
        outbox(&db)
            .iter()
            .any(|(_, m)| header(m, "To").unwrap().contains("late@example.org"))
    );
    let left = db.store.campaign(unscheduled).await.unwrap().unwrap();
    assert_eq!(left.state.as_str(), "draft");
    db.assert_counts_kept().await;
}

/// A stored template the worker cannot use (one written before today's checks) pauses its
/// campaign with the reason; the worker carries on, and nothing is sent.
async fn a_template_that_cannot_be_used_pauses_its_campaign_not_the_worker(db: TestStore) {
    let id = setup(&db).await;
    db.execute("UPDATE campaigns SET html_template = '{{> itself}}'")
        .await;
    let totals = worker(&db)
        .drain()
        .await
        .expect("the worker itself carries on");
    assert_eq!(totals.sent, 0);
    let campaign = db.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state.as_str(), "paused");
    let reason = campaign.paused_reason.unwrap();
    assert!(reason.contains("its template cannot be used"), "{reason}");
    assert!(outbox(&db).is_empty());
    db.assert_counts_kept().await;
}
