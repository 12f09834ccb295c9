//! The SMTP dialogue alone, as canvass speaks it: lettre's `AsyncSmtpConnection` over
//! CONNECTIONS TCP_NODELAY sockets, sending one message built once (the bench template as
//! HTML, its text as the plain part: about 10 KB) MESSAGES times. No rendering, no signing of
//! links, no ledger: what canvass's own work is measured against in `benches/send.sh`.
//!
//! usage: lettre_ceiling HOST:PORT [MESSAGES] [CONNECTIONS]    (defaults 20000 and 8)
//!        lettre_ceiling --build [MESSAGES]
//! prints the seconds taken. `--build` instead builds and formats the message MESSAGES times on
//! one thread, sending nothing: the cost of lettre's MIME building (quoted-printable and all)
//! that every canvass message pays.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lettre::Message;
use lettre::message::MultiPart;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .expect("usage: lettre_ceiling HOST:PORT [MESSAGES] [CONNECTIONS]");
    let messages: usize = args.get(2).map_or(20_000, |n| n.parse().unwrap());
    let connections: usize = args.get(3).map_or(8, |n| n.parse().unwrap());
    let html = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/newsletter-10k.html"
    ))
    .unwrap();
    let text = html2text::from_read(html.as_bytes(), 1000).unwrap();
    let build = || {
        Message::builder()
            .from("news@hertford.example.org".parse().unwrap())
            .to("person@example.org".parse().unwrap())
            .subject("Winter news")
            .multipart(MultiPart::alternative_plain_html(
                text.clone(),
                html.clone(),
            ))
            .unwrap()
    };
    if server == "--build" {
        let started = Instant::now();
        let bytes: usize = (0..messages).map(|_| build().formatted().len()).sum();
        println!("{:.3}", started.elapsed().as_secs_f64());
        eprintln!("{bytes} bytes built");
        return;
    }
    let message = build();
    let envelope = message.envelope().clone();
    let bytes = Arc::new(message.formatted());
    eprintln!("message of {} bytes", bytes.len());

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..connections {
        let (next, bytes, envelope, server) = (
            next.clone(),
            bytes.clone(),
            envelope.clone(),
            server.clone(),
        );
        senders.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&server).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut connection =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
                    .await
                    .unwrap();
            while next.fetch_add(1, Ordering::Relaxed) < messages {
                connection.send(&envelope, &bytes).await.unwrap();
            }
            connection.quit().await.unwrap();
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{seconds:.3}");
}
