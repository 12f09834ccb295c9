//! canvass behind Caddy as README's recipe sets it up: `canvass serve` on loopback, Caddy in
//! front with HTTPS from its internal CA, `CANVASS_TRUSTED_PROXIES` naming Caddy. A one-click
//! unsubscribe, a preference-centre save and a console sign-in go through it over HTTPS, from a
//! client at 127.0.0.5, and that is the address canvass records; the dashboard's live stream
//! comes through as it is sent.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canvass::mail::token::{Purpose, SigningKeys};
use canvass::store::DatabaseUrl;
use support::TestStore;
use support::app::KEY_1;
use support::console::{PASSWORD, add_staff};
use support::smtp::free_port;

/// Where the client connects from: not Caddy's own address, so that the one recorded is
/// known to be the client's.
const CLIENT: &str = "127.0.0.5";

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn caddy_present() -> bool {
    let present = Command::new("caddy")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "no caddy under CI: .ci/run installs it"
        );
        eprintln!("SKIPPED: caddy is not installed (apt-get install caddy)");
    }
    present
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A request through Caddy with curl, trusting Caddy's internal CA alone: the status, the
/// headers and the body.
struct Curl {
    base: String,
    https_port: u16,
    ca: PathBuf,
}

impl Curl {
    fn request(&self, args: &[&str]) -> (u16, String, String) {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--interface", CLIENT, "-D", "-"])
            .arg("--cacert")
            .arg(&self.ca)
            .arg("--resolve")
            .arg(format!("canvass.localhost:{}:127.0.0.1", self.https_port))
            .args(args)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no answer: {text}{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        (status, head.to_owned(), body.to_owned())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn through_caddy_over_https_the_links_and_the_console_work_and_the_client_is_recorded() {
    if !caddy_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("canvass.db").display());
    let db = TestStore::at(DatabaseUrl::Sqlite(url.clone())).await;
    db.load_sample_directory().await;
    db.import_people(
        "email,name,postcode,topics,consent_at\n\
         amira@example.org,Amira,SG13 8EQ,news;events,2026-09-14T18:30:00Z\n\
         ben@example.org,Ben,SG13 8EQ,news,2026-09-14T18:30:00Z\n",
    )
    .await;
    add_staff(&db, "admin@hq.example.org", "admin", &[]).await;
    let keys: SigningKeys = KEY_1.parse().unwrap();
    let token = |email: &str, purpose: Purpose| {
        let store = db.store.clone();
        let keys = keys.clone();
        let email = canvass::domain::Email::parse(email).unwrap();
        async move {
            let held = store.export_contact(&email).await.unwrap().unwrap();
            keys.sign(purpose, &held.public_id).as_str().to_owned()
        }
    };
    let unsubscribe = token("amira@example.org", Purpose::Unsubscribe).await;
    let preferences = token("ben@example.org", Purpose::Preferences).await;

    support::start_journal(&url, &[]);
    let (canvass_port, https_port, http_port) = (free_port(), free_port(), free_port());
    let base = format!("https://canvass.localhost:{https_port}");
    let _canvass = Running(
        Command::new(env!("CARGO_BIN_EXE_canvass"))
            .arg("serve")
            .current_dir(dir.path())
            .env("CANVASS_DATABASE_URL", &url)
            .env("CANVASS_LISTEN", format!("127.0.0.1:{canvass_port}"))
            .env("CANVASS_BASE_URL", &base)
            .env("CANVASS_TRUSTED_PROXIES", "127.0.0.1")
            .env("CANVASS_SIGNING_KEYS", KEY_1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // README's recipe, on test ports, with Caddy's internal CA instead of Let's Encrypt.
    let caddyfile = dir.path().join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tskip_install_trust\n\thttp_port {http_port}\n\t\
             https_port {https_port}\n}}\n\
             canvass.localhost:{https_port} {{\n\ttls internal\n\t\
             reverse_proxy 127.0.0.1:{canvass_port} {{\n\t\tflush_interval -1\n\t}}\n}}\n"
        ),
    )
    .unwrap();
    let _caddy = Running(
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&caddyfile)
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(canvass_port, "canvass");
    wait_for_port(https_port, "caddy");
    let ca = dir.path().join("data/caddy/pki/authorities/local/root.crt");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ca.exists() {
        assert!(Instant::now() < deadline, "caddy made no CA");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let curl = Curl {
        base: base.clone(),
        https_port,
        ca,
    };
    let ip_of = |sql: &'static str| {
        let db = &db;
        async move {
            let ips: Vec<String> = db.strings(sql).await;
            ips
        }
    };

    // One click, as a mail client sends it (RFC 8058): no cookie, no Origin.
    let (status, _, _) = curl.request(&[
        "-X",
        "POST",
        "-d",
        "List-Unsubscribe=One-Click",
        &curl.url(&format!("/u/{unsubscribe}")),
    ]);
    assert_eq!(status, 200);
    assert_eq!(
        ip_of("SELECT ip FROM audit_log WHERE action = 'contact.unsubscribed'").await,
        [CLIENT]
    );

    // The preference centre: the page, then a save, from the same origin.
    let (status, _, page) = curl.request(&[&curl.url(&format!("/p/{preferences}"))]);
    assert_eq!(status, 200, "{page}");
    let (status, _, saved) = curl.request(&[
        "-H",
        &format!("Origin: {base}"),
        "-d",
        "topic=news&topic=events&postcode=SG13+8EQ&action=save",
        &curl.url(&format!("/p/{preferences}")),
    ]);
    assert_eq!(status, 200, "{saved}");
    assert!(saved.contains("Your choices are saved"), "{saved}");
    assert_eq!(
        ip_of(
            "SELECT l.ip FROM consent_ledger l JOIN topics t ON t.id = l.topic_id \
             WHERE t.slug = 'events' AND l.source = 'preference-centre'"
        )
        .await,
        [CLIENT]
    );

    // The console: signing in sets a Secure cookie, over HTTPS through the proxy.
    let (status, head, _) = curl.request(&[
        "-H",
        &format!("Origin: {base}"),
        "--data-urlencode",
        "email=admin@hq.example.org",
        "--data-urlencode",
        &format!("password={PASSWORD}"),
        &curl.url("/admin/login"),
    ]);
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.contains("Secure"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap();
    let (status, _, home) =
        curl.request(&["-H", &format!("Cookie: {cookie}"), &curl.url("/admin")]);
    assert_eq!(status, 200);
    assert!(home.contains("(admin)"), "{home}");
    assert_eq!(
        ip_of("SELECT ip FROM audit_log WHERE action = 'staff_user.signed_in'").await,
        [CLIENT]
    );
    // A cross-site form is refused through the proxy too.
    let (status, _, _) = curl.request(&[
        "-H",
        "Origin: https://evil.example",
        "-H",
        &format!("Cookie: {cookie}"),
        "-d",
        "x=1",
        &curl.url("/admin/logout"),
    ]);
    assert_eq!(status, 403);

    // The live stream passes through as it is sent, not held in a buffer.
    let (_, head, body) = curl.request(&[
        "--max-time",
        "5",
        "-H",
        "Accept: text/event-stream",
        "-H",
        &format!("Cookie: {cookie}"),
        &curl.url("/admin/events"),
    ]);
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    assert!(body.contains("event: progress"), "{head}{body}");
}
