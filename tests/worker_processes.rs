//! Real `canvass worker` processes against a real SMTP server (smtp-sink): killed with SIGKILL
//! mid-campaign, stopped with SIGTERM, and two at once on one PostgreSQL campaign. What the
//! server received, per recipient, is the measure.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use support::app::KEY_1;
use support::smtp::SmtpSink;
use support::{TestStore, news_campaign};

/// The worker's default: messages in flight at once, hence the most a crash may repeat.
const CONCURRENCY: usize = 8;

/// `n` people who may all receive a `news` campaign, and that campaign, queued.
async fn queued_campaign(db: &TestStore, n: usize) -> Vec<String> {
    let addresses: Vec<String> = (0..n)
        .map(|i| format!("person{i:05}@example.org"))
        .collect();
    let mut csv = String::from("email,name,postcode,topics,consent_at\n");
    for address in &addresses {
        csv.push_str(&format!("{address},P,SG13 8EQ,news,2026-01-01T00:00:00Z\n"));
    }
    db.import_people(&csv).await;
    db.queue(&news_campaign(&[], &[])).await;
    addresses
}

/// A PostgreSQL server of the test's own (`initdb` and `pg_ctl` on a free port, as the
/// `postgres` user when the tests run as root), so that it can be restarted under a worker
/// without disturbing the shared one. Stopped when dropped.
struct OwnPostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnPostgres {
    /// `None` (saying so) where PostgreSQL's server programs are not installed, which under CI
    /// is a failure instead.
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max();
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no initdb under CI: .ci/run installs PostgreSQL"
            );
            eprintln!("SKIPPED: PostgreSQL's initdb is not installed");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let server = Self {
            bin,
            port: support::smtp::free_port(),
            dir,
        };
        if server.as_root() {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.pg_ctl("start");
        Some(server)
    }

    fn as_root(&self) -> bool {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One of the server's programs, run as `postgres` under root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.as_root() {
            true => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(path);
                command
            }
            false => Command::new(path),
        }
    }

    /// Runs one of the server's programs; panics on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `pg_ctl start`, `stop` (fast: connections are cut, as a restart or failover does) or
    /// `restart`, waiting for it to be done.
    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-m", "fast", "-w", action,
            ],
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// Starts `canvass worker` (with `--drain` when asked) sending to `sink`.
fn start_worker(db: &TestStore, sink: &SmtpSink, drain: bool, lease_seconds: &str) -> Child {
    start_worker_with(db, sink, drain, lease_seconds, &[])
}

/// As [`start_worker`], with more settings.
fn start_worker_with(
    db: &TestStore,
    sink: &SmtpSink,
    drain: bool,
    lease_seconds: &str,
    settings: &[(&str, &str)],
) -> Child {
    let journal = db.dir.path().join("canvass.journal");
    support::start_journal(
        &db.url_with_secret(),
        &[("CANVASS_JOURNAL", journal.to_str().unwrap())],
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_canvass"));
    command.current_dir(db.dir.path()).arg("worker");
    if drain {
        command.arg("--drain");
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CANVASS_") {
            command.env_remove(key);
        }
    }
    command
        .env("CANVASS_DATABASE_URL", db.url_with_secret())
        .env("CANVASS_SMTP_URL", sink.url())
        .env("CANVASS_JOURNAL", &journal)
        .env("CANVASS_SIGNING_KEYS", KEY_1)
        .env("CANVASS_SEND_CONCURRENCY", CONCURRENCY.to_string())
        .env("CANVASS_LEASE_SECONDS", lease_seconds)
        .env("RUST_LOG", "warn")
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("canvass starts")
}

/// Waits for a worker to exit by itself; its stdout.
fn finish(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Lost recipients (received nothing) and repeats (messages beyond the first) over `people`.
fn lost_and_repeated(received: &BTreeMap<String, usize>, people: &[String]) -> (usize, usize) {
    let lost = people.iter().filter(|p| !received.contains_key(*p)).count();
    let repeated = received.values().map(|n| n - 1).sum();
    assert!(
        received.keys().all(|r| people.binary_search(r).is_ok()),
        "nobody outside the campaign is mailed"
    );
    (lost, repeated)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_campaign_loses_nobody_and_repeats_only_what_was_in_flight() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let db = TestStore::sqlite().await;
    db.load_sample_directory().await;
    let people = queued_campaign(&db, 20_000).await;

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut received_before_kill = 0;
    while kills < 4 {
        let mut worker = start_worker(&db, &sink, true, "2");
        // Kill it once it has sent something, at a random point after that.
        let started = Instant::now();
        while sink.messages().len() <= received_before_kill
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..1500))).await;
        if worker.try_wait().unwrap().is_some() {
            break; // it finished the campaign first
        }
        worker.kill().unwrap();
        worker.wait().unwrap();
        kills += 1;
        received_before_kill = sink.messages().len();
        eprintln!("kill {kills}: {received_before_kill} messages received so far");
    }
    assert!(kills >= 3, "the campaign outran the kills: make it bigger");
    // A last worker, after the killed one's leases run out, finishes the campaign.
    finish(start_worker(&db, &sink, true, "2"));

    let received = sink.received_by_recipient();
    let (lost, repeated) = lost_and_repeated(&received, &people);
    eprintln!("{kills} kills: {lost} lost, {repeated} repeated");
    assert_eq!(lost, 0);
    assert!(
        repeated <= CONCURRENCY * kills,
        "{repeated} repeats after {kills} kills"
    );
    let sent = db
        .count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'")
        .await;
    assert_eq!(sent as usize, people.len());
    assert_eq!(
        db.count("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL")
            .await,
        0
    );
}

/// The database restarts under a running `canvass worker`, as a PostgreSQL upgrade or failover
/// would: the worker waits for it and goes on (it used to exit with "terminating connection
/// due to administrator command"). Nobody is lost; repeats stay within what was in flight.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_goes_on_through_a_postgres_restart() {
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let db = TestStore::at(canvass::store::DatabaseUrl::Postgres(server.url())).await;
    db.load_sample_directory().await;
    let people = queued_campaign(&db, 1500).await;
    db.store.close().await;

    // 1,500 messages at 150 a second: ten seconds of sending, the restart in the middle.
    let mut worker = start_worker_with(&db, &sink, false, "5", &[("CANVASS_SEND_RATE", "150")]);
    let started = Instant::now();
    while sink.messages().len() < 200 {
        if worker.try_wait().unwrap().is_some() {
            let output = worker.wait_with_output().unwrap();
            panic!("{}", String::from_utf8_lossy(&output.stderr));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "nothing sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Down for a few seconds, mid-send.
    server.pg_ctl("stop");
    let at_stop = sink.messages().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker exited when the database went away"
    );
    server.pg_ctl("start");
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.received_by_recipient().len() < people.len() {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited after the database came back"
        );
        assert!(Instant::now() < deadline, "the campaign did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = worker.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let output = worker.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    // It either stopped and started again, or its calls waited out the restart: either way
    // what follows holds.
    eprintln!(
        "restarted for the outage: {}",
        said.contains("the database cannot be used")
    );

    let received = sink.received_by_recipient();
    let (lost, repeated) = lost_and_repeated(&received, &people);
    eprintln!("stopped at {at_stop} messages: {lost} lost, {repeated} repeated");
    assert_eq!(lost, 0);
    // Nothing in flight is lost with the process: the results the database could not take
    // are written once it is back, and the worker never claims again a row still in its hands.
    assert_eq!(repeated, 0, "{repeated} repeats");
    let db = TestStore::at(canvass::store::DatabaseUrl::Postgres(server.url())).await;
    let sent = db
        .count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'")
        .await;
    assert_eq!(sent as usize, people.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_on_one_postgres_campaign_send_each_message_once() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let Some(sink) = SmtpSink::start(&[]) else {
        return;
    };
    db.load_sample_directory().await;
    let people = queued_campaign(&db, 4_000).await;

    let first = start_worker(&db, &sink, true, "60");
    let second = start_worker(&db, &sink, true, "60");
    let outputs = [finish(first), finish(second)];

    let received = sink.received_by_recipient();
    assert_eq!(lost_and_repeated(&received, &people), (0, 0));
    let sent_by_each: Vec<u64> = outputs
        .iter()
        .map(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("sent "))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no 'sent N' in {out}"))
        })
        .collect();
    eprintln!("sent by each worker: {sent_by_each:?}");
    assert_eq!(sent_by_each.iter().sum::<u64>(), people.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_the_messages_in_flight_and_gives_back_the_rest() {
    // Each message waits a second for the server's answer, so eight are always in flight.
    let Some(sink) = SmtpSink::start(&["-w", "1"]) else {
        return;
    };
    let db = TestStore::sqlite().await;
    db.load_sample_directory().await;
    let people = queued_campaign(&db, 200).await;

    let worker = start_worker(&db, &sink, false, "600");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stopped = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = finish(worker);
    eprintln!("stopped in {:?}: {out}", stopped.elapsed());

    let received = sink.received_by_recipient();
    let sent = db
        .count("SELECT COUNT(*) FROM deliveries WHERE state = 'sent'")
        .await;
    assert!(sent > 0 && (sent as usize) < people.len(), "{sent}");
    assert_eq!(
        received.len(),
        sent as usize,
        "every message the server took is recorded as sent, and no other"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM deliveries WHERE lease_owner IS NOT NULL")
            .await,
        0,
        "what it had claimed but not sent is given back at once"
    );
}
