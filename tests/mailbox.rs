//! The bounce mailbox over IMAP, on both engines, against a real Dovecot with TLS from a
//! private CA: a mailbox of delivery status notifications, an abuse report, a stray and a
//! forged report is read once, each message acted on as `inbox import` would and moved to
//! `canvass/processed` or `canvass/ignored`, never deleted; reading again changes nothing;
//! STARTTLS works the same; a wrong password or an untrusted certificate reads nothing.

mod support;

use canvass::app::inbox::{self, FetchError, Fetched};
use canvass::domain::SuppressionReason;
use canvass::mail::imap::MailboxUrl;
use canvass::mail::token::SigningKeys;
use support::dovecot::{Dovecot, PASSWORD};
use support::{TestStore, on_both_backends};

on_both_backends!(a_mailbox_of_reports_and_strays_is_read_once_and_left_filed);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/dsn/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn a_mailbox_of_reports_and_strays_is_read_once_and_left_filed(db: TestStore) {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    // Three people sent the news, to an outbox: their Message-IDs are what reports name.
    let (_, people) = db.queue_news_to(3).await;
    let outbox = db.dir.path().join("outbox");
    let mut worker = support::outbox_worker(&db, &outbox);
    assert_eq!(worker.drain().await.unwrap().sent, 3);
    let sent = support::sent_messages(&outbox);
    let id = |to: &str| support::header(&sent[to], "Message-ID: ");
    let (bounced, complained, delayed) = (&people[0], &people[1], &people[2]);

    let hard = fixture("hard-5.1.1.eml")
        .replace("ben@example.org", bounced)
        .replace("<aaaa1111@hertford.example.org>", &id(bounced));
    let complaint = fixture("complaint-arf.eml")
        .replace("dev@example.org", complained)
        .replace("<m-complaint@hertford.example.org>", &id(complained));
    let soft = fixture("soft-4.2.2.eml")
        .replace("amira@example.org", delayed)
        .replace("<aaaa1111@hertford.example.org>", &id(delayed));
    let forged = fixture("hard-5.1.1.eml").replace("ben@example.org", delayed);
    let stray = "From: someone@example.net\r\nTo: bounces@hertford.example.org\r\n\
                 Subject: Out of office\r\nMessage-ID: <ooo@example.net>\r\n\r\n\
                 I am away until Monday.\r\n";
    dovecot.deliver("1.eml", hard.as_bytes());
    dovecot.deliver("2.eml", complaint.as_bytes());
    dovecot.deliver("3.eml", soft.as_bytes());
    dovecot.deliver("4.eml", forged.as_bytes());
    dovecot.deliver("5.eml", stray.as_bytes());
    // The same bounce again, as a second mailbox's copy would arrive.
    dovecot.deliver("6.eml", hard.as_bytes());

    let app = db.app();
    let keys: SigningKeys = support::app::KEY_1.parse().unwrap();
    let roots = canvass::mail::tls::read_roots(&dovecot.certs.ca()).unwrap();
    let tls = canvass::mail::tls::client(&roots);
    let fetch = |url: String| {
        let (app, keys, tls) = (app.clone(), keys.clone(), tls.clone());
        async move {
            let url: MailboxUrl = url.parse().unwrap();
            inbox::fetch(&app, &keys, &url, tls).await
        }
    };

    // A wrong password, or a certificate nobody here trusts: nothing read, nothing moved.
    let refused = fetch(dovecot.url("imaps", "guess")).await;
    assert!(
        matches!(refused, Err(FetchError::Mailbox(_))),
        "{refused:?}"
    );
    let untrusted = canvass::mail::tls::client(&[]);
    let url: MailboxUrl = dovecot.url("imaps", PASSWORD).parse().unwrap();
    assert!(inbox::fetch(&app, &keys, &url, untrusted).await.is_err());
    assert_eq!(dovecot.count("INBOX"), 6);

    let fetched = fetch(dovecot.url("imaps", PASSWORD)).await.unwrap();
    assert_eq!(
        fetched,
        Fetched {
            acted: 3,
            ignored: 2,
            read_before: 1,
            failed: 0
        },
        "{}",
        dovecot.log()
    );
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("canvass/processed"), 4);
    assert_eq!(dovecot.count("canvass/ignored"), 2);
    let suppressed = |to: &str| {
        let db = &db;
        let to = to.to_owned();
        async move { db.held(&to).await.suppression.map(|s| s.reason) }
    };
    assert_eq!(suppressed(bounced).await, Some(SuppressionReason::Bounced));
    assert_eq!(
        suppressed(complained).await,
        Some(SuppressionReason::Complaint)
    );
    assert_eq!(
        suppressed(delayed).await,
        None,
        "a 4.x.x bounce suppresses nobody"
    );
    // Acted on once: one audit entry each, the copy included.
    assert_eq!(
        db.count("SELECT count(*) FROM audit_log WHERE action LIKE 'suppressed.%'")
            .await,
        2
    );

    // Over STARTTLS, later: a new stray is filed; nothing read before is read again.
    dovecot.deliver("7.eml", stray.replace("ooo@", "ooo2@").as_bytes());
    let again = fetch(dovecot.url("imap", PASSWORD)).await.unwrap();
    assert_eq!(
        again,
        Fetched {
            acted: 0,
            ignored: 1,
            read_before: 0,
            failed: 0
        }
    );
    assert_eq!(dovecot.count("canvass/ignored"), 3);
    assert_eq!(dovecot.count("canvass/processed"), 4);
}
