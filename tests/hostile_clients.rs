//! The HTTP service against clients that mean harm or just misbehave: thousands of connections
//! that send half a request and wait, pages framed by another site, a lower-case auth scheme.

mod support;

use std::time::Duration;

use canvass::mail::token::Purpose;
use reqwest::StatusCode;
use support::TestStore;
use support::app::{KEY_1, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PEOPLE: &str = "email,name,postcode,topics\namira@example.org,Amira,SG13 8EQ,news\n";

/// `n` connections to the service, the `i`th having sent `sends(i)`.
async fn connections(
    app: &TestApp,
    n: usize,
    sends: impl Fn(usize) -> &'static [u8],
) -> Vec<TcpStream> {
    let address = app.base.trim_start_matches("http://");
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(sends(i)).await.unwrap();
        open.push(stream);
    }
    open
}

/// A client that waits 5 s at most for an answer.
fn patient_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The one-click link unsubscribes Amira, answering in time whatever else is going on.
async fn one_click_answers(app: &TestApp, client: &reqwest::Client) {
    let unsubscribe = client
        .post(app.link(Purpose::Unsubscribe, "amira@example.org").await)
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .expect("the one-click link answers");
    assert_eq!(unsubscribe.status(), StatusCode::OK);
}

/// 3,000 connections each send half a request head and wait: the health check and the
/// one-click link keep answering meanwhile, and the server drops the half-sent requests after
/// its header-read timeout (10 s).
#[tokio::test]
async fn half_sent_requests_are_dropped_and_the_links_keep_answering() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let mut idle = connections(&app, 3000, |_| {
        b"GET /healthz HTTP/1.1\r\nHost: canvass\r\nX-Slow: "
    })
    .await;
    let client = patient_client();
    let health = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("the health check answers beside 3,000 idle connections");
    assert_eq!(health.status(), StatusCode::OK);
    one_click_answers(&app, &client).await;

    tokio::time::sleep(Duration::from_secs(11)).await;
    for stream in idle.iter_mut().step_by(100) {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest))
            .await
            .expect("the server closed the half-sent request");
        // Closed with a 408 or without a word; either way, not served.
        assert!(
            closed.is_err() || !rest.starts_with(b"HTTP/1.1 200"),
            "{rest:?}"
        );
    }
}

/// Connections that send nothing at all, or only the HTTP/2 preface, are closed once they have
/// gone 10 s without a complete request head, while the one-click link keeps answering: before,
/// the wait to tell HTTP/1 from HTTP/2 had no bound, and such sockets were held for ever.
#[tokio::test]
async fn silent_and_preface_only_connections_are_closed_and_one_click_keeps_answering() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let mut idle = connections(&app, 400, |i| match i % 2 {
        0 => b"",
        _ => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    })
    .await;
    one_click_answers(&app, &patient_client()).await;

    tokio::time::sleep(Duration::from_secs(11)).await;
    for (i, stream) in idle.iter_mut().enumerate() {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest)).await;
        let kind = if i % 2 == 1 { "preface-only" } else { "silent" };
        assert!(
            closed.is_ok(),
            "a {kind} connection was still open after 11 s"
        );
    }
}

/// An HTTP/2 client (h2c, prior knowledge) that asks one thing and then only answers the
/// server's pings, as any HTTP/2 library does by itself, is asked to go (GOAWAY) once idle for
/// 10 s, and closed: before, such connections were held for ever, and 10,000 of them kept the
/// one-click link from answering.
#[tokio::test]
async fn an_idle_http2_connection_that_answers_pings_is_closed() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let mut stream = connections(&app, 1, |_| b"").await.remove(0);
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, 0, &[])); // SETTINGS, none changed
    let mut get = vec![0x82, 0x86, 0x44, 0x08]; // GET, http, :path of 8 bytes...
    get.extend(b"/healthz");
    hello.extend(frame(0x1, 0x5, 1, &get)); // HEADERS, END_STREAM | END_HEADERS
    stream.write_all(&hello).await.unwrap();

    let started = tokio::time::Instant::now();
    let (mut answered, mut told_to_go) = (false, false);
    let closed = tokio::time::timeout(Duration::from_secs(40), async {
        let mut head = [0u8; 9];
        while stream.read_exact(&mut head).await.is_ok() {
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).await.is_err() {
                break;
            }
            let reply = match (kind, flags & 0x1) {
                (0x4, 0) => frame(0x4, 0x1, 0, &[]), // SETTINGS: acknowledged
                (0x6, 0) => frame(0x6, 0x1, 0, &payload), // PING: answered
                (0x1, _) => {
                    answered = true;
                    continue;
                }
                (0x7, _) => {
                    told_to_go = true;
                    continue;
                }
                _ => continue,
            };
            if stream.write_all(&reply).await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(answered, "the request was answered");
    assert!(
        closed.is_ok(),
        "an idle HTTP/2 connection was still open after 40 s"
    );
    assert!(told_to_go, "the server said GOAWAY before closing");
    eprintln!("closed after {:?}", started.elapsed());
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend(stream.to_be_bytes());
    frame.extend(payload);
    frame
}

/// Every answer forbids being framed by another site, cached, or sniffed.
#[tokio::test]
async fn every_answer_forbids_framing_caching_and_sniffing() {
    let app = TestApp::start(TestStore::sqlite().await, KEY_1, PEOPLE).await;
    let responses = [
        app.client.get(format!("{}/healthz", app.base)).send().await,
        app.client
            .get(app.link(Purpose::Preferences, "amira@example.org").await)
            .send()
            .await,
        app.client
            .get(format!("{}/u/forged", app.base))
            .send()
            .await,
        app.client
            .get(format!("{}/api/v1/topics", app.base))
            .send()
            .await,
    ];
    for response in responses {
        let response = response.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let url = response.url().path().to_owned();
        assert_eq!(header("x-frame-options"), "DENY", "{url}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{url}"
        );
        assert_eq!(header("cache-control"), "no-store", "{url}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{url}");
    }
    // Every page carries the imprint and the privacy notice.
    let page = app
        .client
        .get(app.link(Purpose::Preferences, "amira@example.org").await)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Promoted by A. Agent on behalf of Hertford Labour"),
        "{page}"
    );
    assert!(
        page.contains("https://hertford.example.org/privacy"),
        "{page}"
    );
}
