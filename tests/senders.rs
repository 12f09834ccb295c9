//! Several sender domains, each aligned for DMARC: a campaign from a second domain is signed
//! with that domain's own DKIM key (made by `canvass dkim keygen`) and sent with an envelope
//! sender at that domain, through a real SMTP server; receivers' check is dkimpy's, given the
//! published record.

mod support;

use std::sync::Arc;

use canvass::app::{Actor, campaigns};
use canvass::config::DkimSettings;
use canvass::mail::Transport;
use canvass::mail::load_dkim;
use canvass::metrics::Metrics;
use canvass::worker::{Sending, Worker, WorkerSettings};
use support::smtpd::Smtpd;
use support::{TestStore, header, on_both_backends};

on_both_backends!(each_sender_domain_signs_with_its_own_key_and_takes_its_own_bounces);

const PEOPLE: &str = "email,name,postcode,topics,consent_at\n\
    amira@example.org,Amira Hassan,SG13 8EQ,news,2026-09-14T18:30:00Z\n";

/// A key made by `canvass dkim keygen`: its file and the record it printed.
fn keygen(dir: &std::path::Path, domain: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{domain}.pem"));
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_canvass"))
        .args(["dkim", "keygen", domain, "canvass", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8(made.stdout).unwrap();
    assert!(
        printed.starts_with(&format!(
            "canvass._domainkey.{domain}. IN TXT \"v=DKIM1; k=rsa; p="
        )),
        "{printed}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is its owner's alone");
    // The record as a resolver hands it over: the zone file's strings joined.
    let record: String = printed
        .split_once("IN TXT ")
        .unwrap()
        .1
        .trim()
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, part)| part)
        .collect();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_canvass"))
        .args(["dkim", "keygen", domain, "canvass", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing key is never overwritten"
    );
    (key, record)
}

async fn each_sender_domain_signs_with_its_own_key_and_takes_its_own_bounces(db: TestStore) {
    if !support::dkim::verifier_installed() {
        return;
    }
    let Some(server) = Smtpd::start(serde_json::json!({})) else {
        return;
    };
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    let (main_key, main_record) = keygen(db.dir.path(), "hertford.example.org");
    let (other_key, other_record) = keygen(db.dir.path(), "stevenage.example.org");
    let keys = load_dkim(&[
        DkimSettings {
            domain: "hertford.example.org".into(),
            selector: "canvass".into(),
            key_file: main_key,
        },
        DkimSettings {
            domain: "stevenage.example.org".into(),
            selector: "canvass".into(),
            key_file: other_key,
        },
    ])
    .unwrap();

    let app = db
        .app()
        .with_sender_domains(vec!["stevenage.example.org".into()]);
    let campaign = |from: Option<&str>| {
        let mut draft = serde_json::json!({
            "name": "News", "topic": "news", "subject": "News",
            "html_template": "<p>Hello {{contact.name}}</p>"
        });
        if let Some(from) = from {
            draft["from"] = from.into();
        }
        serde_json::from_value(draft).unwrap()
    };
    let send = |return_path: Option<&str>| {
        let mut letterhead = support::letterhead();
        letterhead.dkim = keys.clone();
        letterhead.return_path = return_path.map(|path| path.parse().unwrap());
        Worker::new(
            db.store.clone(),
            WorkerSettings {
                letterhead,
                relays: Transport::from_url(&server.url("smtp", None, "127.0.0.1"))
                    .unwrap()
                    .into(),
                metrics: Arc::new(Metrics::new()),
                sending: Sending::default(),
            },
        )
    };
    let records = [
        ("hertford.example.org", main_record.as_str()),
        ("stevenage.example.org", other_record.as_str()),
    ];

    // The main domain, then the second, then both again with a return path set for the first.
    let mut expected = Vec::new();
    for (from, return_path, envelope, signer) in [
        (
            None,
            None,
            "bounces@hertford.example.org",
            "hertford.example.org",
        ),
        (
            Some("Stevenage Labour <news@stevenage.example.org>"),
            None,
            "bounces@stevenage.example.org",
            "stevenage.example.org",
        ),
        (
            None,
            Some("returns@hertford.example.org"),
            "returns@hertford.example.org",
            "hertford.example.org",
        ),
        (
            Some("Stevenage Labour <news@stevenage.example.org>"),
            Some("returns@hertford.example.org"),
            "bounces@stevenage.example.org",
            "stevenage.example.org",
        ),
    ] {
        let id = campaigns::create(&app, &Actor::Operator, campaign(from))
            .await
            .unwrap();
        campaigns::queue(&app, &Actor::Operator, id).await.unwrap();
        assert_eq!(send(return_path).drain().await.unwrap().sent, 1);
        expected.push((envelope, signer));
    }

    let accepted = server.accepted();
    let messages = server.message_files();
    assert_eq!(accepted.len(), expected.len());
    for ((event, message), (envelope, signer)) in accepted.iter().zip(&messages).zip(expected) {
        assert_eq!(event["from"], envelope, "the envelope sender");
        let unfolded = message.replace("\r\n ", " ").replace("\r\n\t", " ");
        let signature = header(&unfolded, "DKIM-Signature: ");
        assert!(
            signature.contains(&format!("d={signer};")),
            "signed by {signer}: {signature}"
        );
        assert!(
            support::dkim::verifies(db.dir.path(), message, &records),
            "verifies: {message}"
        );
    }
    // A signature made with the other domain's key does not pass for this one: the check is
    // real.
    let forged = messages[1].replace("d=stevenage.example.org", "d=hertford.example.org");
    assert!(!support::dkim::verifies(db.dir.path(), &forged, &records));
}
