//! The storage conformance suite: every test runs unchanged against SQLite and PostgreSQL.
//! The PostgreSQL half runs when `CANVASS_TEST_POSTGRES_URL` is set, each test in a fresh
//! database.

mod support;

use canvass::app::imports;
use canvass::domain::{Actor, CampaignState, Email, PublicId, SuppressionReason, Topic, TopicSlug};
use canvass::import::{CsvFile, import_directory};
use canvass::store::{
    ErasureOutcome, FeedbackAbout, Journal, JournalEvent, Pool, QueueOutcome, RestrictionOutcome,
    StateChange, StateChangeOutcome, Store, StoreError, UnsubscribeOutcome, UnsubscribeRequest,
    Withdrawal,
};
use chrono::{TimeZone, Utc};
use support::{Recorded, TestStore, news_campaign, on_both_backends};

on_both_backends!(
    the_sending_budget_never_gives_more_than_its_rate_to_drawers_at_once,
    an_uploaded_file_imports_from_its_reader_telling_its_progress_as_events,
    queueing_takes_exactly_the_people_the_rule_allows,
    the_kept_counts_stay_true_when_people_change_at_once,
    a_postcode_search_finds_its_district_or_sector_and_no_other,
    a_search_finds_any_part_of_a_name_or_address_as_reading_each_would,
    a_search_matching_many_is_counted_only_so_far_past_its_page,
    a_distance_rule_reaches_exactly_those_within_its_miles_of_the_venue,
    a_copy_for_the_rest_reaches_only_those_not_sent_either_and_is_counted_so,
    campaigns_pause_resume_and_cancel,
    a_lease_run_out_passes_to_another_worker_never_back_to_its_own,
    a_batch_of_unsubscribes_answers_each_request_and_changes_each_person_once,
    migrating_twice_is_harmless_and_creates_the_default_topics,
    adding_a_topic_twice_is_refused,
    import_lands_the_good_rows_and_names_each_bad_one_by_line,
    reimporting_the_same_file_changes_nothing,
    an_excel_sheet_imports_as_its_user_expects,
    an_unterminated_quote_is_named_by_its_line,
    the_same_address_twice_in_a_file_is_one_contact,
    an_empty_cell_keeps_what_is_held,
    a_suppressed_address_stays_suppressed_after_reimport,
    an_old_spreadsheet_never_overrides_a_newer_withdrawal,
    fresher_consent_after_a_withdrawal_is_recorded,
    contacts_take_their_constituency_from_the_directory,
    directory_import_reads_onspd_columns_and_skips_pseudo_constituencies,
    directory_import_replaces_the_previous_directory,
    an_empty_directory_file_leaves_the_directory_unchanged,
    a_directory_that_would_destroy_is_refused_and_the_old_one_kept,
    erasure_leaves_no_name_email_or_postcode_anywhere,
    an_erased_person_is_not_reimported,
    every_erasure_and_suppression_is_journalled_before_it_is_done,
    a_list_larger_than_one_transaction_imports_as_one,
    erasing_an_unknown_address_still_suppresses_it,
    restriction_is_kept_and_lifted,
    export_holds_details_consents_history_suppression_and_audit,
    export_of_an_unknown_address_is_nothing,
    the_consent_ledger_refuses_updates,
    staff_tokens_are_kept_as_hashes_found_listed_and_revoked,
    two_admins_demoted_or_disabled_at_once_leave_one,
    a_signup_is_nothing_until_confirmed_then_consent_with_its_evidence,
    a_confirmed_signup_lifts_the_suppression_of_an_address_and_the_ledger_keeps_both,
    signups_are_exported_while_held_and_purged_after_seven_days,
    a_withdrawal_by_phone_is_recorded_by_topic_or_for_everything,
);

const HEADER: &str =
    "email,name,postcode,date_of_birth,guardian_consent,topics,consent_at,consent_source\n";

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn slug(s: &str) -> TopicSlug {
    TopicSlug::parse(s).unwrap()
}

/// An upload is a reader, not a path, of a size known or not; what the import does reaches
/// a page as events: started, how far, each refused row.
async fn an_uploaded_file_imports_from_its_reader_telling_its_progress_as_events(db: TestStore) {
    use canvass::app::imports::ImportEvent;
    let csv = "email,name,topics\r\na@example.org,A,news\r\nnot an address,B,news\r\n";
    let upload = CsvFile::from_reader(
        "upload.csv",
        std::io::Cursor::new(csv.as_bytes().to_vec()),
        csv.len() as u64,
    );
    let (mut events, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let summary = imports::contacts(
        &db.app(),
        &canvass::domain::Actor::Operator,
        upload,
        "upload",
        None,
        &mut events,
    )
    .await
    .unwrap();
    assert_eq!((summary.imported, summary.rejected), (1, 1));
    drop(events);
    let mut told = Vec::new();
    while let Some(event) = heard.recv().await {
        told.push(event);
    }
    assert_eq!(
        told.first(),
        Some(&ImportEvent::Started {
            total_bytes: csv.len() as u64
        })
    );
    assert!(
        told.iter()
            .any(|e| matches!(e, ImportEvent::Rejected(r) if r.line == 3)),
        "{told:?}"
    );
    assert!(
        told.iter()
            .any(|e| matches!(e, ImportEvent::Advanced { bytes_read } if *bytes_read > 0)),
        "{told:?}"
    );
    db.assert_counts_kept().await;
}

/// Imports a postcode directory file as the operator.
async fn directory(
    db: &TestStore,
    path: &std::path::Path,
    force: bool,
    report: &mut Recorded,
) -> Result<canvass::import::DirectoryImportSummary, canvass::import::ImportError> {
    import_directory(
        &db.store,
        CsvFile::open(path)?,
        force,
        &Actor::Operator,
        report,
    )
    .await
}

async fn import(db: &TestStore, csv: &str) -> (canvass::import::ContactsImportSummary, Recorded) {
    let path = db.file("contacts.csv", csv);
    let mut report = Recorded::default();
    let summary = imports::contacts(
        &db.app(),
        &canvass::domain::Actor::Operator,
        CsvFile::open(&path).unwrap(),
        "test",
        None,
        &mut report,
    )
    .await
    .unwrap();
    (summary, report)
}

async fn migrating_twice_is_harmless_and_creates_the_default_topics(db: TestStore) {
    db.store.migrate().await.unwrap();
    db.store.check_schema().await.unwrap();
    let slugs: Vec<String> = db
        .store
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.to_string())
        .collect();
    assert_eq!(slugs, ["news", "campaigns", "events", "volunteering"]);
    db.assert_counts_kept().await;
}

async fn adding_a_topic_twice_is_refused(db: TestStore) {
    let topic = Topic {
        slug: slug("door-knocking"),
        name: "Door knocking".into(),
    };
    db.store.add_topic(&topic, &Actor::Operator).await.unwrap();
    let again = db.store.add_topic(&topic, &Actor::Operator).await;
    assert!(
        matches!(again, Err(StoreError::TopicExists(_))),
        "{again:?}"
    );
    assert_eq!(db.store.list_topics().await.unwrap().len(), 5);
    db.assert_counts_kept().await;
}

async fn import_lands_the_good_rows_and_names_each_bad_one_by_line(db: TestStore) {
    let csv = format!(
        "{HEADER}\
         good.one@example.org,Good One,SG13 8EQ,1980-01-01,,news;events,2026-01-01T00:00:00Z,form-a\n\
         not-an-email,Bad Email,,,,,,\n\
         good.two@example.org,Good Two,,,,,,\n\
         bad.postcode@example.org,Bad Postcode,XYZ,,,,,\n\
         bad.topic@example.org,Bad Topic,,,,news;flying,,\n\
         bad.date@example.org,Bad Date,,01/02/1980,,,,\n\
         bad.consent@example.org,,,,,news,yesterday,\n\
         bad.guardian@example.org,,,,maybe,,,\n\
         short.row@example.org,Short\n\
         \"quoted, comma\"@example.org,\"Quoted, Name\",,,,,,\n\
         good.three@example.org,\"Three, Good\",sg1 2aa,1995-05-05,true,events,,\n"
    );
    let (summary, report) = import(&db, &csv).await;
    let lines: Vec<(u64, &str)> = report
        .rejections
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    let rejected_lines: Vec<u64> = lines.iter().map(|(l, _)| *l).collect();
    assert_eq!(rejected_lines, [3, 5, 6, 7, 8, 9, 10, 11], "{lines:?}");
    assert!(lines[0].1.contains("invalid email"), "{lines:?}");
    assert!(lines[1].1.contains("postcode"), "{lines:?}");
    assert!(lines[2].1.contains("no topic 'flying'"), "{lines:?}");
    assert!(lines[3].1.contains("date_of_birth"), "{lines:?}");
    assert!(lines[4].1.contains("consent_at"), "{lines:?}");
    assert!(lines[5].1.contains("guardian_consent"), "{lines:?}");
    assert!(lines[6].1.contains("fields"), "{lines:?}");
    assert!(lines[7].1.contains("invalid email"), "{lines:?}");
    assert_eq!(
        (summary.imported, summary.updated, summary.rejected),
        (3, 0, 8)
    );
    assert_eq!(db.count("SELECT count(*) FROM contacts").await, 3);

    let three = db.held("GOOD.THREE@example.org").await;
    assert_eq!(three.name.as_deref(), Some("Three, Good"));
    assert_eq!(three.postcode.as_deref(), Some("SG1 2AA"));
    assert!(three.guardian_consent);
    let one = db.held("good.one@example.org").await;
    let topics: Vec<&str> = one.consents.iter().map(|c| c.topic.as_str()).collect();
    assert_eq!(topics, ["news", "events"]);
    assert!(
        one.consents
            .iter()
            .all(|c| c.granted && c.source == "form-a")
    );
    assert_eq!(
        one.consents[0].at,
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    );
    db.assert_counts_kept().await;
}

/// A sheet as Excel saves it where the decimal separator is a comma: CRLF line ends, `;`
/// between cells, first and last names, dates without times; with the mistakes people make in
/// one. Lines are numbered as the user counts them, and each mistake is named.
async fn an_excel_sheet_imports_as_its_user_expects(db: TestStore) {
    let long = "x".repeat(1001);
    let csv = format!(
        "email;first_name;last_name;topics;consent_at\r\n\
         ada@example.org;Ada;Lovelace;news;2026-07-01\r\n\
         ip@[127.0.0.1];Ip;Literal;news;\r\n\
         commas@example.org;Comma;Person;news,events;\r\n\
         dotless@localhost;No;Dot;news;\r\n\
         long@example.org;{long};Person;news;\r\n\
         grace@example.org;Grace;;events;2026-12-01\r\n"
    );
    let (summary, report) = import(&db, &csv).await;
    let lines: Vec<(u64, &str)> = report
        .rejections
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        lines.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [3, 4, 5, 6],
        "{lines:?}"
    );
    assert!(
        lines[0].1.contains("not an internet mail domain"),
        "{lines:?}"
    );
    assert!(lines[1].1.contains("separated by ';'"), "{lines:?}");
    assert!(
        lines[2].1.contains("not an internet mail domain"),
        "{lines:?}"
    );
    assert!(lines[3].1.contains("at most 1000"), "{lines:?}");
    assert_eq!((summary.imported, summary.rejected), (2, 4));

    let ada = db.held("ada@example.org").await;
    assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
    // Midnight on 1 July in the UK is 23:00 on 30 June in UTC (BST); in December, midnight.
    assert_eq!(
        ada.consents[0].at,
        Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0).unwrap()
    );
    let grace = db.held("grace@example.org").await;
    assert_eq!(grace.name.as_deref(), Some("Grace"));
    assert_eq!(
        grace.consents[0].at,
        Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
    );
    db.assert_counts_kept().await;
}

/// A quote left open would read the rest of the file into one cell: the row is named by its
/// line, and a long tail stops the import there instead of filling memory with it.
async fn an_unterminated_quote_is_named_by_its_line(db: TestStore) {
    let csv = format!("{HEADER}a@example.org,\"Ada,,,,news,,\nb@example.org,B,,,,news,,\n");
    let (summary, report) = import(&db, &csv).await;
    assert_eq!(summary.imported, 0);
    assert_eq!(report.rejections[0].line, 2);
    assert!(
        report.rejections[0].reason.contains("quote"),
        "{:?}",
        report.rejections
    );

    let tail: String = (0..100_000)
        .map(|i| format!("p{i}@example.org,P,,,,news,,\n"))
        .collect();
    let path = db.file(
        "runaway.csv",
        &format!("{HEADER}ok@example.org,Ok,,,,news,,\nb@example.org,\"B,,,,news,,\n{tail}"),
    );
    let mut report = Recorded::default();
    let failed = imports::contacts(
        &db.app(),
        &canvass::domain::Actor::Operator,
        CsvFile::open(&path).unwrap(),
        "test",
        None,
        &mut report,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(failed.contains("the row at line 3"), "{failed}");
    assert!(failed.contains("closing quote"), "{failed}");
    assert!(
        db.store
            .export_contact(&email("ok@example.org"))
            .await
            .unwrap()
            .is_some(),
        "the row before the open quote was imported"
    );

    // A cell of two lines in a row of the right width is Excel's Alt+Enter, and fine.
    let (summary, report) = import(
        &db,
        "email,name,address,topics\r\nann@example.org,Ann,\"1 High St\nHertford\",news\r\n",
    )
    .await;
    assert_eq!(summary.imported, 1, "{:?}", report.rejections);
    assert!(
        db.store
            .export_contact(&email("p99999@example.org"))
            .await
            .unwrap()
            .is_none(),
        "nothing after the open quote was imported"
    );
    db.assert_counts_kept().await;
}

async fn reimporting_the_same_file_changes_nothing(db: TestStore) {
    let csv = format!(
        "{HEADER}\
         a@example.org,A,SG13 8EQ,1980-01-01,false,news;events,2026-01-01T00:00:00Z,form\n\
         b@example.org,B,,,,campaigns,2026-02-01T12:30:00.123456Z,\n\
         c@example.org,,,,,,,\n"
    );
    let (first, _) = import(&db, &csv).await;
    assert_eq!(
        (first.imported, first.updated, first.consents_recorded),
        (3, 0, 3)
    );
    let before = db.dump().await;
    let (second, report) = import(&db, &csv).await;
    assert!(report.rejections.is_empty());
    assert_eq!(
        (
            second.imported,
            second.updated,
            second.unchanged,
            second.consents_recorded
        ),
        (0, 0, 3, 0),
        "held already, and changed in nothing"
    );
    // Only the audit log hears of it: who imported what, and when.
    let without_audit = |dump: String| {
        dump.lines()
            .filter(|line| !line.contains("audit_log"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_audit(db.dump().await),
        without_audit(before),
        "a re-import changed the database"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action = 'contacts.imported'")
            .await,
        2
    );
    // A new consent alone is a change to the person, as a new name is.
    let csv = format!(
        "{HEADER}\
         a@example.org,A,SG13 8EQ,1980-01-01,false,news;events;volunteering,2026-01-01T00:00:00Z,form\n\
         b@example.org,Bea,,,,campaigns,2026-02-01T12:30:00.123456Z,\n\
         c@example.org,,,,,,,\n"
    );
    let (third, _) = import(&db, &csv).await;
    assert_eq!(
        (
            third.imported,
            third.updated,
            third.unchanged,
            third.consents_recorded
        ),
        (0, 2, 1, 1)
    );
    db.assert_counts_kept().await;
}

async fn the_same_address_twice_in_a_file_is_one_contact(db: TestStore) {
    let csv = format!(
        "{HEADER}\
         Jo@Example.org,Jo,,,,news,2026-01-01T00:00:00Z,\n\
         jo@example.org,Joanna,,,,events,2026-01-02T00:00:00Z,\n"
    );
    let (summary, _) = import(&db, &csv).await;
    assert_eq!((summary.imported, summary.updated), (1, 1));
    let export = db.held("JO@EXAMPLE.ORG").await;
    assert_eq!(export.name.as_deref(), Some("Joanna"));
    assert_eq!(export.email, "jo@example.org");
    assert_eq!(export.consents.len(), 2);
    db.assert_counts_kept().await;
}

async fn an_empty_cell_keeps_what_is_held(db: TestStore) {
    let (summary, _) = import(
        &db,
        "email,name,postcode,date_of_birth,guardian_consent,guardian_name,guardian_relationship\n\
         jo@example.org,Jo,SG13 8EQ,2014-01-01,true,Ann Lee,mother\n",
    )
    .await;
    assert_eq!(summary.imported, 1);
    // A child held with a guardian's consent: a row that says nothing of it keeps it.
    let (summary, _) = import(&db, "email,name\njo@example.org,\n").await;
    assert_eq!((summary.updated, summary.unchanged), (0, 1));
    let export = db.held("jo@example.org").await;
    assert_eq!(export.name.as_deref(), Some("Jo"));
    assert_eq!(export.postcode.as_deref(), Some("SG13 8EQ"));
    assert!(
        export.guardian_consent,
        "guardian consent was lost by a file without it"
    );
    db.assert_counts_kept().await;
}

async fn a_suppressed_address_stays_suppressed_after_reimport(db: TestStore) {
    let csv = format!("{HEADER}jo@example.org,Jo,,,,news,2026-01-01T00:00:00Z,\n");
    import(&db, &csv).await;
    let jo = email("jo@example.org");
    db.store
        .suppress(&jo.hash(), SuppressionReason::Unsubscribed)
        .await
        .unwrap();
    let later = format!("{HEADER}jo@example.org,Jo,,,,news;events,2026-06-01T00:00:00Z,\n");
    let (summary, _) = import(&db, &later).await;
    assert_eq!(summary.consents_recorded, 0);
    let export = db.store.export_contact(&jo).await.unwrap().unwrap();
    assert_eq!(
        export.suppression.map(|s| s.reason),
        Some(SuppressionReason::Unsubscribed)
    );
    assert_eq!(
        export.consent_history.len(),
        1,
        "the import granted consent to a suppressed address"
    );
    db.assert_counts_kept().await;
}

async fn an_old_spreadsheet_never_overrides_a_newer_withdrawal(db: TestStore) {
    let csv = format!("{HEADER}jo@example.org,Jo,,,,news,2026-01-01T00:00:00Z,\n");
    import(&db, &csv).await;
    db.withdraw(
        "jo@example.org",
        "news",
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
    )
    .await;
    let (summary, _) = import(&db, &csv).await;
    assert_eq!(summary.consents_recorded, 0);
    let export = db.held("jo@example.org").await;
    assert!(!export.consents[0].granted);
    assert_eq!(export.consent_history.len(), 2);
    db.assert_counts_kept().await;
}

async fn fresher_consent_after_a_withdrawal_is_recorded(db: TestStore) {
    import(
        &db,
        &format!("{HEADER}jo@example.org,Jo,,,,news,2026-01-01T00:00:00Z,\n"),
    )
    .await;
    db.withdraw(
        "jo@example.org",
        "news",
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
    )
    .await;
    let newer = format!("{HEADER}jo@example.org,Jo,,,,news,2026-04-01T09:00:00Z,new-form\n");
    let (summary, _) = import(&db, &newer).await;
    assert_eq!(summary.consents_recorded, 1);
    let export = db.held("jo@example.org").await;
    assert!(export.consents[0].granted);
    assert_eq!(export.consents[0].source, "new-form");
    let history: Vec<bool> = export.consent_history.iter().map(|e| e.granted).collect();
    assert_eq!(history, [true, false, true]);
    db.assert_counts_kept().await;
}

async fn contacts_take_their_constituency_from_the_directory(db: TestStore) {
    db.load_sample_directory().await;
    import(
        &db,
        &format!("{HEADER}jo@example.org,Jo,sg138eq,,,,,\nal@example.org,Al,ZE1 0AA,,,,,\n"),
    )
    .await;
    let jo = db.held("jo@example.org").await;
    let constituency = jo.constituency.unwrap();
    assert_eq!(constituency.code, "E14900001");
    assert_eq!(
        constituency.name.as_deref(),
        Some("Hertford and Stortford (sample)")
    );
    let al = db.held("al@example.org").await;
    assert_eq!(al.postcode.as_deref(), Some("ZE1 0AA"));
    assert!(
        al.constituency.is_none(),
        "a postcode outside the directory has no constituency"
    );
    db.assert_counts_kept().await;
}

async fn directory_import_reads_onspd_columns_and_skips_pseudo_constituencies(db: TestStore) {
    let onspd = "\"pcd\",\"pcd2\",\"pcds\",\"dointr\",\"doterm\",\"oscty\",\"pcon\",\"lat\"\n\
        \"SG138EQ\",\"SG13 8EQ\",\"SG13 8EQ\",\"198001\",\"\",\"E10000015\",\"E14001285\",51.79\n\
        \"SG1  2AA\",\"SG1  2AA\",\"SG1 2AA\",\"198001\",\"\",\"E10000015\",\"E14001527\",51.9\n\
        \"GY1  1AA\",\"GY1  1AA\",\"GY1 1AA\",\"198001\",\"\",\"L99999999\",\"L99999999\",49.4\n\
        \"XX\",\"XX\",\"not a postcode\",\"198001\",\"\",\"\",\"E14001285\",0\n\
        \"SG141AA\",\"SG14 1AA\",\"SG14 1AA\",\"198001\",\"\",\"\",\"\",51.7\n";
    let path = db.file("onspd.csv", onspd);
    let mut report = Recorded::default();
    // One row in five is bad on purpose: forced past the 1% rule.
    let summary = directory(&db, &path, true, &mut report).await.unwrap();
    assert_eq!(summary.postcodes, 2);
    assert_eq!(summary.constituencies, 2);
    assert_eq!(summary.without_constituency, 2);
    assert_eq!(summary.rejected, 1);
    assert_eq!(report.rejections[0].line, 5);
    let lookup = db
        .store
        .lookup_postcode(&canvass::domain::Postcode::parse("sg13 8eq").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lookup.constituency.as_str(), "E14001285");
    assert_eq!(lookup.constituency_name, None);
    db.assert_counts_kept().await;
}

async fn directory_import_replaces_the_previous_directory(db: TestStore) {
    db.load_sample_directory().await;
    assert_eq!(db.store.directory_size().await.unwrap(), 23);
    let path = db.file(
        "new.csv",
        "postcode,constituency_code\nSG13 8EQ,E14000999\nZE1 0AA,S14000051\n",
    );
    let mut report = Recorded::default();
    directory(&db, &path, false, &mut report).await.unwrap();
    assert_eq!(db.store.directory_size().await.unwrap(), 2);
    let moved = db
        .store
        .lookup_postcode(&canvass::domain::Postcode::parse("SG13 8EQ").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.constituency.as_str(), "E14000999");
    let gone = db
        .store
        .lookup_postcode(&canvass::domain::Postcode::parse("SG1 2AA").unwrap())
        .await
        .unwrap();
    assert!(gone.is_none());
    db.assert_counts_kept().await;
}

/// A file of one good row and 2,000 bad ones used to replace the whole directory: a queued
/// constituency campaign then skipped everyone. Over 1% refused, the old directory stays; a
/// directory that places fewer of the contacts than today is refused too; `force` overrides
/// both.
async fn a_directory_that_would_destroy_is_refused_and_the_old_one_kept(db: TestStore) {
    use canvass::import::ImportError;
    db.load_sample_directory().await;
    db.import_people(
        "email,name,postcode,topics
         a@example.org,A,SG13 8EQ,news
         b@example.org,B,SG1 2AA,news
",
    )
    .await;
    let before = db.dump().await;
    let garbage: String = (0..2000)
        .map(|i| format!("rubbish {i},E14000001\n"))
        .collect();
    let path = db.file(
        "garbage.csv",
        &format!("postcode,constituency_code\nSG13 8EQ,E14900001\n{garbage}"),
    );
    let mut report = Recorded::default();
    let refused = directory(&db, &path, false, &mut report).await;
    assert!(
        matches!(
            refused,
            Err(ImportError::TooManyRejected {
                rejected: 2000,
                rows: 2001,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(db.dump().await, before, "the old directory stays");

    // Clean, but SG1 2AA is missing from it: B would lose their constituency.
    let path = db.file(
        "partial.csv",
        "postcode,constituency_code\nSG13 8EQ,E14900001\nAL1 3JE,E14000001\n",
    );
    let refused = directory(&db, &path, false, &mut report).await;
    assert!(
        matches!(refused, Err(ImportError::WouldLoseContacts { lost: 1, .. })),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().to_string().contains("--force"));
    assert_eq!(db.dump().await, before, "the old directory stays");

    directory(&db, &path, true, &mut report).await.unwrap();
    assert_eq!(db.store.directory_size().await.unwrap(), 2, "forced");
    db.assert_counts_kept().await;
}

async fn an_empty_directory_file_leaves_the_directory_unchanged(db: TestStore) {
    db.load_sample_directory().await;
    let path = db.file("empty.csv", "pcds,pcon\nnot a postcode,E14000001\n");
    let mut report = Recorded::default();
    let result = directory(&db, &path, false, &mut report).await;
    assert!(result.is_err());
    assert_eq!(db.store.directory_size().await.unwrap(), 23);
    let no_columns = db.file("wrong.csv", "email,name\na@example.org,A\n");
    assert!(
        directory(&db, &no_columns, false, &mut report)
            .await
            .is_err()
    );
    assert_eq!(db.store.directory_size().await.unwrap(), 23);
    db.assert_counts_kept().await;
}

async fn erasure_leaves_no_name_email_or_postcode_anywhere(db: TestStore) {
    db.load_sample_directory().await;
    let csv = format!(
        "{HEADER}\
         Zebedee.Quill@example.org,Zebedee Quillfeather,SG14 2LT,1970-01-01,,news;events,2026-01-01T00:00:00Z,doorstep\n\
         other@example.org,Other Person,SG13 8EQ,,,news,,\n"
    );
    import(&db, &csv).await;
    let zebedee = email("zebedee.quill@example.org");
    let public_id = db
        .store
        .export_contact(&zebedee)
        .await
        .unwrap()
        .unwrap()
        .public_id
        .to_string();
    db.withdraw("zebedee.quill@example.org", "events", Utc::now())
        .await;
    db.store
        .set_restricted(&zebedee, true, &Actor::Operator)
        .await
        .unwrap();
    // A second sign-up, not yet confirmed, holds the address and name in full.
    let mut again = signup("Zebedee.Quill@example.org", &["news"]);
    again.name = canvass::domain::Name::parse("Zebedee Quillfeather").unwrap();
    db.store.create_signup(&again).await.unwrap().unwrap();
    assert_eq!(db.store.signups_of(&zebedee).await.unwrap().len(), 1);
    let before = db.dump().await;
    assert!(
        before.to_lowercase().contains("zebedee"),
        "the fixture is not in the dump"
    );
    if let Pool::Sqlite(_) = db.store.pool() {
        assert!(
            file_bytes_hold(&db, "zebedee"),
            "the fixture is not in the files"
        );
        assert_eq!(search_index_holding(&db, &["zeb", "qui"]).await, 2);
    }

    // Someone counted (not restricted) alone in their postcode, erased on PostgreSQL with a
    // fold of the counts under way elsewhere (a dashboard's) when the erasure folds its own
    // changes: it waits for that one rather than leave the postcode in the changes.
    import(
        &db,
        &format!("{HEADER}yolanda@example.org,Yolanda Ferncastle,YO1 7HH,,,news,,\n"),
    )
    .await;
    let under_way = match db.store.pool() {
        Pool::Postgres(pool) => {
            let mut fold = pool.begin().await.unwrap();
            sqlx::query("SELECT fold_counts()")
                .execute(&mut *fold)
                .await
                .unwrap();
            Some(fold)
        }
        Pool::Sqlite(_) => None,
    };
    let erasing = {
        let store = db.store.clone();
        let yolanda = email("yolanda@example.org");
        tokio::spawn(async move { store.erase_contact(&yolanda, &Actor::Operator).await })
    };
    if let Some(fold) = under_way {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        fold.commit().await.unwrap();
    }
    assert_eq!(erasing.await.unwrap().unwrap(), ErasureOutcome::Erased);
    let dump = db.dump().await;
    assert!(
        !dump.lines().any(|l| l.contains("YO1 7HH")),
        "the postcode survived erasure:\n{dump}"
    );
    let outcome = db
        .store
        .erase_contact(&zebedee, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(outcome, ErasureOutcome::Erased);

    let after = db.dump().await;
    for needle in ["zebedee", "quill", "1970-01-01", &public_id, "192.0.2.1"] {
        assert!(
            !after.to_lowercase().contains(&needle.to_lowercase()),
            "{needle} survived erasure:\n{after}"
        );
    }
    assert!(db.store.signups_of(&zebedee).await.unwrap().is_empty());
    // Not only the tables: the bytes of the database file, its WAL and its index.
    if let Pool::Sqlite(_) = db.store.pool() {
        for needle in ["zebedee", "quill", public_id.as_str()] {
            assert!(
                !file_bytes_hold(&db, needle),
                "{needle} is still in the files"
            );
        }
        // Nor in the search index, which holds names and addresses as trigrams: "zeb" and
        // "qui" are no one else's, and their first letters no other trigram's, so that they
        // are stored whole wherever they are stored.
        assert_eq!(search_index_holding(&db, &["zeb", "qui"]).await, 0);
    }
    // The postcode stays in the directory, which is public data; no contact row may carry it,
    // nor a count (YO1 7HH is in no directory).
    for postcode in ["SG14 2LT", "YO1 7HH"] {
        assert!(
            !after
                .lines()
                .any(|l| !l.starts_with("postcodes") && l.contains(postcode)),
            "{postcode} survived erasure:\n{after}"
        );
    }
    assert!(!after.to_lowercase().contains("ferncastle"));
    assert!(
        after.contains(zebedee.hash().as_str()),
        "no suppression entry"
    );
    assert!(after.contains("contact.erased"), "no audit entry");
    assert!(
        after.to_lowercase().contains("other person"),
        "erasure took someone else too"
    );
    assert!(db.store.export_contact(&zebedee).await.unwrap().is_none());
    assert_eq!(
        db.store
            .suppression(&zebedee.hash())
            .await
            .unwrap()
            .map(|s| s.reason),
        Some(SuppressionReason::Erased)
    );
    db.assert_counts_kept().await;
}

/// Each change that protects someone (an erasure, a withdrawal from everything, a complaint, a
/// one-click unsubscribe) is written to the suppression journal before it is done: with a
/// journal that cannot be written (a full disk: /dev/full) it fails and changes nothing; with
/// one that can, the journal holds each, by hash alone, and a lift after it.
async fn every_erasure_and_suppression_is_journalled_before_it_is_done(db: TestStore) {
    let csv = format!(
        "{HEADER}ann@example.org,Ann,,,,news,,\nben@example.org,Ben,,,,news,,\n\
         cara@example.org,Cara,,,,news,,\ndan@example.org,Dan,,,,news,,\n"
    );
    import(&db, &csv).await;
    let everything = Withdrawal {
        topics: &[],
        source: "phone",
        note: None,
    };
    let dan = db
        .store
        .export_contact(&email("dan@example.org"))
        .await
        .unwrap()
        .unwrap()
        .public_id;
    let one_click = [UnsubscribeRequest {
        contact: dan,
        source: "unsubscribe-link",
        ip: None,
        campaign: None,
    }];
    let complaint = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .record_feedback(
                    &FeedbackAbout::Address(&email("cara@example.org")),
                    SuppressionReason::Complaint,
                    "ARF",
                    &Actor::Operator,
                )
                .await
        }
    };

    let full = db
        .store
        .clone()
        .with_journal(Journal::open(std::path::Path::new("/dev/full"), false).unwrap());
    let before = db.dump().await;
    let refused = [
        full.erase_contact(&email("ann@example.org"), &Actor::Operator)
            .await
            .err(),
        full.record_withdrawal(&email("ben@example.org"), &everything, &Actor::Operator)
            .await
            .err(),
        complaint(&full).await.err(),
        full.unsubscribe(&one_click).await.err(),
    ];
    for error in refused {
        assert!(matches!(error, Some(StoreError::Journal(_))), "{error:?}");
    }
    assert_eq!(
        db.dump().await,
        before,
        "a change not journalled is not made"
    );

    let path = db.dir.path().join("canvass.journal");
    let journalled = db
        .store
        .clone()
        .with_journal(Journal::open(&path, true).unwrap());
    journalled
        .erase_contact(&email("ann@example.org"), &Actor::Operator)
        .await
        .unwrap();
    journalled
        .record_withdrawal(&email("ben@example.org"), &everything, &Actor::Operator)
        .await
        .unwrap();
    assert!(complaint(&journalled).await.unwrap());
    journalled.unsubscribe(&one_click).await.unwrap();
    journalled
        .unsuppress(
            &email("cara@example.org"),
            "the ISP's mistake",
            &Actor::Operator,
        )
        .await
        .unwrap();
    let read = Journal::read(&path).unwrap();
    let written: Vec<(&str, String)> = read
        .entries
        .iter()
        .map(|entry| {
            let event = match entry.event {
                JournalEvent::Suppressed(reason) => reason.as_str(),
                JournalEvent::Lifted => "lifted",
            };
            (event, entry.hash.as_str().to_owned())
        })
        .collect();
    let hash = |address: &str| email(address).hash().as_str().to_owned();
    assert_eq!(
        written,
        [
            ("erased", hash("ann@example.org")),
            ("unsubscribed", hash("ben@example.org")),
            ("complaint", hash("cara@example.org")),
            ("unsubscribed", hash("dan@example.org")),
            ("lifted", hash("cara@example.org")),
        ]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("example.org") && !text.contains("Ann"),
        "{text}"
    );
}

async fn an_erased_person_is_not_reimported(db: TestStore) {
    let csv = format!("{HEADER}one@example.org,One,,,,news,,\njo@example.org,Jo,,,,news,,\n");
    import(&db, &csv).await;
    db.store
        .erase_contact(&email("jo@example.org"), &Actor::Operator)
        .await
        .unwrap();
    let (summary, report) = import(&db, &csv).await;
    assert_eq!(
        (summary.imported, summary.unchanged, summary.rejected),
        (0, 1, 1)
    );
    assert_eq!(report.rejections[0].line, 3);
    assert!(report.rejections[0].reason.contains("erased"));
    assert!(
        db.store
            .export_contact(&email("jo@example.org"))
            .await
            .unwrap()
            .is_none()
    );
    db.assert_counts_kept().await;
}

/// A list of more rows than one transaction applies (the store stages them and applies tens of
/// thousands at a time): an erased person far down is refused by their line, an address met
/// again in a later transaction updates the contact the first made, and names with the
/// characters that a bulk path escapes arrive as they were written.
async fn a_list_larger_than_one_transaction_imports_as_one(db: TestStore) {
    let rows = 55_000;
    db.store
        .erase_contact(&email("gone@example.org"), &Actor::Operator)
        .await
        .unwrap();
    let mut csv = String::from(HEADER);
    for n in 0..rows {
        let (address, name) = match n {
            1 => (
                "first@example.org".to_owned(),
                r#""O'Brien \\ \N ""Jo""""#.to_owned(),
            ),
            50_500 => ("first@example.org".to_owned(), "Jo Later".to_owned()),
            54_000 => ("gone@example.org".to_owned(), "Gone".to_owned()),
            n => (format!("p{n}@example.org"), format!("P {n}")),
        };
        csv.push_str(&format!("{address},{name},,,,news,,\n"));
    }
    let (summary, report) = import(&db, &csv).await;
    assert_eq!(
        (summary.imported, summary.updated, summary.rejected),
        (rows - 2, 1, 1)
    );
    assert_eq!(report.rejections.len(), 1);
    // The header is line 1; row n is on line n + 2.
    assert_eq!(report.rejections[0].line, 54_002);
    assert!(report.rejections[0].reason.contains("erased"));
    let first = db
        .store
        .export_contact(&email("first@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name.as_deref(), Some("Jo Later"));
    let (again, _) = import(
        &db,
        &format!("{HEADER}first@example.org,\"O'Brien \\ \\N \"\"Jo\"\"\",,,,news,,\n"),
    )
    .await;
    assert_eq!((again.imported, again.updated), (0, 1));
    let first = db
        .store
        .export_contact(&email("first@example.org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name.as_deref(), Some(r#"O'Brien \ \N "Jo""#));
    assert!(
        db.store
            .export_contact(&email("gone@example.org"))
            .await
            .unwrap()
            .is_none()
    );
    db.assert_counts_kept().await;
}

async fn erasing_an_unknown_address_still_suppresses_it(db: TestStore) {
    let stranger = email("stranger@example.org");
    let outcome = db
        .store
        .erase_contact(&stranger, &Actor::Operator)
        .await
        .unwrap();
    assert_eq!(outcome, ErasureOutcome::NothingHeld);
    assert!(
        db.store
            .suppression(&stranger.hash())
            .await
            .unwrap()
            .is_some()
    );
    // A later, lesser suppression does not downgrade an erasure.
    db.store
        .suppress(&stranger.hash(), SuppressionReason::Bounced)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .suppression(&stranger.hash())
            .await
            .unwrap()
            .map(|s| s.reason),
        Some(SuppressionReason::Erased)
    );
    db.assert_counts_kept().await;
}

async fn restriction_is_kept_and_lifted(db: TestStore) {
    import(&db, &format!("{HEADER}jo@example.org,Jo,,,,news,,\n")).await;
    let jo = email("jo@example.org");
    let store = &db.store;
    assert_eq!(
        store
            .set_restricted(&jo, true, &Actor::Operator)
            .await
            .unwrap(),
        RestrictionOutcome::Changed
    );
    assert_eq!(
        store
            .set_restricted(&jo, true, &Actor::Operator)
            .await
            .unwrap(),
        RestrictionOutcome::AlreadySo
    );
    assert!(store.export_contact(&jo).await.unwrap().unwrap().restricted);
    assert_eq!(
        store
            .set_restricted(&jo, false, &Actor::Operator)
            .await
            .unwrap(),
        RestrictionOutcome::Changed
    );
    let export = store.export_contact(&jo).await.unwrap().unwrap();
    assert!(!export.restricted);
    let actions: Vec<&str> = export.audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["contact.restricted", "contact.unrestricted"]);
    assert_eq!(
        store
            .set_restricted(&email("nobody@example.org"), true, &Actor::Operator)
            .await
            .unwrap(),
        RestrictionOutcome::NotFound
    );
    db.assert_counts_kept().await;
}

async fn export_holds_details_consents_history_suppression_and_audit(db: TestStore) {
    db.load_sample_directory().await;
    import(
        &db,
        &format!(
            "{HEADER}jo@example.org,Jo,SG1 2AA,1990-05-05,,news;events,2026-01-01T00:00:00Z,stall\n"
        ),
    )
    .await;
    db.withdraw(
        "jo@example.org",
        "news",
        Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(),
    )
    .await;
    db.store
        .suppress(&email("jo@example.org").hash(), SuppressionReason::Bounced)
        .await
        .unwrap();
    let export = db.held("jo@example.org").await;
    let json = serde_json::to_value(&export).unwrap();
    assert_eq!(json["email"], "jo@example.org");
    assert_eq!(json["postcode"], "SG1 2AA");
    assert_eq!(json["constituency"]["code"], "E14900002");
    assert_eq!(json["date_of_birth"], "1990-05-05");
    assert_eq!(json["consents"][0]["topic"], "news");
    assert_eq!(json["consents"][0]["granted"], false);
    assert_eq!(json["consents"][1]["topic"], "events");
    assert_eq!(json["consents"][1]["granted"], true);
    assert_eq!(json["consent_history"].as_array().unwrap().len(), 3);
    assert_eq!(json["consent_history"][2]["ip"], "192.0.2.1");
    assert_eq!(json["suppression"]["reason"], "bounced");
    assert_eq!(json["audit"][0]["action"], "consent.withdrawn");
    assert_eq!(json["audit"][0]["actor"], "contact");
    db.assert_counts_kept().await;
}

async fn export_of_an_unknown_address_is_nothing(db: TestStore) {
    assert!(
        db.store
            .export_contact(&email("nobody@example.org"))
            .await
            .unwrap()
            .is_none()
    );
    db.assert_counts_kept().await;
}

async fn the_consent_ledger_refuses_updates(db: TestStore) {
    import(&db, &format!("{HEADER}jo@example.org,Jo,,,,news,,\n")).await;
    let sql = "UPDATE consent_ledger SET granted = FALSE";
    let result = match db.store.pool() {
        canvass::store::Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        canvass::store::Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    };
    let error = result.expect_err("the ledger took an update").to_string();
    assert!(error.contains("append-only"), "{error}");
    db.assert_counts_kept().await;
}

async fn a_batch_of_unsubscribes_answers_each_request_and_changes_each_person_once(db: TestStore) {
    use UnsubscribeOutcome::{AlreadyUnsubscribed, NotFound, Unsubscribed};
    let csv = format!(
        "{HEADER}\
         a@example.org,A,,,,news;events,2026-01-01T00:00:00Z,form\n\
         b@example.org,B,,,,campaigns,2026-01-01T00:00:00Z,form\n\
         c@example.org,C,,,,news,2026-01-01T00:00:00Z,form\n"
    );
    import(&db, &csv).await;
    let mut ids = Vec::new();
    for address in ["a@example.org", "b@example.org", "c@example.org"] {
        let export = db.store.export_contact(&email(address)).await.unwrap();
        ids.push(export.unwrap().public_id);
    }
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let request = |contact, ip: &str| UnsubscribeRequest {
        contact,
        source: "unsubscribe-link",
        ip: Some(ip.to_owned()),
        campaign: None,
    };
    let first = [request(c, "192.0.2.3")];
    assert_eq!(db.store.unsubscribe(&first).await.unwrap(), [Unsubscribed]);

    let batch = [
        request(a, "192.0.2.1"),
        request(PublicId::generate(), "192.0.2.9"),
        request(a, "192.0.2.1"),
        request(b, "192.0.2.2"),
        request(c, "192.0.2.3"),
    ];
    let outcomes = db.store.unsubscribe(&batch).await.unwrap();

    assert_eq!(
        outcomes,
        [
            Unsubscribed,
            NotFound,
            Unsubscribed,
            Unsubscribed,
            AlreadyUnsubscribed
        ]
    );
    for (address, ip) in [
        ("a@example.org", "192.0.2.1"),
        ("b@example.org", "192.0.2.2"),
    ] {
        let export = db
            .store
            .export_contact(&email(address))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            export.consents.len(),
            4,
            "{address}: every topic has an entry"
        );
        assert!(export.consents.iter().all(|c| !c.granted), "{address}");
        let withdrawals: Vec<_> = export
            .consent_history
            .iter()
            .filter(|e| !e.granted)
            .collect();
        assert_eq!(
            withdrawals.len(),
            4,
            "{address}: one withdrawal per topic, not two"
        );
        assert!(withdrawals.iter().all(|e| e.ip.as_deref() == Some(ip)));
        assert_eq!(
            export.suppression.unwrap().reason,
            SuppressionReason::Unsubscribed
        );
        let audits = export
            .audit
            .iter()
            .filter(|a| a.action == "contact.unsubscribed")
            .count();
        assert_eq!(audits, 1, "{address}");
    }
    let before = db.dump().await;
    let repeated = [request(a, "192.0.2.1"), request(b, "192.0.2.2")];
    assert_eq!(
        db.store.unsubscribe(&repeated).await.unwrap(),
        [AlreadyUnsubscribed, AlreadyUnsubscribed]
    );
    assert_eq!(db.dump().await, before, "repeating it changes nothing");
    db.assert_counts_kept().await;
}

/// The campaign audience rule, case by case: who is queued for a `news` mailing to constituency
/// E14900001 or postcode district SG1.
async fn queueing_takes_exactly_the_people_the_rule_allows(db: TestStore) {
    db.load_sample_directory().await;
    let ten_years_ago = (Utc::now().date_naive() - chrono::Months::new(120)).to_string();
    let csv = format!(
        "{HEADER}\
         in-constituency@example.org,A,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n\
         in-district-sg1@example.org,B,SG1 2AA,,,news,2026-01-01T00:00:00Z,form\n\
         in-sg13-outside-the-directory@example.org,C,SG13 9ZZ,,,news,2026-01-01T00:00:00Z,form\n\
         other-topic@example.org,D,SG13 8EQ,,,events,2026-01-01T00:00:00Z,form\n\
         no-consent@example.org,E,SG13 8EQ,,,,2026-01-01T00:00:00Z,form\n\
         other-constituency@example.org,F,AL1 3JE,,,news,2026-01-01T00:00:00Z,form\n\
         unsubscribed@example.org,I,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n\
         restricted@example.org,J,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n\
         withdrawn@example.org,K,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n\
         no-postcode@example.org,L,,,,news,2026-01-01T00:00:00Z,form\n"
    );
    let (_, report) = import(&db, &csv).await;
    assert!(report.rejections.is_empty(), "{:?}", report.rejections);
    // A child is kept only with a guardian's consent: the other is refused, not stored.
    let children = format!(
        "email,name,postcode,date_of_birth,guardian_consent,guardian_name,guardian_relationship,\
         topics,consent_at,consent_source\n\
         child@example.org,G,SG13 8EQ,{ten_years_ago},,,,news,2026-01-01T00:00:00Z,form\n\
         child-with-guardian@example.org,H,SG13 8EQ,{ten_years_ago},true,Ann,mother,news,\
         2026-01-01T00:00:00Z,form\n"
    );
    let (_, report) = import(&db, &children).await;
    let refused: Vec<u64> = report.rejections.iter().map(|r| r.line).collect();
    assert_eq!(refused, [2], "{:?}", report.rejections);
    let unsubscribed = db
        .store
        .export_contact(&email("unsubscribed@example.org"))
        .await;
    let request = UnsubscribeRequest {
        contact: unsubscribed.unwrap().unwrap().public_id,
        source: "unsubscribe-link",
        ip: None,
        campaign: None,
    };
    db.store.unsubscribe(&[request]).await.unwrap();
    db.store
        .set_restricted(&email("restricted@example.org"), true, &Actor::Operator)
        .await
        .unwrap();
    db.withdraw("withdrawn@example.org", "news", Utc::now())
        .await;

    // The console's counts (kept counts, less the under-age, plus the prefixes' people outside
    // the named constituencies) say what the rule counts one by one, whatever the audience
    // and whatever the limit.
    let today = Utc::now().date_naive();
    let code = |c: &str| canvass::domain::ConstituencyCode::parse(c).unwrap();
    let audiences = [
        news_campaign(&[], &[]),
        news_campaign(&["E14900001"], &[]),
        news_campaign(&[], &["SG1"]),
        news_campaign(&[], &["SG"]),
        news_campaign(&[], &["SG13 8"]),
        news_campaign(&["E14900001"], &["SG1", "AL1"]),
        narrowed(news_campaign(&["E14900001"], &["SG1", "AL1"])),
        narrowed(news_campaign(&["E14900001", "E14900002"], &["SG"])),
    ];
    let limits = [
        canvass::domain::Scope::Everyone,
        canvass::domain::Scope::of(vec![code("E14900001")]),
        canvass::domain::Scope::nobody(),
    ];
    for audience in &audiences {
        for limit in &limits {
            let id = db
                .store
                .create_campaign(audience, limit, false, &Actor::Operator)
                .await
                .unwrap();
            let one_by_one = db.store.audience_size(id, today).await.unwrap();
            let counted = live_count(&db, audience, limit, today).await;
            assert_eq!(
                counted, one_by_one,
                "{:?} within {limit:?}",
                audience.audience
            );
        }
    }

    // Narrowed, it reaches exactly those both rules reach: the people under the postcodes who
    // are within the constituencies.
    let mut queued = Vec::new();
    for campaign in [
        news_campaign(&["E14900001", "E14900002"], &[]),
        news_campaign(&[], &["SG", "AL1"]),
        narrowed(news_campaign(&["E14900001", "E14900002"], &["SG", "AL1"])),
    ] {
        let id = db
            .store
            .create_campaign(
                &campaign,
                &canvass::domain::Scope::Everyone,
                false,
                &Actor::Operator,
            )
            .await
            .unwrap();
        db.store
            .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
            .await
            .unwrap();
        queued.push(queued_addresses(&db, id).await);
    }
    let both: Vec<String> = queued[0]
        .iter()
        .filter(|address| queued[1].contains(address))
        .cloned()
        .collect();
    assert!(!both.is_empty(), "{queued:?}");
    assert_eq!(queued[2], both);
    assert!(
        both.len() < queued[1].len(),
        "narrowing leaves out the postcodes' people elsewhere: {queued:?}"
    );
    db.execute("UPDATE deliveries SET state = 'skipped' WHERE state = 'queued'")
        .await;

    let targeted = news_campaign(&["E14900001"], &["SG1"]);
    let id = db
        .store
        .create_campaign(
            &targeted,
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    let size = db.store.audience_size(id, today).await.unwrap();

    assert_eq!(
        db.store
            .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
            .await
            .unwrap(),
        QueueOutcome::Done(3)
    );
    assert_eq!(size, 3, "the preview's count is the queue's");
    assert_eq!(
        queued_addresses(&db, id).await,
        [
            "child-with-guardian@example.org",
            "in-constituency@example.org",
            "in-district-sg1@example.org",
        ]
    );
    assert_eq!(
        db.store
            .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
            .await
            .unwrap(),
        QueueOutcome::NotDraft(CampaignState::Queued),
        "a campaign is queued once"
    );

    // No filter: everyone who may hear about the topic, wherever they live.
    let everyone = db
        .store
        .create_campaign(
            &news_campaign(&[], &[]),
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    db.store
        .queue_campaign(everyone, &Actor::Operator, canvass::store::Imprint::Set)
        .await
        .unwrap();
    assert_eq!(
        queued_addresses(&db, everyone).await,
        [
            "child-with-guardian@example.org",
            "in-constituency@example.org",
            "in-district-sg1@example.org",
            "in-sg13-outside-the-directory@example.org",
            "no-postcode@example.org",
            "other-constituency@example.org",
        ]
    );
    db.assert_counts_kept().await;
}

/// The addresses of a campaign's queued deliveries, sorted.
/// The campaign narrowed: only the people under its postcodes within its constituencies.
fn narrowed(mut campaign: canvass::domain::NewCampaign) -> canvass::domain::NewCampaign {
    campaign.audience.postcodes_within = true;
    campaign
}

/// The composer's live count of `campaign` within `limit` on `on`.
async fn live_count(
    db: &TestStore,
    campaign: &canvass::domain::NewCampaign,
    limit: &canvass::domain::Scope,
    on: chrono::NaiveDate,
) -> u64 {
    db.store
        .audience_counts(campaign, limit, on)
        .await
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum()
}

/// Queues `campaign` as the operator; whom it queued.
async fn queue_everyone(db: &TestStore, campaign: i64) -> Vec<String> {
    db.store
        .queue_campaign(campaign, &Actor::Operator, canvass::store::Imprint::Set)
        .await
        .unwrap();
    queued_addresses(db, campaign).await
}

async fn queued_addresses(db: &TestStore, campaign: i64) -> Vec<String> {
    let sql = "SELECT c.email FROM deliveries d JOIN contacts c ON c.id = d.contact_id \
               WHERE d.campaign_id = $1 AND d.state = 'queued' ORDER BY c.email";
    match db.store.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).bind(campaign).fetch_all(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(sql).bind(campaign).fetch_all(pool).await,
    }
    .unwrap()
}

/// A draft of news to everyone, and one person who takes news.
async fn one_person_news_draft(db: &TestStore) -> i64 {
    let csv = format!("{HEADER}a@example.org,A,,,,news,2026-01-01T00:00:00Z,form\n");
    import(db, &csv).await;
    db.store
        .create_campaign(
            &news_campaign(&[], &[]),
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap()
}

async fn campaigns_pause_resume_and_cancel(db: TestStore) {
    let id = one_person_news_draft(&db).await;
    let change = |change| db.store.change_campaign_state(id, change, &Actor::Operator);
    use StateChangeOutcome::{Changed, Refused};
    assert_eq!(
        change(StateChange::Pause).await.unwrap(),
        Refused(CampaignState::Draft)
    );
    db.store
        .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
        .await
        .unwrap();
    assert_eq!(
        change(StateChange::Pause).await.unwrap(),
        Changed(CampaignState::Paused)
    );
    assert_eq!(
        change(StateChange::Resume).await.unwrap(),
        Changed(CampaignState::Queued)
    );
    assert_eq!(
        change(StateChange::Cancel).await.unwrap(),
        Changed(CampaignState::Cancelled)
    );
    assert_eq!(
        change(StateChange::Resume).await.unwrap(),
        Refused(CampaignState::Cancelled)
    );
    let counts = db.store.delivery_counts(id).await.unwrap();
    assert_eq!(
        (counts.queued, counts.skipped),
        (0, 1),
        "cancelling skips what was not sent"
    );
    assert_eq!(
        db.store
            .change_campaign_state(999, StateChange::Pause, &Actor::Operator)
            .await
            .unwrap(),
        StateChangeOutcome::NotFound
    );
    db.assert_counts_kept().await;
}

/// A lease that ran out lets another worker have the row, never the worker that held it (the
/// row may still be in its hands: sent, its result waiting for the database); the holder's
/// result is written while it still holds the row, and not once another does.
async fn a_lease_run_out_passes_to_another_worker_never_back_to_its_own(db: TestStore) {
    use canvass::store::DeliveryResult;
    let id = one_person_news_draft(&db).await;
    db.store
        .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
        .await
        .unwrap();
    let store = &db.store;
    let claim = |owner: &'static str, lease_ms| async move {
        store
            .claim_deliveries(owner, 10, chrono::Duration::milliseconds(lease_ms))
            .await
            .unwrap()
            .deliveries
            .iter()
            .map(|delivery| delivery.id)
            .collect::<Vec<_>>()
    };
    let run_out = || tokio::time::sleep(std::time::Duration::from_millis(150));
    assert_eq!(claim("first", 100).await.len(), 1);
    assert_eq!(
        claim("second", 60_000).await,
        Vec::<i64>::new(),
        "the lease holds"
    );
    run_out().await;
    assert_eq!(
        claim("first", 60_000).await,
        Vec::<i64>::new(),
        "its own row, run out"
    );
    // Still the first worker's, so its renewal holds it again.
    let lease = chrono::Duration::milliseconds(100);
    db.store.renew_leases("first", lease).await.unwrap();
    assert_eq!(claim("second", 60_000).await, Vec::<i64>::new(), "renewed");
    run_out().await;
    let taken = claim("second", 60_000).await;
    assert_eq!(taken.len(), 1, "another's, run out");
    let delivery = taken[0];
    let sent = |at| DeliveryResult::Sent {
        message_id: "<x@example.org>".into(),
        answer: "250 ok".into(),
        at,
    };
    assert_eq!(
        db.store
            .record_results("first", &[(delivery, sent(Utc::now()))])
            .await
            .unwrap(),
        [false],
        "the first worker's result comes too late"
    );
    assert_eq!(
        db.store
            .record_results("second", &[(delivery, sent(Utc::now()))])
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(db.store.delivery_counts(id).await.unwrap().sent, 1);
}

/// The last enabled admin stays one, even when two admins are demoted, or disabled, by
/// requests that arrive together: the rule is decided in the statement's transaction, with the
/// admins locked.
async fn two_admins_demoted_or_disabled_at_once_leave_one(db: TestStore) {
    use canvass::domain::Role;
    let app = db.app();
    for round in 0..4 {
        let (a, b) = (
            format!("a{round}@hq.example.org"),
            format!("b{round}@hq.example.org"),
        );
        for email in [&a, &b] {
            canvass::app::staff::add(&app, &Actor::Operator, email, "Admin", "admin", &[])
                .await
                .unwrap();
        }
        // Everyone else who is an admin is demoted first, by the operator.
        for other in db.store.staff_users().await.unwrap() {
            if other.role == Role::Admin && other.email != a && other.email != b {
                let email = email(&other.email);
                db.store
                    .edit_staff_user(&email, Some(Role::Viewer), None, &Actor::Operator)
                    .await
                    .unwrap();
            }
        }
        let (ea, eb) = (email(&a), email(&b));
        let store = &db.store;
        if round % 2 == 0 {
            let _ = tokio::join!(
                store.edit_staff_user(&ea, Some(Role::Organiser), None, &Actor::Operator),
                store.edit_staff_user(&eb, Some(Role::Organiser), None, &Actor::Operator),
            );
        } else {
            let _ = tokio::join!(
                store.disable_staff_user(&ea, &Actor::Operator),
                store.disable_staff_user(&eb, &Actor::Operator),
            );
        }
        assert_eq!(
            db.count(
                "SELECT count(*) FROM staff_users WHERE role = 'admin' AND disabled_at IS NULL"
            )
            .await,
            1,
            "round {round}"
        );
    }
}

/// Staff tokens: only the hash is stored, a presented token finds its member until revoked,
/// names stay unique (revoked ones included), and issuing and revoking are audited.
async fn staff_tokens_are_kept_as_hashes_found_listed_and_revoked(db: TestStore) {
    use canvass::domain::{Role, StaffName, StaffSecret, StaffTokenHash};
    use canvass::store::RevokeOutcome;
    let name = |n: &str| StaffName::parse(n).unwrap();
    let writer = StaffSecret::generate();
    let reader = StaffSecret::generate();
    let store = &db.store;
    assert!(
        store
            .create_staff_token(
                &name("website"),
                &writer.hash(),
                false,
                None,
                &Actor::Operator
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .create_staff_token(
                &name("Press Office"),
                &reader.hash(),
                true,
                None,
                &Actor::Operator
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_staff_token(
                &name("website"),
                &StaffSecret::generate().hash(),
                true,
                None,
                &Actor::Operator
            )
            .await
            .unwrap(),
        "a name is taken once"
    );
    let dump = db.dump().await;
    assert!(
        !dump.contains(writer.expose()) && !dump.contains(reader.expose()),
        "no token is stored"
    );

    let found = store
        .staff_member(&StaffTokenHash::of(writer.expose()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.name.as_str(), found.role), ("website", Role::Admin));
    let found = store.staff_member(&reader.hash()).await.unwrap().unwrap();
    assert_eq!(
        (found.name.as_str(), found.role),
        ("Press Office", Role::Viewer)
    );
    assert_eq!(
        store
            .staff_member(&StaffTokenHash::of("canvass_guess"))
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        store
            .revoke_staff_token(&name("website"), &Actor::Operator)
            .await
            .unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store.staff_member(&writer.hash()).await.unwrap(),
        None,
        "a revoked token is refused"
    );
    assert_eq!(
        store
            .revoke_staff_token(&name("website"), &Actor::Operator)
            .await
            .unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        store
            .revoke_staff_token(&name("nobody"), &Actor::Operator)
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
    assert!(
        !store
            .create_staff_token(
                &name("website"),
                &StaffSecret::generate().hash(),
                false,
                None,
                &Actor::Operator
            )
            .await
            .unwrap(),
        "a revoked token keeps its name"
    );

    let listed = store.list_staff_tokens().await.unwrap();
    let shown: Vec<(&str, bool, bool)> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.read_only, t.revoked_at.is_some()))
        .collect();
    assert_eq!(
        shown,
        [("website", false, true), ("Press Office", true, false)]
    );
    let audited = db
        .count("SELECT COUNT(*) FROM audit_log WHERE actor = 'operator' AND action IN ('staff_token.created', 'staff_token.revoked')")
        .await;
    assert_eq!(audited, 3);
    db.assert_counts_kept().await;
}

/// Confirms a sign-up from the documentation address 203.0.113.9.
async fn confirm(db: &TestStore, id: &PublicId) -> canvass::store::ConfirmOutcome {
    db.store
        .confirm_signup(id, Some("203.0.113.9"))
        .await
        .unwrap()
}

/// `text` for as long as the test runs (the test store takes statements that live so).
fn leaked(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// How many of `trigrams` the blocks of SQLite's search index (`contacts_search_data`) hold.
async fn search_index_holding(db: &TestStore, trigrams: &[&str]) -> usize {
    let Pool::Sqlite(pool) = db.store.pool() else {
        unreachable!("SQLite's index")
    };
    let blocks: Vec<Vec<u8>> = sqlx::query_scalar("SELECT block FROM contacts_search_data")
        .fetch_all(pool)
        .await
        .unwrap();
    trigrams
        .iter()
        .filter(|trigram| {
            blocks
                .iter()
                .any(|block| block.windows(3).any(|w| w == trigram.as_bytes()))
        })
        .count()
}

/// Whether any file of the SQLite database (the database, its WAL, its shared memory) holds
/// `needle`, in any case.
fn file_bytes_hold(db: &TestStore, needle: &str) -> bool {
    let needle = needle.to_lowercase().into_bytes();
    std::fs::read_dir(db.dir.path()).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        // The test's own input files lie beside the database.
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("test.db")
        {
            return false;
        }
        let bytes = std::fs::read(&path).unwrap().to_ascii_lowercase();
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_slice())
    })
}

/// A sign-up is shown in the person's export while held, erased with them, and forgotten seven
/// days after it was made, confirmed or not.
async fn signups_are_exported_while_held_and_purged_after_seven_days(db: TestStore) {
    let kim = email("kim@example.org");
    db.store
        .create_signup(&signup("kim@example.org", &["news"]))
        .await
        .unwrap()
        .unwrap();
    assert!(db.store.export_contact(&kim).await.unwrap().is_none());
    let held = db.store.signups_of(&kim).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].name.as_deref(), Some("Sam Signup"));
    assert_eq!(held[0].ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(
        db.store.purge_signups().await.unwrap(),
        0,
        "a fresh one stays"
    );

    db.execute("UPDATE signups SET created_at = '2000-01-01T00:00:00Z'")
        .await;
    assert_eq!(db.store.purge_signups().await.unwrap(), 1);
    assert!(db.store.signups_of(&kim).await.unwrap().is_empty());

    // A new sign-up purges the old ones itself.
    db.store
        .create_signup(&signup("kim@example.org", &["news"]))
        .await
        .unwrap()
        .unwrap();
    db.execute("UPDATE signups SET created_at = '2000-01-01T00:00:00Z'")
        .await;
    db.store
        .create_signup(&signup("lee@example.org", &["news"]))
        .await
        .unwrap()
        .unwrap();
    assert!(db.store.signups_of(&kim).await.unwrap().is_empty());
    assert_eq!(
        db.store
            .signups_of(&email("lee@example.org"))
            .await
            .unwrap()
            .len(),
        1
    );
    db.assert_counts_kept().await;
}

/// Staff record what the person said on the phone: one topic, or everything (suppressed, as
/// one-click); an address nobody holds is suppressed all the same; a wrong topic changes
/// nothing.
async fn a_withdrawal_by_phone_is_recorded_by_topic_or_for_everything(db: TestStore) {
    use canvass::store::{Withdrawal, WithdrawalOutcome};
    import(
        &db,
        &format!("{HEADER}jo@example.org,Jo,,,,news;events,2026-01-01T00:00:00Z,form\n"),
    )
    .await;
    let jo = email("jo@example.org");
    let withdraw = |topics: &'static [&'static str], address: &'static str| {
        let store = db.store.clone();
        async move {
            let topics: Vec<TopicSlug> = topics.iter().map(|t| slug(t)).collect();
            store
                .record_withdrawal(
                    &email(address),
                    &Withdrawal {
                        topics: &topics,
                        source: "phone",
                        note: Some("rang the office"),
                    },
                    &Actor::Staff(canvass::domain::StaffMember {
                        name: "office".into(),
                        role: canvass::domain::Role::Organiser,
                        scope: canvass::domain::Scope::Everyone,
                    }),
                )
                .await
                .unwrap()
        }
    };
    let before = db.dump().await;
    assert_eq!(
        withdraw(&["flying"], "jo@example.org").await,
        WithdrawalOutcome::UnknownTopic
    );
    assert_eq!(db.dump().await, before, "a wrong topic changes nothing");

    assert_eq!(
        withdraw(&["events"], "jo@example.org").await,
        WithdrawalOutcome::Recorded(1)
    );
    let held = db.store.export_contact(&jo).await.unwrap().unwrap();
    let granted: Vec<_> = held
        .consents
        .iter()
        .filter(|c| c.granted)
        .map(|c| c.topic.as_str())
        .collect();
    assert_eq!(granted, ["news"]);
    assert!(held.suppression.is_none());
    assert!(
        held.audit.iter().any(|a| a.actor == "staff:office"
            && a.detail.as_deref() == Some("via phone: rang the office"))
    );

    // News, and the two topics Jo never chose (as one-click does): events was withdrawn.
    assert_eq!(
        withdraw(&[], "jo@example.org").await,
        WithdrawalOutcome::Recorded(3)
    );
    let held = db.store.export_contact(&jo).await.unwrap().unwrap();
    assert!(held.consents.iter().all(|c| !c.granted));
    assert_eq!(
        held.suppression.map(|s| s.reason),
        Some(SuppressionReason::Unsubscribed)
    );

    assert_eq!(
        withdraw(&[], "stranger@example.org").await,
        WithdrawalOutcome::NotHeld
    );
    assert!(
        db.store
            .suppression(&email("stranger@example.org").hash())
            .await
            .unwrap()
            .is_some()
    );
    db.assert_counts_kept().await;
}

fn signup(address: &str, topics: &[&str]) -> canvass::store::NewSignup {
    canvass::store::NewSignup {
        email: email(address),
        name: canvass::domain::Name::parse("Sam Signup").unwrap(),
        postcode: Some(canvass::domain::Postcode::parse("SG13 8EQ").unwrap()),
        topics: topics.iter().map(|t| slug(t)).collect(),
        wording: "website-form-v3".into(),
        ip: Some("198.51.100.7".into()),
    }
}

/// Double opt-in: a sign-up creates no contact and no consent; its confirmation does, with
/// source `signup`, the IP of the confirmation and the wording shown.
async fn a_signup_is_nothing_until_confirmed_then_consent_with_its_evidence(db: TestStore) {
    use canvass::store::ConfirmOutcome;
    db.load_sample_directory().await;
    let before = Utc::now() - chrono::Duration::minutes(1);
    let id = db
        .store
        .create_signup(&signup("sam@example.org", &["news", "events"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.store
            .recent_signups(&email("SAM@example.org"), before)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.store
            .recent_signups(&email("other@example.org"), before)
            .await
            .unwrap(),
        0
    );
    assert!(
        db.store
            .export_contact(&email("sam@example.org"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM consent_ledger").await, 0);
    let campaign = news_campaign(&[], &[]);
    let queued = db
        .store
        .create_campaign(
            &campaign,
            &canvass::domain::Scope::Everyone,
            false,
            &Actor::Operator,
        )
        .await
        .unwrap();
    assert_eq!(
        db.store
            .queue_campaign(queued, &Actor::Operator, canvass::store::Imprint::Set)
            .await
            .unwrap(),
        QueueOutcome::Done(0),
        "an unconfirmed sign-up is never mailed"
    );

    assert_eq!(confirm(&db, &id).await, ConfirmOutcome::Confirmed);
    let export = db.held("sam@example.org").await;
    assert_eq!(export.name.as_deref(), Some("Sam Signup"));
    assert_eq!(export.postcode.as_deref(), Some("SG13 8EQ"));
    let grants: Vec<_> = export
        .consent_history
        .iter()
        .filter(|e| e.granted)
        .collect();
    assert_eq!(grants.len(), 2);
    for grant in grants {
        assert_eq!(grant.source, "signup");
        assert_eq!(
            grant.ip.as_deref(),
            Some("203.0.113.9"),
            "the confirmation's IP"
        );
        assert_eq!(grant.wording.as_deref(), Some("website-form-v3"));
    }
    let ledger = db.count("SELECT COUNT(*) FROM consent_ledger").await;
    assert_eq!(confirm(&db, &id).await, ConfirmOutcome::AlreadyConfirmed);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM consent_ledger").await,
        ledger,
        "once only"
    );
    assert_eq!(
        db.store
            .confirm_signup(&PublicId::generate(), None)
            .await
            .unwrap(),
        ConfirmOutcome::NotFound
    );
    db.assert_counts_kept().await;
}

/// Someone who unsubscribed from everything comes back only by their own confirmed sign-up:
/// it lifts the suppression, and the ledger shows the withdrawal and the new grant.
async fn a_confirmed_signup_lifts_the_suppression_of_an_address_and_the_ledger_keeps_both(
    db: TestStore,
) {
    use canvass::store::ConfirmOutcome;
    let (_, report) = import(
        &db,
        &format!("{HEADER}kim@example.org,Kim,,,,news,2026-01-01T00:00:00Z,form\n"),
    )
    .await;
    assert!(report.rejections.is_empty());
    let kim = db.held("kim@example.org").await;
    let request = UnsubscribeRequest {
        contact: kim.public_id,
        source: "unsubscribe-link",
        ip: None,
        campaign: None,
    };
    db.store.unsubscribe(&[request]).await.unwrap();

    let id = db
        .store
        .create_signup(&signup("kim@example.org", &["news"]))
        .await
        .unwrap()
        .unwrap();
    assert!(
        db.held("kim@example.org").await.suppression.is_some(),
        "a sign-up alone lifts nothing"
    );
    assert_eq!(confirm(&db, &id).await, ConfirmOutcome::Confirmed);

    let export = db.held("kim@example.org").await;
    assert!(export.suppression.is_none());
    let news: Vec<(bool, &str)> = export
        .consent_history
        .iter()
        .filter(|e| e.topic.as_str() == "news")
        .map(|e| (e.granted, e.source.as_str()))
        .collect();
    assert_eq!(
        news,
        [
            (true, "form"),
            (false, "unsubscribe-link"),
            (true, "signup")
        ]
    );
    assert!(export.audit.iter().any(|a| a.action == "suppression.lifted"
        && a.detail.as_deref() == Some("was unsubscribed; confirmed sign-up")));
}

/// Grants, withdrawals, restrictions, suppressions and their lifting, for the same few people
/// from many connections at once: the kept counts end as a count from scratch says (on
/// PostgreSQL, each change of a person waits for the one before it).
async fn the_kept_counts_stay_true_when_people_change_at_once(db: TestStore) {
    db.load_sample_directory().await;
    let people = ["a@example.org", "b@example.org", "c@example.org"];
    db.import_people(&format!(
        "{HEADER}\
         a@example.org,A,SG13 8EQ,,,news;events,2026-01-01T00:00:00Z,form\n\
         b@example.org,B,SG1 2AA,,,news,2026-01-01T00:00:00Z,form\n\
         c@example.org,C,AL1 3JE,,,events,2026-01-01T00:00:00Z,form\n"
    ))
    .await;
    let news = slug("news");
    let mut tasks = tokio::task::JoinSet::new();
    // Imports of new people at the same time, each taking the topics in its own order, over
    // the same constituencies as the changes below.
    for import in 0..4_usize {
        let store = db.store.clone();
        tasks.spawn(async move {
            let postcodes = ["SG13 8EQ", "SG1 2AA", "AL1 3JE"];
            let topics = if import % 2 == 0 {
                vec![slug("news"), slug("events")]
            } else {
                vec![slug("events"), slug("news")]
            };
            let people: Vec<canvass::domain::NewContact> = (0..300)
                .map(|n| canvass::domain::NewContact {
                    email: email(&format!("import{import}-{n}@example.org")),
                    name: None,
                    postcode: Some(
                        canvass::domain::Postcode::parse(postcodes[n % postcodes.len()]).unwrap(),
                    ),
                    date_of_birth: None,
                    guardian_consent: None,
                    guardian: None,
                    topics: topics.clone(),
                    consent_at: Utc::now(),
                    consent_dated: false,
                    consent_source: "form".to_owned(),
                })
                .collect();
            for batch in people.chunks(50) {
                store.import_contacts(batch, "test").await?;
            }
            Ok(())
        });
    }
    for round in 0..60_usize {
        let store = db.store.clone();
        let address = email(people[round % people.len()]);
        let news = news.clone();
        tasks.spawn(async move {
            let actor = Actor::Operator;
            match round / people.len() % 5 {
                0 | 1 => {
                    let change = canvass::store::ConsentChange {
                        topic: &news,
                        granted: round % 2 == 0,
                        source: "preference-centre",
                        at: Utc::now(),
                        wording: None,
                        ip: None,
                    };
                    store
                        .record_consent(&address, &change, &actor)
                        .await
                        .map(drop)
                }
                2 => store
                    .set_restricted(&address, round % 2 == 0, &actor)
                    .await
                    .map(drop),
                3 => {
                    store
                        .suppress(&address.hash(), SuppressionReason::Bounced)
                        .await
                }
                _ => store
                    .unsuppress(&address, "asked again", &actor)
                    .await
                    .map(drop),
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    db.assert_counts_kept().await;
}

/// A district is its postcodes and no longer district that starts the same ("SG1" is not
/// "SG13"); a sector likewise; within the searcher's scope.
async fn a_postcode_search_finds_its_district_or_sector_and_no_other(db: TestStore) {
    use canvass::domain::{ConstituencyCode, Scope};
    use canvass::store::{ContactQuery, ContactSearch};
    db.load_sample_directory().await;
    db.import_people(&format!(
        "{HEADER}\
         sg13@example.org,A,SG13 8EQ,,,news,2026-01-01T00:00:00Z,form\n\
         sg1@example.org,B,SG1 2AA,,,news,2026-01-01T00:00:00Z,form\n\
         sg1b@example.org,C,SG1 2AB,,,news,2026-01-01T00:00:00Z,form\n\
         al1@example.org,D,AL1 3JE,,,news,2026-01-01T00:00:00Z,form\n"
    ))
    .await;
    let found = |search: &'static str, scope: Scope| {
        let store = db.store.clone();
        async move {
            let query = ContactQuery {
                search: ContactSearch::parse(search),
                ..ContactQuery::default()
            };
            let page = store.find_contacts(&scope, &query).await.unwrap();
            let mut emails: Vec<String> = page.contacts.into_iter().map(|c| c.email).collect();
            emails.sort();
            assert_eq!(
                page.total,
                canvass::store::Matches::Exactly(emails.len() as u64),
                "{search}"
            );
            emails
        }
    };
    assert_eq!(
        found("SG1", Scope::Everyone).await,
        ["sg1@example.org", "sg1b@example.org"]
    );
    assert_eq!(found("sg13", Scope::Everyone).await, ["sg13@example.org"]);
    assert_eq!(
        found("SG1 2", Scope::Everyone).await,
        ["sg1@example.org", "sg1b@example.org"]
    );
    assert_eq!(found("SG1 3", Scope::Everyone).await, Vec::<String>::new());
    assert_eq!(found("AL1", Scope::Everyone).await, ["al1@example.org"]);
    let hertford = || Scope::of(vec![ConstituencyCode::parse("E14900001").unwrap()]);
    assert_eq!(found("SG13", hertford()).await, ["sg13@example.org"]);
    assert_eq!(found("AL1", hertford()).await, Vec::<String>::new());
    db.assert_counts_kept().await;
}

/// Part of a name or an address, in any case, with the characters a pattern or an index query
/// would read as its own (`%`, `_`, `\\`, `"`, `'`), one, two or many characters long: the
/// search finds exactly whom reading every name and address would find, before and after a
/// name changes and a person is erased (the index follows the contacts).
async fn a_search_matching_many_is_counted_only_so_far_past_its_page(db: TestStore) {
    use canvass::domain::Scope;
    use canvass::store::{CONTACTS_PAGE, ContactQuery, ContactSearch, Matches, SEARCH_COUNTED};
    let many = SEARCH_COUNTED + 100;
    let mut csv = HEADER.to_owned();
    for i in 0..many {
        csv.push_str(&format!("m{i}@example.org,Ada Manyname {i},,,,news,,\n"));
    }
    csv.push_str("other@example.org,Other Person,,,,news,,\n");
    db.import_people(&csv).await;
    let page = |n: u32, text: &str| {
        let query = ContactQuery {
            search: Some(ContactSearch::Text(text.to_owned())),
            page: n,
            ..ContactQuery::default()
        };
        let store = db.store.clone();
        async move { store.find_contacts(&Scope::Everyone, &query).await.unwrap() }
    };
    let size = u64::from(CONTACTS_PAGE);
    // The first page: counted to the bound, and more.
    let first = page(1, "manyname").await;
    assert_eq!(first.total, Matches::MoreThan(SEARCH_COUNTED));
    assert_eq!(first.contacts.len() as u64, size);
    assert!(first.total.beyond(size));
    // The last page the bound reaches still has a next; the one past it counts to the end.
    let at_bound = (SEARCH_COUNTED / size) as u32;
    assert!(
        page(at_bound, "manyname")
            .await
            .total
            .beyond(SEARCH_COUNTED)
    );
    let past = page(at_bound + 1, "manyname").await;
    assert_eq!(past.total, Matches::Exactly(many));
    let last = page((many / size) as u32, "manyname").await;
    assert_eq!(last.contacts.len() as u64, size);
    assert!(!last.total.beyond(many));
    // A search matching few, and a list with no search, are counted exactly.
    assert_eq!(page(1, "other").await.total, Matches::Exactly(1));
    let everyone = db
        .store
        .find_contacts(&Scope::Everyone, &ContactQuery::default())
        .await
        .unwrap();
    assert_eq!(everyone.total, Matches::Exactly(many + 1));
}

async fn a_search_finds_any_part_of_a_name_or_address_as_reading_each_would(db: TestStore) {
    use canvass::domain::Scope;
    use canvass::store::{ContactQuery, ContactSearch};
    let mut people = vec![
        ("siobhan.obrien@example.org", "Siobhán O'Brien"),
        ("zoe@example.org", "Zoë 100% Smith_Jones"),
        ("nan@example.net", "Ann \"Nan\" Lee"),
        ("jo.back@example.org", "Jo Back\\slash"),
        ("brian@example.com", "BRIAN BRIGGS"),
        ("mx@example.org", ""),
    ];
    let csv = |people: &[(&str, &str)]| {
        let mut csv = HEADER.to_owned();
        for (email, name) in people {
            let name = name.replace('"', "\"\"");
            csv.push_str(&format!(
                "{email},\"{name}\",,,,news,2026-01-01T00:00:00Z,form\n"
            ));
        }
        csv
    };
    db.import_people(&csv(&people)).await;
    let searches = [
        "brien",
        "BRI",
        "bri",
        "o'b",
        "100%",
        "%",
        "_",
        "h_j",
        "\"nan\"",
        "\"",
        "jo",
        "b",
        "\\",
        "k\\s",
        "oë 1",
        "Zoë",
        "example.org",
        "xample.ne",
        "nothing at all",
        "le.co",
        "bri\0en",
        "br\0",
    ];
    let check = |people: Vec<(&'static str, &'static str)>| {
        let store = db.store.clone();
        async move {
            for search in searches {
                let Some(parsed @ ContactSearch::Text(_)) = ContactSearch::parse(search) else {
                    panic!("{search} is not read as text");
                };
                let query = ContactQuery {
                    search: Some(parsed),
                    ..ContactQuery::default()
                };
                let page = store.find_contacts(&Scope::Everyone, &query).await.unwrap();
                let mut found: Vec<String> = page.contacts.into_iter().map(|c| c.email).collect();
                found.sort();
                let needle = search.replace('\0', "").to_lowercase();
                let mut wanted: Vec<String> = people
                    .iter()
                    .filter(|(email, name)| {
                        name.to_lowercase().contains(&needle) || email.contains(&needle)
                    })
                    .map(|(email, _)| (*email).to_owned())
                    .collect();
                wanted.sort();
                assert_eq!(found, wanted, "searching for {search}");
                assert_eq!(
                    page.total,
                    canvass::store::Matches::Exactly(wanted.len() as u64),
                    "counting {search}"
                );
            }
        }
    };
    check(people.clone()).await;
    // A name changed: found by its new name only.
    people[4].1 = "Brenda Mackie";
    db.import_people(&csv(&people[4..5])).await;
    check(people.clone()).await;
    db.store
        .erase_contact(&email("siobhan.obrien@example.org"), &Actor::Operator)
        .await
        .unwrap();
    people.remove(0);
    check(people).await;
    db.assert_counts_kept().await;
}

/// An event mailing "within N miles" of its venue reaches exactly the people whose postcode the
/// directory places within N miles (measured as `Coordinates::miles_to` measures, from the
/// sample directory's own lat and long), besides its other rules; never someone whose postcode
/// has no place; the live count equals the count one by one; each person's distance is what the
/// template is given; and a venue with no place is refused.
async fn a_distance_rule_reaches_exactly_those_within_its_miles_of_the_venue(db: TestStore) {
    use canvass::domain::{Coordinates, Event, Near, Postcode, Scope};
    let summary = db.load_sample_directory().await;
    assert_eq!(summary.placed, Some(22), "{summary}");
    let directory = std::fs::read_to_string(support::example("postcodes.csv")).unwrap();
    let mut places = std::collections::HashMap::new();
    let mut csv = HEADER.to_owned();
    for (i, line) in directory.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        if let Ok(Some(place)) = Coordinates::from_directory(fields[3], fields[4]) {
            places.insert(fields[0].to_owned(), place);
        }
        csv.push_str(&format!(
            "p{i}@example.org,P{i},{},,,news,2026-01-01T00:00:00Z,form\n\
             q{i}@example.org,Q{i},{},,,events,2026-01-01T00:00:00Z,form\n",
            fields[0], fields[0]
        ));
    }
    csv.push_str("nowhere@example.org,N,,,,news,2026-01-01T00:00:00Z,form\n");
    csv.push_str("unlisted@example.org,U,SG13 9ZZ,,,news,2026-01-01T00:00:00Z,form\n");
    db.import_people(&csv).await;
    // At the venue, people the live count takes from the counts kept by postcode, and must
    // count as the rule does: a child, who is not reached, and one with a guardian's consent,
    // who is; someone restricted, someone suppressed, someone who withdrew; someone who moved
    // away and someone who moved in.
    let ten_years_ago = (Utc::now().date_naive() - chrono::Months::new(120)).to_string();
    let columns = "email,name,postcode,date_of_birth,guardian_consent,guardian_name,\
                   guardian_relationship,topics,consent_at,consent_source\n";
    let mut changed = columns.to_owned();
    for (address, postcode, born) in [
        ("child", "SG13 8EQ", ten_years_ago.as_str()),
        ("guarded", "SG13 8EQ", &ten_years_ago),
        ("restricted", "SG13 8EQ", ""),
        ("suppressed", "SG13 8EQ", ""),
        ("withdrawn", "SG13 8EQ", ""),
        ("movedout", "SG13 8EQ", ""),
        ("movedin", "EC1A 1BB", ""),
    ] {
        let guardian = if born.is_empty() {
            ",,"
        } else {
            "true,Ann,mother"
        };
        changed.push_str(&format!(
            "{address}@example.org,X,{postcode},{born},{guardian},news,2026-01-01T00:00:00Z,form\n"
        ));
    }
    db.import_people(&changed).await;
    db.execute("UPDATE contacts SET guardian_consent = FALSE WHERE email = 'child@example.org'")
        .await;
    db.store
        .set_restricted(&email("restricted@example.org"), true, &Actor::Operator)
        .await
        .unwrap();
    db.store
        .suppress(
            &email("suppressed@example.org").hash(),
            SuppressionReason::Bounced,
        )
        .await
        .unwrap();
    db.withdraw("withdrawn@example.org", "news", Utc::now())
        .await;
    db.import_people(&format!(
        "{columns}movedout@example.org,X,EC1A 1BB,,,,,news,2026-01-01T00:00:00Z,form\n\
         movedin@example.org,X,SG13 8EQ,,,,,news,2026-01-01T00:00:00Z,form\n"
    ))
    .await;
    db.assert_counts_kept().await;
    // Those of them the rule reaches, where they now live.
    let moved = [
        ("guarded@example.org", "SG13 8EQ"),
        ("movedin@example.org", "SG13 8EQ"),
        ("movedout@example.org", "EC1A 1BB"),
    ];
    let postcode_of = |email: &str| -> Option<String> {
        let i: usize = email[1..email.find('@').unwrap()].parse().ok()?;
        directory
            .lines()
            .nth(i + 1)
            .map(|l| l.split(',').next().unwrap().to_owned())
    };
    let today = Utc::now().date_naive();
    let event = |venue: &str| Event {
        title: "Street stall".into(),
        starts_at: Utc::now() + chrono::Duration::days(7),
        venue: "The market".into(),
        postcode: Some(Postcode::parse(venue).unwrap()),
    };
    let cases: [(&str, u32, &[&str]); 5] = [
        ("SG13 8EQ", 1, &[]),
        ("SG13 8EQ", 5, &[]),
        ("SG13 8EQ", 25, &[]),
        ("SG1 2AA", 10, &["E14900001"]),
        ("EC1A 1BB", 3, &[]),
    ];
    for (venue, miles, constituencies) in cases {
        let mut campaign = news_campaign(constituencies, &[]);
        campaign.html_template =
            "<p>{{#if distance_miles}}{{distance_miles}} miles away{{/if}}</p>".into();
        campaign.event = Some(event(venue));
        campaign.audience.near =
            Some(Near::parse(miles, Some(&Postcode::parse(venue).unwrap())).unwrap());
        let centre = places[venue];
        let reached = |postcode: &str| {
            let within = places
                .get(postcode)
                .is_some_and(|place| centre.miles_to(place) <= f64::from(miles));
            let placed = constituencies.is_empty()
                || directory.lines().any(|l| {
                    l.starts_with(&format!("{postcode},"))
                        && constituencies.iter().any(|c| l.contains(c))
                });
            within && placed
        };
        let wanted: Vec<String> = {
            let mut wanted: Vec<String> = (0..directory.lines().count() - 1)
                .map(|i| format!("p{i}@example.org"))
                .filter(|email| reached(&postcode_of(email).unwrap()))
                .chain(
                    moved
                        .iter()
                        .filter(|(_, postcode)| reached(postcode))
                        .map(|(email, _)| email.to_string()),
                )
                .collect();
            wanted.sort();
            wanted
        };
        let everyone = directory.lines().count() - 1;
        assert!(
            !wanted.is_empty() && wanted.len() < everyone,
            "within {miles} of {venue}: {wanted:?}"
        );
        let id = db
            .store
            .create_campaign(&campaign, &Scope::Everyone, false, &Actor::Operator)
            .await
            .unwrap();
        let counted = live_count(&db, &campaign, &Scope::Everyone, today).await;
        assert_eq!(
            counted,
            wanted.len() as u64,
            "counted within {miles} of {venue}"
        );
        assert_eq!(db.store.audience_size(id, today).await.unwrap(), counted);
        // Left out for having no place: in SG2 7AB (no place), GY1 1AA and SG13 9ZZ (not in
        // the directory), and with no postcode; none of them in a constituency.
        let unplaced = db
            .store
            .unplaced_audience(&campaign, &Scope::Everyone, today)
            .await
            .unwrap();
        let wanted_unplaced = if constituencies.is_empty() { 4 } else { 0 };
        assert_eq!(
            unplaced, wanted_unplaced,
            "unplaced, within {miles} of {venue}"
        );
        // Each person's distance, as the template gets it.
        for email in &wanted {
            let recipient = db
                .store
                .sample_recipient(id, Some(&self::email(email)), today)
                .await
                .unwrap()
                .unwrap();
            let postcode = postcode_of(email)
                .or_else(|| {
                    let moved = moved.iter().find(|(address, _)| address == email);
                    moved.map(|(_, postcode)| postcode.to_string())
                })
                .unwrap();
            let place = places[&postcode];
            let miles = recipient.miles_from_venue.unwrap();
            assert!(
                (miles - centre.miles_to(&place)).abs() < 1e-6,
                "{email}: {miles}"
            );
        }
        // Read back as it was written.
        let held = db.store.campaign(id).await.unwrap().unwrap();
        assert_eq!(held.spec.audience.near, campaign.audience.near);
        db.store
            .queue_campaign(id, &Actor::Operator, canvass::store::Imprint::Set)
            .await
            .unwrap();
        assert_eq!(
            queued_addresses(&db, id).await,
            wanted,
            "within {miles} of {venue}"
        );
        db.execute("UPDATE deliveries SET state = 'skipped' WHERE state = 'queued'")
            .await;
    }
    // Without a distance rule, an event's postcode still gives each person their distance; a
    // venue with no place gives none, and is no refusal.
    let mut anywhere = news_campaign(&[], &[]);
    anywhere.event = Some(event("SG13 8EQ"));
    let id = db
        .store
        .create_campaign(&anywhere, &Scope::Everyone, false, &Actor::Operator)
        .await
        .unwrap();
    let cardiff = directory
        .lines()
        .position(|l| l.starts_with("CF10"))
        .unwrap()
        - 1;
    for (address, wanted) in [
        (format!("p{cardiff}@example.org"), true),
        ("unlisted@example.org".to_owned(), false),
    ] {
        let miles = db
            .store
            .sample_recipient(id, Some(&self::email(&address)), today)
            .await
            .unwrap()
            .unwrap()
            .miles_from_venue;
        match wanted {
            true => assert!(
                miles.is_some_and(|m| (100.0..140.0).contains(&m)),
                "{miles:?}"
            ),
            false => assert_eq!(miles, None),
        }
    }
    let mut unplaced_venue = anywhere.clone();
    unplaced_venue.event = Some(event("SG2 7AB"));
    db.store
        .create_campaign(&unplaced_venue, &Scope::Everyone, false, &Actor::Operator)
        .await
        .unwrap();
    // A venue the directory gives no place is refused for a distance rule, and nothing is made.
    let mut unplaced = news_campaign(&[], &[]);
    unplaced.event = Some(event("SG2 7AB"));
    unplaced.audience.near =
        Some(Near::parse(5, Some(&Postcode::parse("SG2 7AB").unwrap())).unwrap());
    let before = db
        .store
        .list_campaigns(&Scope::Everyone)
        .await
        .unwrap()
        .len();
    assert!(matches!(
        db.store
            .create_campaign(&unplaced, &Scope::Everyone, false, &Actor::Operator)
            .await,
        Err(StoreError::VenueUnplaced(_))
    ));
    assert_eq!(
        db.store
            .list_campaigns(&Scope::Everyone)
            .await
            .unwrap()
            .len(),
        before
    );
    db.assert_counts_kept().await;
}

/// A copy of a cancelled campaign "for those not sent it" reaches only the people the
/// original's messages did not reach (and a copy of that copy, neither's), whatever else its
/// audience says; its live count, from the counts kept less those sent, equals the count one by
/// one.
async fn a_copy_for_the_rest_reaches_only_those_not_sent_either_and_is_counted_so(db: TestStore) {
    use canvass::app::campaigns::{CopyFor, copy};
    use canvass::domain::{Event, Near, Postcode, Scope};
    db.load_sample_directory().await;
    let postcodes = ["SG13 8EQ", "SG14 1AA", "SG1 2AA", "AL1 3JE", "SG13 7DG", ""];
    let mut csv = HEADER.to_owned();
    for (i, postcode) in postcodes.iter().enumerate() {
        csv.push_str(&format!(
            "r{i}@example.org,R{i},{postcode},,,news,2026-01-01T00:00:00Z,form\n"
        ));
    }
    db.import_people(&csv).await;
    let everyone = Scope::Everyone;
    let mut letter = news_campaign(&[], &[]);
    letter.html_template = "<p>Dear {{contact.name}}</p>".into();
    let original = db
        .store
        .create_campaign(&letter, &everyone, false, &Actor::Operator)
        .await
        .unwrap();
    db.store
        .queue_campaign(original, &Actor::Operator, canvass::store::Imprint::Set)
        .await
        .unwrap();
    // Three went; then it was cancelled.
    db.execute(leaked(format!(
        "UPDATE deliveries SET state = 'sent' WHERE campaign_id = {original} AND contact_id IN \
         (SELECT id FROM contacts WHERE email IN \
          ('r0@example.org', 'r2@example.org', 'r3@example.org'))"
    )))
    .await;
    db.execute(leaked(format!(
        "UPDATE deliveries SET state = 'skipped' WHERE campaign_id = {original} \
         AND state = 'queued'"
    )))
    .await;
    let today = Utc::now().date_naive();
    let venue = Postcode::parse("SG13 8EQ").unwrap();
    let mut near = news_campaign(&[], &[]);
    near.event = Some(Event {
        title: "Stall".into(),
        starts_at: Utc::now() + chrono::Duration::days(7),
        venue: "Market".into(),
        postcode: Some(venue.clone()),
    });
    near.audience.near = Some(Near::parse(25, Some(&venue)).unwrap());
    for mut campaign in [
        news_campaign(&[], &[]),
        news_campaign(&["E14900001"], &[]),
        news_campaign(&["E14900002"], &["AL1"]),
        news_campaign(&[], &["SG13"]),
        near,
    ] {
        campaign.audience.excluding = vec![original];
        let id = db
            .store
            .create_campaign(&campaign, &everyone, false, &Actor::Operator)
            .await
            .unwrap();
        let counted = live_count(&db, &campaign, &everyone, today).await;
        assert_eq!(
            counted,
            db.store.audience_size(id, today).await.unwrap(),
            "{:?}",
            campaign.audience
        );
    }
    // Through the application, as the console's button and `campaign copy --only-not-sent` do.
    let app = db.app();
    let rest = copy(&app, &Actor::Operator, original, CopyFor::NotYetSent)
        .await
        .unwrap();
    assert_eq!(
        db.store
            .campaign(rest)
            .await
            .unwrap()
            .unwrap()
            .spec
            .audience
            .excluding,
        [original]
    );
    assert_eq!(
        queue_everyone(&db, rest).await,
        ["r1@example.org", "r4@example.org", "r5@example.org"]
    );
    db.execute(leaked(format!(
        "UPDATE deliveries SET state = 'sent' WHERE campaign_id = {rest} AND contact_id = \
         (SELECT id FROM contacts WHERE email = 'r4@example.org')"
    )))
    .await;
    db.execute(leaked(format!(
        "UPDATE deliveries SET state = 'skipped' WHERE campaign_id = {rest} AND state = 'queued'"
    )))
    .await;
    let last = copy(&app, &Actor::Operator, rest, CopyFor::NotYetSent)
        .await
        .unwrap();
    assert_eq!(
        queue_everyone(&db, last).await,
        ["r1@example.org", "r5@example.org"],
        "neither the original's nor the first copy's"
    );
    // A plain copy goes to everyone again.
    let again = copy(&app, &Actor::Operator, original, CopyFor::Everyone)
        .await
        .unwrap();
    assert_eq!(db.store.audience_size(again, today).await.unwrap(), 6);
    db.assert_counts_kept().await;
}

/// Eight drawers at once on a bucket of 40 a second, for a second and a half: together they
/// never get more than the rate allows over the time they drew (plus the bucket's quarter of a
/// second), however they interleave; and they get most of it. The bound holds however slow the
/// machine is (slowness only draws less).
async fn the_sending_budget_never_gives_more_than_its_rate_to_drawers_at_once(db: TestStore) {
    use canvass::store::Draw;
    const RATE: f64 = 40.0;
    db.store.set_send_rate("all", RATE).await.unwrap();
    let started = std::time::Instant::now();
    let drawers = (0..8).map(|_| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut taken = 0u32;
            while started.elapsed() < std::time::Duration::from_millis(1500) {
                match store.draw_send_budget("all", 1.0).await.unwrap() {
                    Draw::Taken(n) => taken += n as u32,
                    Draw::Wait(seconds) => {
                        // Time passes between the draw refused and the wait read: it may be 0.
                        assert!((0.0..=1.0 / RATE + 0.01).contains(&seconds), "{seconds}");
                        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
                    }
                }
            }
            taken
        })
    });
    let mut taken = 0;
    for drawer in drawers {
        taken += drawer.await.unwrap();
    }
    let allowed = RATE * started.elapsed().as_secs_f64() + RATE / 4.0;
    assert!(
        f64::from(taken) <= allowed + 1.0,
        "{taken} drawn, {allowed} allowed"
    );
    assert!(
        taken >= 20,
        "only {taken} drawn in a second and a half at 40 a second"
    );
    // A rate set again (a worker started with another) keeps the bucket, no fuller than its size.
    db.store.set_send_rate("all", 0.5).await.unwrap();
    let mut drawn = 0;
    while let Draw::Taken(n) = db.store.draw_send_budget("all", 1.0).await.unwrap() {
        drawn += n as u32;
    }
    assert!(
        drawn <= 1,
        "{drawn} drawn at once at half a message a second"
    );
}
