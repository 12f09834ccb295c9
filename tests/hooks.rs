//! The mail providers' webhooks, on both engines, over the real HTTP service: each verified
//! its own way (SNS signatures v1 and v2 against a certificate served by a local stand-in for
//! Amazon's host, Mailgun's HMAC and one-time token, Postmark's basic authentication, SendGrid's
//! ECDSA P-256), each taking its provider's documented payload shapes, each acting only on
//! canvass's own messages to the address they went to, each once however often it is sent,
//! and each refusing (401, nothing changed) what is forged, stale or replayed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use canvass::app::hooks::Webhooks;
use canvass::domain::SuppressionReason;
use canvass::hooks::{Providers, mailgun, postmark, sendgrid, ses};
use canvass::mail::Transport;
use canvass::metrics::Metrics;
use canvass::worker::{Sending, Worker, WorkerSettings};
use chrono::Utc;
use hmac::{Hmac, Mac};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use support::app::{KEY_1, TestApp};
use support::{TestStore, on_both_backends};

on_both_backends!(each_provider_is_verified_its_own_way_and_heard_once);

const PEOPLE: &str = "email,name,postcode,topics,consent_at,consent_source\n\
    ses@example.org,Sam Ess,SG13 8EQ,news,2026-01-10,website\n\
    mailgun@example.org,Meg Gunn,SG13 8EQ,news,2026-01-10,website\n\
    postmark@example.org,Pat Mark,SG13 8EQ,news,2026-01-10,website\n\
    sendgrid@example.org,Sid Grid,SG13 8EQ,news,2026-01-10,website\n\
    other@example.org,Olu Other,SG13 8EQ,news,2026-01-10,website\n";

const TOPIC: &str = "arn:aws:sns:eu-west-2:123456789012:canvass-feedback";
const MAILGUN_KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const POSTMARK_AUTH: &str = "postmark:horse-battery-staple";

/// A stand-in for Amazon SNS's host: the signing certificate, and the subscription
/// confirmations it is asked for.
struct Sns {
    base: String,
    key: std::path::PathBuf,
    confirmed: Arc<AtomicUsize>,
}

impl Sns {
    async fn start(dir: &std::path::Path) -> Self {
        let key = dir.join("sns-key.pem");
        let cert = dir.join("sns-cert.pem");
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=sns.eu-west-2.amazonaws.com", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl makes the certificate (.ci/run installs it)");
        assert!(made.status.success(), "{made:?}");
        let pem = std::fs::read_to_string(&cert).unwrap();
        let confirmed = Arc::new(AtomicUsize::new(0));
        let counter = confirmed.clone();
        let router = axum::Router::new()
            .route(
                "/SimpleNotificationService-test.pem",
                axum::routing::get(move || async move { pem }),
            )
            .route(
                "/confirm",
                axum::routing::get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "<ConfirmSubscriptionResponse/>"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            base,
            key,
            confirmed,
        }
    }

    fn certificate_url(&self) -> String {
        format!("{}/SimpleNotificationService-test.pem", self.base)
    }

    /// `text` signed as SNS signs: SHA1withRSA (version 1) or SHA256withRSA (version 2).
    fn sign(&self, text: &str, version: &str) -> String {
        use std::io::Write;
        let digest = if version == "1" { "-sha1" } else { "-sha256" };
        let mut openssl = std::process::Command::new("openssl")
            .args(["dgst", digest, "-sign"])
            .arg(&self.key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        openssl
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let signed = openssl.wait_with_output().unwrap();
        assert!(signed.status.success());
        STANDARD.encode(signed.stdout)
    }

    /// An SNS notification of `message` on `topic`, sent at `at`, signed with `version`.
    fn notification(
        &self,
        id: &str,
        topic: &str,
        message: &Value,
        at: &str,
        version: &str,
    ) -> Value {
        let message = message.to_string();
        let text = format!(
            "Message\n{message}\nMessageId\n{id}\nTimestamp\n{at}\nTopicArn\n{topic}\nType\nNotification\n"
        );
        json!({
            "Type": "Notification",
            "MessageId": id,
            "TopicArn": topic,
            "Message": message,
            "Timestamp": at,
            "SignatureVersion": version,
            "Signature": self.sign(&text, version),
            "SigningCertURL": self.certificate_url(),
            "UnsubscribeURL": format!("{}/unsubscribe", self.base),
        })
    }

    fn subscription(&self, topic: &str, at: &str) -> Value {
        let (id, token) = (
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "2336412f37fb687f5d51e6e2425",
        );
        let url = format!(
            "{}/confirm?Action=ConfirmSubscription&Token={token}",
            self.base
        );
        let message = format!("You have chosen to subscribe to the topic {topic}.");
        let text = format!(
            "Message\n{message}\nMessageId\n{id}\nSubscribeURL\n{url}\nTimestamp\n{at}\nToken\n{token}\nTopicArn\n{topic}\nType\nSubscriptionConfirmation\n"
        );
        json!({
            "Type": "SubscriptionConfirmation", "MessageId": id, "Token": token,
            "TopicArn": topic, "Message": message, "SubscribeURL": url, "Timestamp": at,
            "SignatureVersion": "1", "Signature": self.sign(&text, "1"),
            "SigningCertURL": self.certificate_url(),
        })
    }
}

/// SES's bounce notification, as its documentation shows one, with the original headers.
fn ses_bounce(to: &str, delivery: &str, bounce_type: &str, status: &str) -> Value {
    json!({
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type, "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": to, "action": "failed", "status": status,
                "diagnosticCode": format!("smtp; 550 {status} user unknown")}],
            "timestamp": "2026-12-07T10:00:00.000Z",
            "feedbackId": "00000137860315fd-869464a4-8680-4114-98d3-716fe35851f9-000000",
            "remoteMtaIp": "127.0.2.0", "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com"
        },
        "mail": {
            "timestamp": "2026-12-07T09:59:58.000Z", "source": "news@hertford.example.org",
            "sourceArn": "arn:aws:ses:eu-west-2:123456789012:identity/hertford.example.org",
            "sourceIp": "127.0.3.0", "sendingAccountId": "123456789012",
            "messageId": "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
            "destination": [to], "headersTruncated": false,
            "headers": [
                {"name": "From", "value": "Hertford Labour <news@hertford.example.org>"},
                {"name": "To", "value": to},
                {"name": "X-Canvass-Delivery", "value": delivery}
            ],
            "commonHeaders": {"from": ["news@hertford.example.org"], "to": [to],
                "messageId": "00000137860315fd-34208509", "subject": "Winter news"}
        }
    })
}

/// Mailgun's `failed` event, signed with `key` and `token`.
fn mailgun_event(key: &str, token: &str, event: Value) -> Value {
    let timestamp = Utc::now().timestamp().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    })
}

fn mailgun_failed(id: &str, to: &str, delivery: &str, severity: &str) -> Value {
    json!({
        "id": id, "timestamp": 1521233195.375624, "log-level": "error", "event": "failed",
        "severity": severity, "reason": "bounce", "recipient": to,
        "recipient-domain": "example.org",
        "envelope": {"sender": "bounces@hertford.example.org", "transport": "smtp", "targets": to},
        "message": {"headers": {"to": to, "message-id": "20261207.1.2@hertford.example.org",
            "from": "news@hertford.example.org", "subject": "Winter news"}},
        "delivery-status": {"attempt-no": 1, "code": 550,
            "message": "5.1.1 The email account that you tried to reach does not exist",
            "description": ""},
        "user-variables": {"canvass_delivery": delivery}
    })
}

/// A SendGrid key pair, and its public half as SendGrid shows it.
fn sendgrid_keys() -> (EcdsaKeyPair, String) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // The DER header of a P-256 SubjectPublicKeyInfo, then the point.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    (pair, STANDARD.encode(spki))
}

async fn each_provider_is_verified_its_own_way_and_heard_once(db: TestStore) {
    db.load_sample_directory().await;
    db.import_people(PEOPLE).await;
    // Sent through a relay of each provider (as the hosts would name them), to an outbox.
    let outbox = db.dir.path().join("outbox");
    db.queue(&support::news_campaign(&[], &[])).await;
    let mut worker = Worker::new(
        db.store.clone(),
        WorkerSettings {
            letterhead: canvass::mail::Letterhead {
                providers: Providers::of_relay("smtp.mailgun.org")
                    .and(Providers::of_relay("smtp.postmarkapp.com"))
                    .and(Providers::of_relay("smtp.sendgrid.net")),
                ..support::letterhead()
            },
            relays: Transport::Outbox(outbox.clone()).into(),
            metrics: Arc::new(Metrics::new()),
            sending: Sending::default(),
        },
    );
    assert_eq!(worker.drain().await.unwrap().sent, 5);
    let sent = support::sent_messages(&outbox);
    let delivery = |to: &str| support::header(&sent[to], "X-Canvass-Delivery: ");
    let message = &sent["mailgun@example.org"];
    assert_eq!(
        delivery("mailgun@example.org"),
        support::header(message, "Message-ID: ")
    );
    assert!(message.contains("X-Mailgun-Variables: {\"canvass_delivery\":\"<"));
    assert!(message.contains("X-PM-Metadata-canvass_delivery: <"));
    assert!(message.contains("X-SMTPAPI: {\"unique_args\":{\"canvass_delivery\":\"<"));

    let sns = Sns::start(db.dir.path()).await;
    let (sendgrid_pair, sendgrid_public) = sendgrid_keys();
    let webhooks = Webhooks {
        ses: Some(ses::Ses::new(
            vec![TOPIC.into()],
            ses::TrustedHost::Test(sns.base.clone()),
        )),
        mailgun: mailgun::SigningKey::new(MAILGUN_KEY),
        postmark: postmark::BasicAuth::new(POSTMARK_AUTH),
        sendgrid: Some(sendgrid::VerificationKey::parse(&sendgrid_public).unwrap()),
    };
    let app = TestApp::serve_configured(db, KEY_1, |app| app.with_webhooks(webhooks)).await;
    let post = |path: &'static str, body: Vec<u8>| {
        let request = app.client.post(format!("{}{path}", app.base)).body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap_or_default())
        }
    };
    let suppressed = |to: &'static str| {
        let db = &app.db;
        async move { db.held(to).await.suppression.map(|s| s.reason) }
    };
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // SES, signature version 1: a permanent bounce of canvass's message suppresses.
    let bounce = ses_bounce(
        "ses@example.org",
        &delivery("ses@example.org"),
        "Permanent",
        "5.1.1",
    );
    let notification = sns.notification("sns-1", TOPIC, &bounce, &now, "1");
    let (status, heard) = post("/hooks/ses", notification.to_string().into_bytes()).await;
    assert_eq!(
        (status, heard["suppressed"].as_u64()),
        (200, Some(1)),
        "{heard}"
    );
    assert_eq!(
        suppressed("ses@example.org").await,
        Some(SuppressionReason::Bounced)
    );
    // SNS delivers again: heard before, nothing done twice.
    let (status, heard) = post("/hooks/ses", notification.to_string().into_bytes()).await;
    assert_eq!(
        (status, heard["repeated"].as_u64()),
        (200, Some(1)),
        "{heard}"
    );
    // Version 2 (SHA256withRSA): a transient bounce is recorded and suppresses nobody.
    let transient = ses_bounce(
        "other@example.org",
        &delivery("other@example.org"),
        "Transient",
        "4.2.2",
    );
    let notification = sns.notification("sns-2", TOPIC, &transient, &now, "2");
    let (status, heard) = post("/hooks/ses", notification.to_string().into_bytes()).await;
    assert_eq!(
        (status, heard["recorded"].as_u64()),
        (200, Some(1)),
        "{heard}"
    );
    assert_eq!(suppressed("other@example.org").await, None);
    // Forged, stale, of another topic, signed by another host's certificate: 401, no change.
    let other = ses_bounce(
        "other@example.org",
        &delivery("other@example.org"),
        "Permanent",
        "5.1.1",
    );
    let mut forged = sns.notification("sns-3", TOPIC, &other, &now, "1");
    forged["Message"] = Value::String(
        ses_bounce(
            "postmark@example.org",
            &delivery("postmark@example.org"),
            "Permanent",
            "5.1.1",
        )
        .to_string(),
    );
    let stale = (Utc::now() - chrono::Duration::minutes(61))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut elsewhere = sns.notification("sns-6", TOPIC, &other, &now, "1");
    elsewhere["SigningCertURL"] = json!("https://sns.eu-west-2.amazonaws.com.example/x.pem");
    for refused in [
        forged,
        sns.notification("sns-4", TOPIC, &other, &stale, "1"),
        sns.notification(
            "sns-5",
            "arn:aws:sns:eu-west-2:999999999999:theirs",
            &other,
            &now,
            "1",
        ),
        elsewhere,
        json!({"notificationType": "Bounce"}),
    ] {
        let (status, _) = post("/hooks/ses", refused.to_string().into_bytes()).await;
        assert_eq!(status, 401, "{refused}");
    }
    assert_eq!(suppressed("other@example.org").await, None);
    assert_eq!(suppressed("postmark@example.org").await, None);
    // A subscription is confirmed for our topic only.
    let (status, _) = post(
        "/hooks/ses",
        sns.subscription(TOPIC, &now).to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let theirs = sns.subscription("arn:aws:sns:eu-west-2:999999999999:theirs", &now);
    let (status, _) = post("/hooks/ses", theirs.to_string().into_bytes()).await;
    assert_eq!(status, 401);
    assert_eq!(sns.confirmed.load(Ordering::SeqCst), 1);

    // Mailgun: a permanent failure suppresses; its token is never accepted again.
    let failed = mailgun_failed(
        "mg-1",
        "mailgun@example.org",
        &delivery("mailgun@example.org"),
        "permanent",
    );
    let signed = mailgun_event(MAILGUN_KEY, "token-one-0123456789abcdef", failed.clone());
    let (status, heard) = post("/hooks/mailgun", signed.to_string().into_bytes()).await;
    assert_eq!(
        (status, heard["suppressed"].as_u64()),
        (200, Some(1)),
        "{heard}"
    );
    assert_eq!(
        suppressed("mailgun@example.org").await,
        Some(SuppressionReason::Bounced)
    );
    let (status, _) = post("/hooks/mailgun", signed.to_string().into_bytes()).await;
    assert_eq!(status, 401, "a replayed token");
    // Mailgun retries the event with a new token: heard before.
    let retried = mailgun_event(MAILGUN_KEY, "token-two-0123456789abcdef", failed);
    let (status, heard) = post("/hooks/mailgun", retried.to_string().into_bytes()).await;
    assert_eq!(
        (status, heard["repeated"].as_u64()),
        (200, Some(1)),
        "{heard}"
    );
    let wrong_key = mailgun_event(
        "key-not-ours",
        "token-three",
        mailgun_failed(
            "mg-2",
            "other@example.org",
            &delivery("other@example.org"),
            "permanent",
        ),
    );
    let (status, _) = post("/hooks/mailgun", wrong_key.to_string().into_bytes()).await;
    assert_eq!(status, 401);
    assert_eq!(suppressed("other@example.org").await, None);

    // Postmark: only with the webhook's credentials; a spam complaint suppresses.
    let complaint = json!({"RecordType": "SpamComplaint", "MessageStream": "outbound", "ID": 42,
        "Type": "SpamComplaint", "TypeCode": 100001, "Name": "Spam complaint", "Tag": "",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Metadata": {"canvass_delivery": delivery("postmark@example.org")},
        "ServerID": 1234, "Description": "", "Details": "Test spam complaint details",
        "Email": "postmark@example.org", "From": "news@hertford.example.org",
        "BouncedAt": "2026-12-07T10:00:00Z", "DumpAvailable": true, "Inactive": true,
        "CanActivate": false, "Subject": "Winter news", "Content": "<Abuse report dump>"});
    let (user, password) = POSTMARK_AUTH.split_once(':').unwrap();
    for (auth, expected) in [(None, 401), (Some("wrong"), 401), (Some(password), 200)] {
        let mut request = app
            .client
            .post(format!("{}/hooks/postmark", app.base))
            .body(complaint.to_string());
        if let Some(password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), expected);
    }
    assert_eq!(
        suppressed("postmark@example.org").await,
        Some(SuppressionReason::Complaint)
    );

    // SendGrid: a signed batch; the bounce suppresses, the delivery is recorded, the open is
    // not read, and a bounce naming another address than its message went to is not ours.
    let batch = json!([
        {"email": "sendgrid@example.org", "timestamp": 1513299569, "event": "bounce",
         "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "category": "news",
         "sg_event_id": "sg-bounce-1", "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001",
         "reason": "500 unknown recipient", "status": "5.0.0", "type": "bounce",
         "canvass_delivery": delivery("sendgrid@example.org")},
        {"email": "other@example.org", "timestamp": 1513299569, "event": "delivered",
         "sg_event_id": "sg-delivered-1", "response": "250 OK",
         "canvass_delivery": delivery("other@example.org")},
        {"email": "other@example.org", "timestamp": 1513299569, "event": "open",
         "sg_event_id": "sg-open-1", "canvass_delivery": delivery("other@example.org")},
        {"email": "other@example.org", "timestamp": 1513299569, "event": "bounce",
         "sg_event_id": "sg-bounce-2", "status": "5.1.1", "type": "bounce",
         "canvass_delivery": delivery("sendgrid@example.org")}
    ])
    .to_string();
    let timestamp = Utc::now().timestamp().to_string();
    let signed = [timestamp.as_bytes(), batch.as_bytes()].concat();
    let signature = STANDARD.encode(sendgrid_pair.sign(&SystemRandom::new(), &signed).unwrap());
    let send = |body: String, timestamp: String| {
        app.client
            .post(format!("{}/hooks/sendgrid", app.base))
            .header(sendgrid::SIGNATURE_HEADER, signature.clone())
            .header(sendgrid::TIMESTAMP_HEADER, timestamp)
            .body(body)
            .send()
    };
    let forged = batch.replace("sendgrid@example.org", "other@example.org");
    assert_eq!(
        send(forged, timestamp.clone())
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    // The same batch eight times at once: each answered, acted on once.
    let answers =
        futures_util::future::join_all((0..8).map(|_| send(batch.clone(), timestamp.clone())))
            .await;
    let mut totals = (0, 0, 0, 0);
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        let heard: Value = answer.json().await.unwrap();
        totals.0 += heard["suppressed"].as_u64().unwrap();
        totals.1 += heard["recorded"].as_u64().unwrap();
        totals.2 += heard["not_ours"].as_u64().unwrap();
        totals.3 += heard["repeated"].as_u64().unwrap();
    }
    assert_eq!(
        totals,
        (1, 1, 1, 21),
        "suppressed, recorded, not ours, repeated"
    );
    assert_eq!(
        suppressed("sendgrid@example.org").await,
        Some(SuppressionReason::Bounced)
    );
    assert_eq!(suppressed("other@example.org").await, None, "not ours");

    // Each suppression audited once, as the provider's doing; nothing else suppressed.
    let db = &app.db;
    assert_eq!(
        db.strings(
            "SELECT actor || ' ' || action || ' ' || detail FROM audit_log \
             WHERE action LIKE 'suppressed.%' ORDER BY id"
        )
        .await,
        [
            "provider:ses suppressed.bounced bounce 5.1.1, reported by Amazon SES",
            "provider:mailgun suppressed.bounced bounce 5.1.1, reported by Mailgun",
            "provider:postmark suppressed.complaint complaint, reported by Postmark",
            "provider:sendgrid suppressed.bounced bounce 5.0.0, reported by SendGrid",
        ]
    );
    assert_eq!(
        db.strings(
            "SELECT provider || ' ' || kind || ' ' || outcome FROM hook_events \
             ORDER BY provider, event_key"
        )
        .await,
        [
            "mailgun bounce suppressed",
            "postmark complaint suppressed",
            "sendgrid bounce suppressed",
            "sendgrid bounce not ours",
            "sendgrid delivered recorded",
            "ses bounce suppressed",
            "ses temporary recorded",
        ]
    );
}
