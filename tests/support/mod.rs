//! Test fixtures: a fresh store on SQLite or PostgreSQL for every test, and helpers to look at
//! every table the way an auditor would.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use canvass::import::{ImportReport, Rejection};
use canvass::store::{DatabaseUrl, Pool, Store};
use sqlx::Row;

pub mod app;
pub mod browser;
pub mod console;
pub mod dkim;
pub mod dovecot;
pub mod smtp;
pub mod smtpd;

/// Runs each named `async fn test(db: TestStore)` twice: on SQLite, and on PostgreSQL when
/// `CANVASS_TEST_POSTGRES_URL` is set (each in a fresh database). `TestStore` must be in scope.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = super::TestStore::postgres().await {
                        super::$test(db).await;
                    }
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;

/// The variable that points the PostgreSQL half of the suite at a server. Each test creates its
/// own database there and drops it afterwards.
pub const POSTGRES_URL_VAR: &str = "CANVASS_TEST_POSTGRES_URL";

/// A migrated store in a database of its own, removed when the test ends (even by panic).
pub struct TestStore {
    pub store: Store,
    pub url: DatabaseUrl,
    pub dir: tempfile::TempDir,
    postgres: Option<PostgresDatabase>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl TestStore {
    /// Asserts that the counts the database keeps (consents in force, who may be mailed, each
    /// campaign's deliveries) equal the same counted again from scratch, before and after the
    /// changes not yet folded in are folded.
    pub async fn assert_counts_kept(&self) {
        for when in ["before folding", "after folding"] {
            let drift = self.store.count_drift().await.unwrap();
            assert!(
                drift.is_empty(),
                "kept counts differ {when}:\n{}",
                drift.join("\n")
            );
            self.store.fold_counts().await.unwrap();
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(format!("sqlite://{}", dir.path().join("test.db").display()));
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            dir,
            postgres: None,
        }
    }

    /// A store on a database the test runs itself (a PostgreSQL server of its own), migrated;
    /// nothing is dropped afterwards.
    pub async fn at(url: DatabaseUrl) -> Self {
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self {
            store,
            url,
            dir: tempfile::tempdir().unwrap(),
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (with a message) when no server is configured.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            // CI must run both halves of the suite: there, a missing server is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_URL_VAR} is not set under CI; the PostgreSQL tests must run there"
            );
            eprintln!("SKIPPED: {POSTGRES_URL_VAR} is not set, so the PostgreSQL tests do not run");
            return None;
        };
        let name = format!("canvass_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unusable: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = DatabaseUrl::Postgres(with_database(&admin_url, &name));
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Some(Self {
            store,
            url,
            dir: tempfile::tempdir().unwrap(),
            postgres: Some(PostgresDatabase { admin_url, name }),
        })
    }

    /// The database URL in full, password included, to hand to a child process.
    pub fn url_with_secret(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(url) | DatabaseUrl::Postgres(url) => url.clone(),
        }
    }

    /// Writes a file in the test's folder.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(contents.as_bytes()))
            .unwrap();
        path
    }

    /// The messages in the test's outbox folder (`outbox`), by file name.
    pub fn outbox(&self) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = std::fs::read_dir(self.dir.path().join("outbox"))
            .map(|dir| {
                dir.map(|entry| {
                    let entry = entry.unwrap();
                    let name = entry.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(entry.path()).unwrap())
                })
                .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every value in every table, as text, one line per row prefixed with the table's name.
    pub async fn dump(&self) -> String {
        let mut out = String::new();
        match self.store.pool() {
            Pool::Sqlite(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for table in tables {
                    let rows =
                        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM \"{table}\"")))
                            .fetch_all(pool)
                            .await
                            .unwrap();
                    for row in rows {
                        let values: Vec<String> = (0..row.len())
                            .map(|i| {
                                row.try_get_unchecked::<Option<String>, _>(i)
                                    .ok()
                                    .flatten()
                                    .unwrap_or_default()
                            })
                            .collect();
                        out.push_str(&format!("{table}: {}\n", values.join("|")));
                    }
                }
            }
            Pool::Postgres(pool) => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
                )
                .fetch_all(pool)
                .await
                .unwrap();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT t::text FROM \"{table}\" t"
                    )))
                    .fetch_all(pool)
                    .await
                    .unwrap();
                    for row in rows {
                        out.push_str(&format!("{table}: {row}\n"));
                    }
                }
            }
        }
        out
    }

    /// Loads `examples/postcodes.csv`, the sample directory.
    pub async fn load_sample_directory(&self) -> canvass::import::DirectoryImportSummary {
        let mut report = Recorded::default();
        let summary = canvass::import::import_directory(
            &self.store,
            canvass::import::CsvFile::open(&example("postcodes.csv")).unwrap(),
            false,
            &canvass::domain::Actor::Operator,
            &mut report,
        )
        .await
        .unwrap();
        assert!(report.rejections.is_empty(), "{:?}", report.rejections);
        summary
    }

    /// Imports a contacts CSV every row of which must import.
    pub async fn import_people(&self, csv: &str) {
        let mut report = Recorded::default();
        let file = self.file("people.csv", csv);
        let file = canvass::import::CsvFile::open(&file).unwrap();
        canvass::app::imports::contacts(
            &self.app(),
            &canvass::domain::Actor::Operator,
            file,
            "test",
            None,
            &mut report,
        )
        .await
        .unwrap();
        assert!(report.rejections.is_empty(), "{:?}", report.rejections);
    }

    /// `n` people (person0@example.org ...) who may all receive the news campaign, queued; the
    /// campaign's id and the addresses.
    pub async fn queue_news_to(&self, n: usize) -> (i64, Vec<String>) {
        self.load_sample_directory().await;
        let addresses: Vec<String> = (0..n).map(|i| format!("person{i}@example.org")).collect();
        let rows: String = addresses
            .iter()
            .map(|a| format!("{a},P,SG13 8EQ,news,2026-01-01T00:00:00Z\n"))
            .collect();
        self.import_people(&format!("email,name,postcode,topics,consent_at\n{rows}"))
            .await;
        let id = self.queue(&news_campaign(&["E14900001"], &[])).await;
        (id, addresses)
    }

    /// Creates a campaign and queues it; its id.
    pub async fn queue(&self, campaign: &canvass::domain::NewCampaign) -> i64 {
        let operator = canvass::domain::Actor::Operator;
        let id = self
            .store
            .create_campaign(
                campaign,
                &canvass::domain::Scope::Everyone,
                false,
                &operator,
            )
            .await
            .unwrap();
        self.store
            .queue_campaign(id, &operator, canvass::store::Imprint::Set)
            .await
            .unwrap();
        id
    }

    /// The person withdraws their consent to `topic` through the preference centre, at `at`.
    pub async fn withdraw(&self, address: &str, topic: &str, at: chrono::DateTime<chrono::Utc>) {
        let topic = canvass::domain::TopicSlug::parse(topic).unwrap();
        let change = canvass::store::ConsentChange {
            topic: &topic,
            granted: false,
            source: "preference-centre",
            at,
            wording: None,
            ip: Some("192.0.2.1"),
        };
        let email = canvass::domain::Email::parse(address).unwrap();
        let recorded = self
            .store
            .record_consent(&email, &change, &canvass::domain::Actor::Contact)
            .await
            .unwrap();
        assert!(recorded, "{address} is held");
    }

    /// Everything held on a person who must be held.
    pub async fn held(&self, address: &str) -> canvass::domain::ContactExport {
        let email = canvass::domain::Email::parse(address).unwrap();
        self.store.export_contact(&email).await.unwrap().unwrap()
    }

    /// Runs one SQL statement that returns a count, with one text parameter.
    pub async fn count_with(&self, sql: &'static str, parameter: &str) -> i64 {
        match self.store.pool() {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(parameter)
                    .fetch_one(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(parameter)
                    .fetch_one(pool)
                    .await
            }
        }
        .unwrap()
    }

    /// Runs one SQL statement that changes something: for setting up what a test needs.
    pub async fn execute(&self, sql: &'static str) {
        match self.store.pool() {
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap();
    }

    /// Runs one SQL statement that returns a count.
    /// The first column of every row `sql` reads, as text (NULL left out).
    pub async fn strings(&self, sql: &'static str) -> Vec<String> {
        let rows: Vec<Option<String>> = match self.store.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        };
        rows.into_iter().flatten().collect()
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        match self.store.pool() {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(db) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which must not be blocked on: a thread with a
        // runtime of its own drops the database, and FORCE ends the test's open connections.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(admin) = sqlx::PgPool::connect(&db.admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        db.name
                    )))
                    .execute(&admin)
                    .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

/// The URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    match query {
        Some(query) => format!("{scheme}://{host}/{name}?{query}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

/// A `news` campaign to anyone in the listed constituencies or under the listed postcode
/// prefixes (none: everyone who consented), greeting each by name and constituency.
pub fn news_campaign(constituencies: &[&str], postcodes: &[&str]) -> canvass::domain::NewCampaign {
    use canvass::domain::{Audience, ConstituencyCode, PostcodePrefix, TopicSlug};
    canvass::domain::NewCampaign {
        name: "Winter newsletter".into(),
        topic: TopicSlug::parse("news").unwrap(),
        subject: "Winter news".into(),
        html_template: "<p>Dear {{contact.name}} in {{constituency.name}}</p>".into(),
        text_template: None,
        markdown: None,
        from: None,
        reply_to: None,
        audience: Audience {
            constituencies: constituencies
                .iter()
                .map(|c| ConstituencyCode::parse(c).unwrap())
                .collect(),
            postcodes: postcodes
                .iter()
                .map(|p| PostcodePrefix::parse(p).unwrap())
                .collect(),
            postcodes_within: false,
            near: None,
            excluding: Vec::new(),
        },
        event: None,
        election_material: false,
    }
}

/// An import report that keeps what it is told.
#[derive(Default)]
pub struct Recorded {
    pub rejections: Vec<Rejection>,
    pub notes: Vec<String>,
    pub last_position: u64,
    pub total: u64,
}

impl ImportReport for Recorded {
    fn started(&mut self, total_bytes: u64) {
        self.total = total_bytes;
    }
    fn advanced(&mut self, bytes_read: u64) {
        self.last_position = bytes_read;
    }
    fn rejected(&mut self, rejection: &Rejection) {
        self.rejections.push(rejection.clone());
    }
    fn note(&mut self, message: &str) {
        self.notes.push(message.to_owned());
    }
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The sender's details the tests' messages and pages carry.
pub fn publisher() -> canvass::domain::Publisher {
    canvass::domain::Publisher {
        organisation: "Hertford Labour".into(),
        postal_address: Some("1 Fore Street, Hertford SG14 1AA".into()),
        imprint: Some(
            "Promoted by A. Agent on behalf of Hertford Labour, both at 1 Fore Street".into(),
        ),
        privacy_url: Some("https://hertford.example.org/privacy".into()),
    }
}

/// A worker sending in the background until the returned sender is used (or dropped); the
/// handle gives what it did.
pub fn run_in_background(
    mut worker: canvass::worker::Worker,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<canvass::worker::Totals, canvass::worker::WorkerError>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(async move {
        worker
            .run_until_stopped(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, run)
}

/// The application over the test store, with the tests' sender and links.
impl TestStore {
    pub fn app(&self) -> canvass::app::App {
        canvass::app::App::new(self.store.clone(), publisher(), "https://links.example.org")
            .with_sender_domains(vec!["hertford.example.org".into()])
    }
}

/// A worker with the tests' letterhead sending to an outbox folder.
pub fn outbox_worker(db: &TestStore, outbox: &Path) -> canvass::worker::Worker {
    canvass::worker::Worker::new(
        db.store.clone(),
        canvass::worker::WorkerSettings {
            letterhead: letterhead(),
            relays: canvass::mail::Transport::Outbox(outbox.to_owned()).into(),
            metrics: std::sync::Arc::new(canvass::metrics::Metrics::new()),
            sending: canvass::worker::Sending::default(),
        },
    )
}

/// What the tests' messages carry: links under https://links.example.org signed with
/// [`app::KEY_1`], from Hertford Labour, with [`publisher`]'s footer; no DKIM, no Reply-To.
pub fn letterhead() -> canvass::mail::Letterhead {
    canvass::mail::Letterhead {
        keys: app::KEY_1.parse().unwrap(),
        base_url: "https://links.example.org".into(),
        from: "Hertford Labour <news@hertford.example.org>"
            .parse()
            .unwrap(),
        unsubscribe_mailto: None,
        dkim: canvass::mail::DkimKeys::default(),
        return_path: None,
        publisher: publisher(),
        reply_to: None,
        providers: Default::default(),
    }
}

/// Each recipient's message in an outbox of `.eml` files, with its folded headers unfolded.
pub fn sent_messages(outbox: &Path) -> std::collections::HashMap<String, String> {
    let mut sent = std::collections::HashMap::new();
    for entry in std::fs::read_dir(outbox).unwrap() {
        let message = std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .replace("\r\n ", " ");
        let to = header(&message, "To: ");
        let address = to
            .rsplit('<')
            .next()
            .unwrap()
            .trim_end_matches('>')
            .to_owned();
        sent.insert(address, message);
    }
    sent
}

/// A header's value in a message (the first such header).
pub fn header(message: &str, name: &str) -> String {
    message
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap()
        .trim()
        .to_owned()
}

/// Runs `canvass migrate` on a database the tests made through the library, as an operator
/// would before any other command: it starts the suppression journal (beside an SQLite
/// database, or at `CANVASS_JOURNAL` among `env`), which every other command needs.
pub fn start_journal(url: &str, env: &[(&str, &str)]) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_canvass"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CANVASS_") {
            command.env_remove(key);
        }
    }
    let output = command
        .arg("migrate")
        .env("CANVASS_DATABASE_URL", url)
        .envs(env.iter().copied())
        .output()
        .expect("canvass runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
