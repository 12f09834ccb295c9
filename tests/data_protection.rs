//! What a data protection officer must be able to prove, on both engines: a withdrawal no old
//! list undoes, no child kept without a guardian's consent, the registers and their clocks
//! (under concurrent staff too), an access pack that covers every table holding the person,
//! why a message went, retention at a time the test sets, and no election material without
//! its imprint.

mod support;

use canvass::app::{Actor, AppError, campaigns, contacts, imports, registers, retention};
use canvass::domain::{
    BankHolidays, ContactDraft, Email, RequestClock, RequestStatus, Role, Scope, StaffMember,
    acknowledge_by, uk_day,
};
use canvass::import::CsvFile;
use canvass::mail::Transport;
use canvass::metrics::Metrics;
use canvass::store::Pool;
use canvass::worker::{Sending, Worker, WorkerSettings};
use chrono::{Duration, Months, Utc};
use support::{Recorded, TestStore, on_both_backends};

on_both_backends!(
    an_old_list_never_subscribes_again_someone_who_withdrew_but_a_later_dated_row_does,
    a_child_under_fourteen_is_refused_at_every_door_and_a_guardian_s_consent_is_evidence,
    requests_are_numbered_clocked_paused_extended_and_closed,
    staff_acting_at_once_get_distinct_numbers_and_one_extension,
    complaints_are_logged_acknowledged_and_closed_and_outlive_the_complainant_s_address,
    an_act_for_a_request_is_recorded_with_it_and_closes_it,
    every_table_that_holds_a_person_is_in_their_access_pack,
    a_message_s_proof_names_its_consent_and_approval_and_after_erasure_only_the_delivery,
    retention_erases_only_who_is_past_it_at_the_time_the_test_sets,
    election_material_is_not_queued_or_scheduled_without_an_imprint,
    the_public_complaint_page_works_without_javascript_and_acknowledges_at_once,
    the_public_page_s_limit_holds_against_complaints_sent_at_once,
    the_console_keeps_the_registers_for_admins_only_and_answers_each_post_with_a_redirect,
);

const PEOPLE: &str = "email,name,postcode,topics,consent_at,consent_source\n\
    ben@example.org,Ben Okafor,SG13 8EQ,events;news,2026-01-10,hertford-fair\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-01-10,website\n";

const OP: &Actor = &Actor::Operator;

/// An admin of the staff, signed in.
async fn admin(db: &TestStore, name: &str) -> Actor {
    support::console::add_staff(db, name, "admin", &[]).await;
    Actor::Staff(StaffMember {
        name: name.into(),
        role: Role::Admin,
        scope: Scope::Everyone,
    })
}

/// Imports `csv` as the operator would, `--consented-at` if given.
async fn import(
    db: &TestStore,
    csv: &str,
    consented_at: Option<&str>,
) -> (canvass::import::ContactsImportSummary, Recorded) {
    let mut report = Recorded::default();
    let file = CsvFile::open(&db.file("list.csv", csv)).unwrap();
    let summary = imports::contacts(&db.app(), OP, file, "old list", consented_at, &mut report)
        .await
        .unwrap();
    (summary, report)
}

/// Whether the person's consent to `topic` is in force.
async fn consents(db: &TestStore, address: &str, topic: &str) -> bool {
    db.held(address)
        .await
        .consents
        .iter()
        .any(|c| c.topic == topic && c.granted)
}

/// Runs the futures at once, each as a task of its own; their results.
async fn at_once<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn days_ago(days: i64) -> String {
    (uk_day(Utc::now()) - Duration::days(days)).to_string()
}

async fn an_old_list_never_subscribes_again_someone_who_withdrew_but_a_later_dated_row_does(
    db: TestStore,
) {
    db.import_people(PEOPLE).await;
    let app = db.app();
    contacts::withdraw(
        &app,
        OP,
        "ben@example.org",
        &["events".into()],
        "phone",
        None,
    )
    .await
    .unwrap();
    assert!(!consents(&db, "ben@example.org", "events").await);

    // An old spreadsheet with his row and no consent date: his new name is saved, the
    // withdrawal stands, and the line says why.
    let undated = "email,name,topics\nben@example.org,Benjamin Okafor,events;volunteering\n";
    let (summary, report) = import(&db, undated, None).await;
    assert_eq!((summary.updated, summary.rejected), (1, 0));
    let ben = db.held("ben@example.org").await;
    assert_eq!(ben.name.as_deref(), Some("Benjamin Okafor"));
    assert!(!consents(&db, "ben@example.org", "events").await);
    assert!(
        consents(&db, "ben@example.org", "volunteering").await,
        "a topic he never withdrew from is granted as before"
    );
    let today = canvass::domain::uk_date(Utc::now());
    assert_eq!(
        report.notes,
        [format!(
            "line 2: withdrew from events on {today} (phone); not subscribed again"
        )]
    );

    // The file's own date, before the withdrawal, changes nothing either.
    let (_, report) = import(&db, undated, Some(&days_ago(30))).await;
    assert!(!consents(&db, "ben@example.org", "events").await);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);

    // Staff saving him through the console or the API, with no date: still withdrawn.
    let draft = ContactDraft {
        email: "ben@example.org",
        topics: vec!["events"],
        source: "phone call",
        ..ContactDraft::default()
    };
    let saved = contacts::save(&app, OP, &draft).await.unwrap();
    assert_eq!(saved.withheld.len(), 1);
    assert!(
        saved.withheld[0]
            .to_string()
            .contains("withdrew from events")
    );
    assert!(!consents(&db, "ben@example.org", "events").await);

    // A row dated after his withdrawal (he signed a new form at an event) subscribes him.
    let later = (Utc::now() + Duration::seconds(1)).to_rfc3339();
    let dated = format!(
        "email,topics,consent_at,consent_source\nben@example.org,events,{later},new form\n"
    );
    let (summary, report) = import(&db, &dated, None).await;
    assert_eq!(summary.consents_recorded, 1);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert!(consents(&db, "ben@example.org", "events").await);

    // Unsubscribed from everything: no row, dated or not, subscribes him again.
    contacts::withdraw(&app, OP, "amira@example.org", &[], "letter", None)
        .await
        .unwrap();
    let later = (Utc::now() + Duration::seconds(1)).to_rfc3339();
    let dated = format!("email,topics,consent_at\namira@example.org,news,{later}\n");
    let (summary, report) = import(&db, &dated, None).await;
    assert_eq!(summary.consents_recorded, 0);
    assert!(
        report.notes[0].starts_with("line 2: unsubscribed from everything on"),
        "{:?}",
        report.notes
    );
    db.assert_counts_kept().await;
}

async fn a_child_under_fourteen_is_refused_at_every_door_and_a_guardian_s_consent_is_evidence(
    db: TestStore,
) {
    let app = db.app();
    let twelve = (uk_day(Utc::now()) - Months::new(12 * 12)).to_string();
    let csv = format!(
        "email,name,date_of_birth,guardian_consent,guardian_name,guardian_relationship,\
         guardian_method,topics\n\
         kid@example.org,Kid,{twelve},,,,,events\n\
         kid2@example.org,Kid Two,{twelve},true,,,,events\n\
         kid3@example.org,Kid Three,{twelve},true,Ann Lee,mother,signed form,events\n"
    );
    let (summary, report) = import(&db, &csv, None).await;
    assert_eq!((summary.imported, summary.rejected), (1, 2));
    let lines: Vec<u64> = report.rejections.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3]);
    assert!(report.rejections[0].reason.contains("not stored"));
    assert!(report.rejections[1].reason.contains("guardian_name"));
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE email LIKE 'kid@%' OR email LIKE 'kid2@%'")
            .await,
        0,
        "nothing of a refused child is kept"
    );

    // The API's and the console's door: the same refusal, nothing stored.
    let draft = ContactDraft {
        email: "kid@example.org",
        date_of_birth: &twelve,
        topics: vec!["events"],
        source: "youth event",
        ..ContactDraft::default()
    };
    let refused = contacts::save(&app, OP, &draft).await.unwrap_err();
    assert!(
        matches!(
            refused,
            AppError::Invalid {
                field: "date_of_birth",
                ..
            }
        ),
        "{refused:?}"
    );

    // The evidence is kept and exported.
    let kid3 = db.held("kid3@example.org").await;
    let guardian = kid3.guardian.expect("the guardian's consent is kept");
    assert_eq!(
        (
            guardian.guardian.as_str(),
            guardian.relationship.as_str(),
            guardian.method.as_str()
        ),
        ("Ann Lee", "mother", "signed form")
    );
    assert!(kid3.guardian_consent);

    // A later row that withdraws the guardian's consent of a child held, without a date of
    // birth, is refused by the statement that saves: the child is not kept without it.
    let (summary, report) = import(
        &db,
        "email,guardian_consent\nkid3@example.org,false\n",
        None,
    )
    .await;
    assert_eq!(summary.rejected, 1, "{:?}", report.rejections);
    assert!(db.held("kid3@example.org").await.guardian_consent);
    db.assert_counts_kept().await;
}

async fn requests_are_numbered_clocked_paused_extended_and_closed(db: TestStore) {
    db.import_people(PEOPLE).await;
    let app = db.app();
    let received = days_ago(10);
    let first = registers::open_request(&app, OP, "access", "ben@example.org", &received, "phone")
        .await
        .unwrap();
    let second =
        registers::open_request(&app, OP, "erasure", "AMIRA@example.org", &received, "email")
            .await
            .unwrap();
    let year = received[..4].to_owned();
    assert_eq!(first.to_string(), format!("REQ-{year}-0001"));
    assert_eq!(second.to_string(), format!("REQ-{year}-0002"));
    let reference = first.to_string();

    let line = registers::request(&app, OP, &reference).await.unwrap();
    let today = uk_day(Utc::now());
    let expected = RequestClock::new(received.parse().unwrap());
    assert_eq!(line.due, expected.due(today, BankHolidays::EnglandAndWales));
    assert_eq!(line.days_left, (line.due - today).num_days());
    assert_eq!(line.status, RequestStatus::Open);
    assert!(line.contact.is_some(), "Ben is held");

    // Waiting three days for his identity: the due date moves three days (to a working day).
    registers::pause(&app, OP, &reference, &days_ago(9))
        .await
        .unwrap();
    let paused = registers::request(&app, OP, &reference).await.unwrap();
    assert_eq!(paused.status, RequestStatus::Paused);
    let refused = registers::pause(&app, OP, &reference, &days_ago(8)).await;
    assert!(
        matches!(refused, Err(AppError::Conflict { .. })),
        "{refused:?}"
    );
    registers::resume(&app, OP, &reference, &days_ago(6))
        .await
        .unwrap();
    let resumed = registers::request(&app, OP, &reference).await.unwrap();
    assert_eq!(resumed.paused_days, 3);
    let mut clock = expected.clone();
    clock.pause(days_ago(9).parse().unwrap(), today).unwrap();
    clock.resume(days_ago(6).parse().unwrap(), today).unwrap();
    assert_eq!(resumed.due, clock.due(today, BankHolidays::EnglandAndWales));

    // Extended within the first month: two months more, once.
    let extended = registers::extend(&app, OP, &reference, "many records", &days_ago(1))
        .await
        .unwrap();
    assert_eq!(extended.status, RequestStatus::Extended);
    assert!(extended.due > resumed.due + Duration::days(55));
    let again = registers::extend(&app, OP, &reference, "again", &days_ago(0)).await;
    assert!(matches!(again, Err(AppError::Conflict { .. })), "{again:?}");

    // A date in the future, or a reference that does not exist, is named.
    let tomorrow = (today + Duration::days(1)).to_string();
    assert!(matches!(
        registers::pause(&app, OP, &second.to_string(), &tomorrow).await,
        Err(AppError::Invalid { field: "from", .. })
    ));
    assert!(matches!(
        registers::request(&app, OP, &format!("REQ-{year}-0099")).await,
        Err(AppError::NotFound(_))
    ));

    // Due within a week: only what is; after closing, nothing of it.
    let due = registers::due(&app, OP, 400).await.unwrap();
    assert_eq!(due.requests.len(), 2);
    registers::close(&app, OP, &reference, "sent the export by email")
        .await
        .unwrap();
    let open = registers::requests(&app, OP, false).await.unwrap();
    assert_eq!(open.len(), 1);
    let all = registers::requests(&app, OP, true).await.unwrap();
    let closed = all.iter().find(|r| r.reference == reference).unwrap();
    assert_eq!(closed.status, RequestStatus::Closed);
    assert_eq!(closed.outcome.as_deref(), Some("sent the export by email"));
    let after = registers::close(&app, OP, &reference, "twice").await;
    assert!(matches!(after, Err(AppError::Conflict { .. })), "{after:?}");

    // Only admins keep the registers.
    let organiser = Actor::Staff(StaffMember {
        name: "olu@hq.example.org".into(),
        role: Role::Organiser,
        scope: Scope::Everyone,
    });
    assert!(matches!(
        registers::requests(&app, &organiser, true).await,
        Err(AppError::Denied(_))
    ));
    let audited = db
        .count("SELECT count(*) FROM audit_log WHERE action LIKE 'request.%'")
        .await;
    assert_eq!(
        audited, 6,
        "opened twice, paused, resumed, extended, closed"
    );
}

async fn staff_acting_at_once_get_distinct_numbers_and_one_extension(db: TestStore) {
    let app = db.app();
    let received = days_ago(3);
    let opened = at_once((0..12).map(|n| {
        let (app, received) = (app.clone(), received.clone());
        async move {
            let email = format!("person{n}@example.org");
            registers::open_request(&app, OP, "access", &email, &received, "web").await
        }
    }))
    .await;
    let mut numbers: Vec<u32> = opened.into_iter().map(|r| r.unwrap().number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());

    let reference = format!("REQ-{}-0001", &received[..4]);
    let extensions = at_once((0..6).map(|_| {
        let (app, reference) = (app.clone(), reference.clone());
        async move { registers::extend(&app, OP, &reference, "complex", &days_ago(0)).await }
    }))
    .await;
    assert_eq!(
        extensions.iter().filter(|r| r.is_ok()).count(),
        1,
        "{extensions:?}"
    );
    let pauses = at_once((0..6).map(|_| {
        let (app, reference) = (app.clone(), reference.clone());
        async move { registers::pause(&app, OP, &reference, &days_ago(1)).await }
    }))
    .await;
    assert_eq!(pauses.iter().filter(|r| r.is_ok()).count(), 1, "{pauses:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM request_pauses WHERE until_date IS NULL")
            .await,
        1
    );
}

async fn complaints_are_logged_acknowledged_and_closed_and_outlive_the_complainant_s_address(
    db: TestStore,
) {
    db.import_people(PEOPLE).await;
    let app = db.app();
    let received = days_ago(40);
    let reference = registers::log_complaint(
        &app,
        OP,
        &received,
        "letter",
        "Mailed after unsubscribing",
        Some("ben@example.org"),
        Some("0190abc@hertford.example.org"),
    )
    .await
    .unwrap()
    .to_string();
    let listed = registers::complaints(&app, OP, false).await.unwrap();
    let line = &listed[0];
    assert_eq!(line.reference, reference);
    assert_eq!(
        line.acknowledge_by,
        acknowledge_by(received.parse().unwrap())
    );
    assert_eq!(
        line.message_id.as_deref(),
        Some("<0190abc@hertford.example.org>")
    );
    assert!(
        line.days_left.unwrap() < 0,
        "40 days old and not acknowledged: overdue"
    );
    let due = registers::due(&app, OP, 7).await.unwrap();
    assert_eq!(due.complaints.len(), 1);

    let early = registers::acknowledge(&app, OP, &reference, &days_ago(41)).await;
    assert!(matches!(early, Err(AppError::Invalid { .. })), "{early:?}");
    registers::acknowledge(&app, OP, &reference, &days_ago(1))
        .await
        .unwrap();
    assert!(registers::due(&app, OP, 7).await.unwrap().is_empty());
    let twice = registers::acknowledge(&app, OP, &reference, &days_ago(0)).await;
    assert!(matches!(twice, Err(AppError::Conflict { .. })), "{twice:?}");

    // The complainant is erased: the complaint stays, without their address or words.
    contacts::erase(&app, OP, "ben@example.org").await.unwrap();
    let kept = &registers::complaints(&app, OP, true).await.unwrap()[0];
    assert_eq!(kept.email, None);
    assert!(!kept.summary.contains("unsubscribing"));
    assert_eq!(
        db.count("SELECT count(*) FROM complaints WHERE email_hash IS NOT NULL")
            .await,
        1
    );
    registers::close_complaint(&app, OP, &reference, "apologised; cause fixed")
        .await
        .unwrap();
    assert!(
        registers::complaints(&app, OP, false)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_act_for_a_request_is_recorded_with_it_and_closes_it(db: TestStore) {
    db.import_people(PEOPLE).await;
    let app = db.app();
    let erasure = registers::open_request(
        &app,
        OP,
        "erasure",
        "ben@example.org",
        &days_ago(2),
        "email",
    )
    .await
    .unwrap()
    .to_string();
    // For someone else: refused before anything is done.
    let amira = Email::parse("amira@example.org").unwrap();
    let wrong = registers::request_for(&app, OP, &erasure, &amira).await;
    assert!(
        matches!(
            wrong,
            Err(AppError::Invalid {
                field: "request",
                ..
            })
        ),
        "{wrong:?}"
    );

    let ben = Email::parse("ben@example.org").unwrap();
    let request = registers::request_for(&app, OP, &erasure, &ben)
        .await
        .unwrap();
    contacts::erase(&app, OP, "ben@example.org").await.unwrap();
    let closed = registers::acted(&app, OP, &request, registers::Act::Erase)
        .await
        .unwrap();
    assert!(closed);
    let line = registers::request(&app, OP, &erasure).await.unwrap();
    assert_eq!(line.status, RequestStatus::Closed);
    assert_eq!(
        line.contact, None,
        "the register outlives him, by hash alone"
    );
    assert_eq!(
        db.count_with(
            "SELECT count(*) FROM rights_requests WHERE email_hash = $1",
            ben.hash().as_str()
        )
        .await,
        1
    );
    let acted = db
        .count("SELECT count(*) FROM audit_log WHERE action = 'request.acted'")
        .await;
    assert_eq!(acted, 1);
}

/// The tables that hold a contact's id or an address's hash, and where the access pack shows
/// each; or why a table is not for it.
const COVERED: &[(&str, &str)] = &[
    ("contacts", "email"),
    ("consent_ledger", "consent_history"),
    ("consents", "consents"),
    ("audit_log", "audit"),
    ("deliveries", "messages"),
    ("guardian_consents", "guardian"),
    ("suppressions", "suppression"),
    ("signups", "signups"),
    ("rights_requests", "requests"),
    ("complaints", "complaints"),
];

/// Tables that name a contact but hold nothing about them: the change feed keeps only which
/// contact changed, for the workers sending, and is pruned within minutes.
const NOT_PERSONAL: &[&str] = &["changes"];

async fn every_table_that_holds_a_person_is_in_their_access_pack(db: TestStore) {
    let tables: Vec<String> = match db.store.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(
            "SELECT DISTINCT m.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND p.name IN ('contact_id', 'email_hash') ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Pool::Postgres(pool) => sqlx::query_scalar(
            "SELECT DISTINCT c.table_name::text FROM information_schema.columns c \
             JOIN information_schema.tables t \
               ON t.table_name = c.table_name AND t.table_schema = c.table_schema \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
               AND c.column_name IN ('contact_id', 'email_hash') ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    for table in &tables {
        assert!(
            COVERED.iter().any(|(t, _)| t == table) || NOT_PERSONAL.contains(&table.as_str()),
            "{table} holds a contact id or an address hash, and the access pack does not cover \
             it: add it to the export (and to COVERED)"
        );
    }

    // Someone with something in every one of those tables.
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = db.app();
    let twelve = (uk_day(Utc::now()) - Months::new(12 * 12)).to_string();
    import(
        &db,
        &format!(
            "email,date_of_birth,guardian_consent,guardian_name,guardian_relationship\n\
             ben@example.org,{twelve},true,Ann Okafor,mother\n"
        ),
        None,
    )
    .await;
    let id = db.queue(&support::news_campaign(&[], &[])).await;
    worker(&db).drain().await.unwrap();
    assert!(id > 0);
    registers::open_request(&app, OP, "access", "ben@example.org", &days_ago(1), "email")
        .await
        .unwrap();
    registers::log_complaint(
        &app,
        OP,
        &days_ago(1),
        "email",
        "Too many emails",
        Some("ben@example.org"),
        None,
    )
    .await
    .unwrap();
    contacts::withdraw(&app, OP, "ben@example.org", &[], "phone", None)
        .await
        .unwrap();
    db.store
        .create_signup(&canvass::store::NewSignup {
            email: Email::parse("ben@example.org").unwrap(),
            name: None,
            postcode: None,
            topics: vec![canvass::domain::TopicSlug::parse("news").unwrap()],
            wording: "Yes, email me".into(),
            ip: Some("192.0.2.7".into()),
        })
        .await
        .unwrap();

    let pack = contacts::export(&app, OP, "ben@example.org").await.unwrap();
    let json = serde_json::to_value(&pack).unwrap();
    for (table, key) in COVERED {
        let value = &json[key];
        let filled = match value {
            serde_json::Value::Array(items) => !items.is_empty(),
            serde_json::Value::Null => false,
            _ => true,
        };
        assert!(
            filled,
            "{table}: the access pack's {key} is empty: {json:#}"
        );
    }
    let information = &json["information"];
    for key in [
        "controller",
        "purposes",
        "lawful_basis",
        "retention",
        "source",
        "rights",
        "complaints",
    ] {
        assert!(
            !information[key].is_null(),
            "information.{key}: {information:#}"
        );
    }
    assert!(
        information["complaints"]
            .as_str()
            .unwrap()
            .contains("ico.org.uk")
    );
    let message = &json["messages"][0];
    assert_eq!(message["campaign"], "Winter newsletter");
    assert!(message["message_id"].as_str().unwrap().starts_with('<'));
    // Every export is audited, the command line's too.
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'contact.exported' AND actor = 'operator'")
            .await,
        1
    );
}

fn worker(db: &TestStore) -> Worker {
    Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: support::letterhead(),
            relays: Transport::Outbox(db.dir.path().join("outbox")).into(),
            metrics: std::sync::Arc::new(Metrics::new()),
            sending: Sending::default(),
        },
    )
}

async fn a_message_s_proof_names_its_consent_and_approval_and_after_erasure_only_the_delivery(
    db: TestStore,
) {
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let app = db.app();
    let author = admin(&db, "olu@hq.example.org").await;
    let approver = admin(&db, "hana@hq.example.org").await;
    let draft = serde_json::from_value(serde_json::json!({
        "name": "Polling day", "topic": "events", "subject": "Vote on Thursday",
        "html_template": "<p>Hello {{contact.name}}</p>"
    }))
    .unwrap();
    let id = campaigns::create(&app, &author, draft).await.unwrap();
    campaigns::approve(&app, &approver, id, 1).await.unwrap();
    campaigns::queue(&app, &author, id).await.unwrap();
    worker(&db).drain().await.unwrap();
    let sent = db.held("ben@example.org").await.messages;
    assert_eq!(sent.len(), 1);
    let message_id = sent[0].message_id.clone().unwrap();

    // Pasted as a complaint quotes it, without the brackets.
    let pasted = message_id.trim_matches(['<', '>']);
    let proof = registers::proof(&app, OP, pasted).await.unwrap();
    assert_eq!(proof.state, "sent");
    assert_eq!(proof.campaign.name, "Polling day");
    assert_eq!(proof.campaign.version, Some(1));
    assert_eq!(
        proof.campaign.approved_by.as_deref(),
        Some("staff:hana@hq.example.org")
    );
    let recipient = proof.recipient.expect("Ben is held");
    let consent = recipient.consent.expect("a consent allowed it");
    assert!(consent.granted);
    assert_eq!(
        (consent.topic.as_str(), consent.source.as_str()),
        ("events", "hertford-fair")
    );
    assert!(recipient.recorded_later.is_empty());

    // He withdraws afterwards: the proof still shows what allowed it, and what came since.
    contacts::withdraw(
        &app,
        OP,
        "ben@example.org",
        &["events".into()],
        "phone",
        None,
    )
    .await
    .unwrap();
    let proof = registers::proof(&app, OP, &message_id).await.unwrap();
    let recipient = proof.recipient.unwrap();
    assert!(recipient.consent.unwrap().granted);
    assert!(!recipient.now.expect("his withdrawal since").granted);

    // The console's search says the same, in UK time, to an admin.
    let service = support::app::TestApp::serve(db, support::app::KEY_1).await;
    let dpo = support::console::Browser::signed_in(&service, "hana@hq.example.org").await;
    let encoded: String = url::form_urlencoded::byte_serialize(message_id.as_bytes()).collect();
    let page = dpo.get(&format!("/admin/proof?message_id={encoded}")).await;
    let text = page.main_text();
    assert_eq!(page.status, 200, "{text}");
    for expected in [
        "Polling day",
        "staff:hana@hq.example.org",
        "hertford-fair",
        "Since then",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(
        text.contains(" GMT") || text.contains(" BST"),
        "UK time: {text}"
    );

    // After his erasure only the anonymised delivery remains.
    contacts::erase(&app, OP, "ben@example.org").await.unwrap();
    let proof = registers::proof(&app, OP, &message_id).await.unwrap();
    assert_eq!(proof.recipient, None);
    assert_eq!(proof.campaign.name, "Polling day");
    assert!(matches!(
        registers::proof(&app, OP, "<nothing@example.org>").await,
        Err(AppError::NotFound(_))
    ));
}

async fn retention_erases_only_who_is_past_it_at_the_time_the_test_sets(db: TestStore) {
    db.import_people(
        "email,name,topics,consent_at\n\
         ben@example.org,Ben,events,2026-01-10\n\
         amira@example.org,Amira,news,2026-01-10\n\
         cara@example.org,Cara,news,2026-01-10\n\
         dev@example.org,Dev,news,2026-01-10\n",
    )
    .await;
    let app = db.app().with_data_protection(canvass::app::DataProtection {
        retention_months: Some(24),
        ..Default::default()
    });
    // Amira unsubscribes, Cara too but has an open request, Dev too but is restricted; Ben
    // keeps his consent.
    for who in ["amira@example.org", "cara@example.org", "dev@example.org"] {
        contacts::withdraw(&app, OP, who, &[], "letter", None)
            .await
            .unwrap();
    }
    registers::open_request(
        &app,
        OP,
        "rectification",
        "cara@example.org",
        &days_ago(0),
        "email",
    )
    .await
    .unwrap();
    contacts::restrict(&app, OP, "dev@example.org", true)
        .await
        .unwrap();

    // Erin unsubscribed too, and has a complaint open.
    db.import_people("email,topics\nerin@example.org,news\n")
        .await;
    contacts::withdraw(&app, OP, "erin@example.org", &[], "letter", None)
        .await
        .unwrap();
    registers::log_complaint(
        &app,
        OP,
        &days_ago(0),
        "email",
        "No answer to my letter",
        Some("erin@example.org"),
        None,
    )
    .await
    .unwrap();

    // A year on, nobody is due; twenty-five months on, Amira alone is.
    let in_a_year = Utc::now() + Months::new(12);
    assert!(
        retention::check(&app, OP, in_a_year)
            .await
            .unwrap()
            .is_empty()
    );
    let later = Utc::now() + Months::new(25);
    let due = retention::check(&app, OP, later).await.unwrap();
    let amira = db.held("amira@example.org").await.public_id.to_string();
    assert_eq!(due.contacts, [amira]);
    assert!(due.ip_addresses == 0);

    let done = retention::apply(&app, &Actor::Retention, later)
        .await
        .unwrap();
    assert_eq!(done.erased, 1);
    let amira = Email::parse("amira@example.org").unwrap();
    assert!(db.store.export_contact(&amira).await.unwrap().is_none());
    assert_eq!(
        db.store
            .suppression(&amira.hash())
            .await
            .unwrap()
            .unwrap()
            .reason,
        canvass::domain::SuppressionReason::Erased
    );
    for kept in [
        "ben@example.org",
        "cara@example.org",
        "dev@example.org",
        "erin@example.org",
    ] {
        db.held(kept).await;
    }
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE actor = 'retention' AND action = 'retention.applied'")
            .await,
        1
    );

    // Old IP addresses are blanked, but for the evidence of the consent in force; the ledger
    // takes that change and no other.
    db.withdraw("ben@example.org", "news", Utc::now()).await;
    db.withdraw("ben@example.org", "news", Utc::now() + Duration::seconds(1))
        .await;
    let with_ip = "SELECT count(*) FROM consent_ledger WHERE ip IS NOT NULL";
    assert_eq!(db.count(with_ip).await, 2);
    let done = retention::apply(&app, OP, later).await.unwrap();
    assert_eq!(
        done.ip_addresses, 3,
        "two in the audit log, one superseded in the ledger"
    );
    assert_eq!(db.count(with_ip).await, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE ip IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM consent_ledger l JOIN consents k ON k.ledger_id = l.id \
             WHERE l.ip IS NOT NULL"
        )
        .await,
        1,
        "the consent in force keeps its evidence"
    );
    let tampered = match db.store.pool() {
        Pool::Sqlite(pool) => sqlx::query("UPDATE consent_ledger SET source = 'edited'")
            .execute(pool)
            .await
            .map(drop),
        Pool::Postgres(pool) => sqlx::query("UPDATE consent_ledger SET source = 'edited'")
            .execute(pool)
            .await
            .map(drop),
    };
    assert!(
        tampered.is_err(),
        "the ledger is append-only but for blanking an IP"
    );

    // No period set: nothing automatic, and the command says so.
    let unset = retention::check(&db.app(), OP, later).await;
    assert!(matches!(
        unset,
        Err(AppError::Invalid {
            field: "retention_months",
            ..
        })
    ));
    db.assert_counts_kept().await;
}

async fn election_material_is_not_queued_or_scheduled_without_an_imprint(db: TestStore) {
    db.import_people(PEOPLE).await;
    let mut publisher = support::publisher();
    publisher.imprint = None;
    let unimprinted =
        canvass::app::App::new(db.store.clone(), publisher, "https://links.example.org");
    let draft = |election: bool| {
        serde_json::from_value(serde_json::json!({
            "name": "Vote Labour", "topic": "news", "subject": "Vote on Thursday",
            "html_template": "<p>Vote</p>", "election_material": election
        }))
        .unwrap()
    };
    let id = campaigns::create(&unimprinted, OP, draft(true))
        .await
        .unwrap();
    for refused in [
        campaigns::queue(&unimprinted, OP, id).await.map(drop),
        campaigns::schedule(&unimprinted, OP, id, "2030-01-01T09:00:00Z")
            .await
            .map(drop),
    ] {
        assert!(
            matches!(
                refused,
                Err(AppError::Conflict {
                    code: canvass::app::Conflict::NoImprint,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
    // The statement itself refuses it, whoever calls.
    let outcome = db
        .store
        .queue_campaign(id, OP, canvass::store::Imprint::Missing)
        .await
        .unwrap();
    assert_eq!(outcome, canvass::store::QueueOutcome::Uncleared);
    assert_eq!(db.count("SELECT count(*) FROM deliveries").await, 0);

    // Not election material: queued as ever; election material with an imprint: queued.
    let plain = campaigns::create(&unimprinted, OP, draft(false))
        .await
        .unwrap();
    assert_eq!(campaigns::queue(&unimprinted, OP, plain).await.unwrap(), 2);
    assert_eq!(campaigns::queue(&db.app(), OP, id).await.unwrap(), 2);

    // A worker that has no imprint holds election material rather than send it bare.
    let mut letterhead = support::letterhead();
    letterhead.publisher.imprint = None;
    let mut bare = Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead,
            relays: Transport::Outbox(db.dir.path().join("bare")).into(),
            metrics: std::sync::Arc::new(Metrics::new()),
            sending: Sending::default(),
        },
    );
    let _ = bare.drain().await;
    let held = db
        .store
        .campaign(id)
        .await
        .unwrap()
        .expect("the campaign is there");
    assert_eq!(held.state, canvass::domain::CampaignState::Paused);
    assert!(held.paused_reason.unwrap().contains("imprint"));
    assert_eq!(
        db.count_with(
            "SELECT count(*) FROM deliveries WHERE state = 'sent' AND campaign_id = \
             CAST($1 AS INTEGER)",
            &id.to_string()
        )
        .await,
        0
    );
}

async fn the_public_complaint_page_works_without_javascript_and_acknowledges_at_once(
    db: TestStore,
) {
    let Some(sink) = support::smtp::SmtpSink::start(&[]) else {
        return;
    };
    db.import_people(PEOPLE).await;
    let app = support::app::TestApp::serve_mailing(db, support::app::KEY_1, Some(sink.url())).await;
    let page = app
        .client
        .get(format!("{}/complaint", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/complaint\">"),
        "{html}"
    );
    assert!(html.contains("ico.org.uk/make-a-complaint"));
    assert!(!html.contains("<script"), "a plain form, no script");

    // Every page's footer leads here.
    let unsubscribe = app
        .client
        .get(format!("{}/u/anything", app.base))
        .send()
        .await
        .unwrap();
    assert!(
        unsubscribe
            .text()
            .await
            .unwrap()
            .contains("href=\"/complaint\"")
    );

    // Each from an address of its own (through the trusted proxy), as the limit per IP
    // address is not what is tried here.
    let sent_from = std::sync::atomic::AtomicU8::new(1);
    let complain = |email: &str, summary: &str| {
        let ip = sent_from.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request = app
            .client
            .post(format!("{}/complaint", app.base))
            .header("X-Forwarded-For", format!("198.51.100.{ip}"))
            .form(&[("email", email), ("summary", summary), ("message_id", "")]);
        async move { request.send().await.unwrap() }
    };
    let answer = complain("ben@example.org", "You emailed me after I unsubscribed").await;
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    assert!(text.contains("your complaint is recorded"), "{text}");
    let year = uk_day(Utc::now()).format("%Y").to_string();
    let registered = registers::complaints(&app.db.app(), OP, false)
        .await
        .unwrap();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].channel, canvass::domain::Channel::Web);
    assert_eq!(
        registered[0].acknowledged_on,
        Some(uk_day(Utc::now())),
        "acknowledged by email at once"
    );
    let sent = sink.messages();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains(&format!("CMP-{year}-0001")));
    assert!(
        !sent[0].contains("after I unsubscribed"),
        "the acknowledgement does not repeat what a stranger wrote"
    );

    // Another site cannot make its visitors' browsers complain (and mail) in their name.
    let forged = app
        .client
        .post(format!("{}/complaint", app.base))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Origin", "https://elsewhere.example")
        .form(&[("email", "victim@example.org"), ("summary", "Spam")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // An erased person who complains: logged with the hash alone, and mailed nothing.
    contacts::erase(&app.db.app(), OP, "amira@example.org")
        .await
        .unwrap();
    assert_eq!(complain("amira@example.org", "Why?").await.status(), 200);
    let erased = registers::complaints(&app.db.app(), OP, false)
        .await
        .unwrap();
    assert_eq!(erased.len(), 2);
    assert_eq!(erased[1].email, None);
    assert_eq!(erased[1].acknowledged_on, None);
    assert_eq!(sink.messages().len(), 1);

    // Bad input: refused by name, nothing logged; the form keeps what was typed.
    let refused = complain("not an address", "Something").await;
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("Your email address"), "{text}");
    let refused = complain("ben@example.org", "   ").await;
    assert_eq!(refused.status(), 422);
    // An address gets three an hour; the answer to a fourth reads the same, and nothing more
    // is logged or sent.
    for _ in 0..4 {
        assert_eq!(complain("flood@example.org", "Again").await.status(), 200);
    }
    assert_eq!(
        registers::complaints(&app.db.app(), OP, false)
            .await
            .unwrap()
            .len(),
        5
    );
    assert_eq!(sink.messages().len(), 4);
}

async fn the_console_keeps_the_registers_for_admins_only_and_answers_each_post_with_a_redirect(
    db: TestStore,
) {
    db.import_people(PEOPLE).await;
    support::console::add_staff(&db, "dpo@hq.example.org", "admin", &[]).await;
    support::console::add_staff(&db, "olu@hq.example.org", "organiser", &[]).await;
    let app = support::app::TestApp::serve(db, support::app::KEY_1).await;
    let dpo = support::console::Browser::signed_in(&app, "dpo@hq.example.org").await;
    let answer = dpo
        .submit(
            "/admin/requests",
            "/admin/requests",
            &[
                ("right", "erasure"),
                ("email", "ben@example.org"),
                ("received", &days_ago(35)),
                ("channel", "letter"),
            ],
        )
        .await;
    let year = days_ago(35)[..4].to_owned();
    let reference = format!("REQ-{year}-0001");
    assert_eq!(
        answer.location(),
        Some(format!("/admin/requests/{reference}?done=opened").as_str())
    );
    let page = dpo.get(&format!("/admin/requests/{reference}")).await;
    assert!(page.main_text().contains("Erasure"), "{}", page.main_text());

    // Overdue: the dashboard says so, by reference.
    let home = dpo.get("/admin").await;
    assert!(
        home.main_text().contains(&reference),
        "{}",
        home.main_text()
    );
    assert!(home.main_text().contains("overdue"));

    // A refusal is shown beside the form, and changes nothing.
    let late = dpo
        .submit(
            &format!("/admin/requests/{reference}"),
            &format!("/admin/requests/{reference}/extend"),
            &[("reason", "complex"), ("notified", &days_ago(0))],
        )
        .await;
    assert_eq!(late.status, 409, "{}", late.main_text());
    assert!(late.main_text().contains("first month"));
    let closed = dpo
        .submit(
            &format!("/admin/requests/{reference}"),
            &format!("/admin/requests/{reference}/close"),
            &[("outcome", "erased")],
        )
        .await;
    assert_eq!(
        closed.location(),
        Some(format!("/admin/requests/{reference}?done=close").as_str())
    );

    // Complaints: logged, then looked up by Message-ID.
    let logged = dpo
        .submit(
            "/admin/complaints",
            "/admin/complaints",
            &[
                ("received", &days_ago(2)),
                ("channel", "phone"),
                ("summary", "Called about a leaflet email"),
                ("email", ""),
                ("message_id", ""),
            ],
        )
        .await;
    assert!(
        logged
            .location()
            .unwrap()
            .starts_with("/admin/complaints/CMP-")
    );
    let proof = dpo
        .get("/admin/proof?message_id=%3Cnone%40example.org%3E")
        .await;
    assert_eq!(proof.status, 404);
    assert!(proof.main_text().contains("sent no message"));

    // An organiser sees neither register.
    let olu = support::console::Browser::signed_in(&app, "olu@hq.example.org").await;
    assert_eq!(olu.get("/admin/requests").await.status, 403);
    assert_eq!(olu.get("/admin/complaints").await.status, 403);
}

/// Three complaints an hour from one address: the statement that logs one checks it, so eight
/// sent at once log three, on both engines.
async fn the_public_page_s_limit_holds_against_complaints_sent_at_once(db: TestStore) {
    let app = db.app();
    let sent = at_once((0..8).map(|n| {
        let app = app.clone();
        async move {
            registers::complain(&app, "flood@example.org", &format!("Complaint {n}"), None).await
        }
    }))
    .await;
    let logged = sent
        .into_iter()
        .map(|result| result.unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(logged, 3);
    assert_eq!(
        db.count("SELECT count(*) FROM complaints").await,
        3,
        "no more than the limit, however they race"
    );
    let other = registers::complain(&app, "someone@example.org", "Mine", None)
        .await
        .unwrap();
    assert!(other.is_some(), "the limit is the address's own");
}
