//! Erasure survives any restore: a backup taken before an erasure, an unsubscribe and a
//! complaint is put back (by `canvass restore`, by copying the SQLite file back, by `pg_restore`
//! on PostgreSQL), and the next start re-applies the suppression journal before any mail goes.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{TestStore, header};

/// How the Monday backup is put back.
#[derive(Clone, Copy, Debug)]
enum PutBack {
    /// `canvass restore`.
    RestoreCommand,
    /// The SQLite file copied over the database by hand.
    FileCopiedBack,
    /// `pg_restore` run by hand.
    PgRestore,
}

/// The people of the list. Ann is erased, Ben unsubscribes by phone, and Cara's provider
/// reports a complaint, each after the backup; Dan does nothing.
const PEOPLE: &str = "email,name,postcode,topics\r\n\
    ann.erased@example.org,Annabel Quayle-Erased,SG13 8EQ,news\r\n\
    ben@example.org,Ben,SG13 8EQ,news\r\n\
    cara@example.org,Cara,SG13 8EQ,news\r\n\
    dan@example.org,Dan,SG13 8EQ,news\r\n";

struct Site {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Site {
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_canvass"));
        command.current_dir(&self.dir).args(args);
        for (key, _) in std::env::vars() {
            if key.starts_with("CANVASS_") {
                command.env_remove(key);
            }
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command.output().expect("canvass runs")
    }

    /// Runs a command that must succeed; what it printed, stdout then stderr.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "canvass {args:?}: {printed}");
        printed
    }

    /// Creates and queues a news campaign, sends it to `outbox/` and returns each recipient's
    /// message, the outbox emptied for the next.
    fn send_news(&self) -> std::collections::HashMap<String, String> {
        let id = self.ok(&[
            "campaign",
            "create",
            "--name",
            "News",
            "--topic",
            "news",
            "--subject",
            "News",
            "--html",
            "news.html",
        ]);
        self.ok(&["campaign", "queue", id.trim()]);
        self.ok(&["worker", "--drain"]);
        let outbox = self.dir.join("outbox");
        let sent = support::sent_messages(&outbox);
        std::fs::remove_dir_all(&outbox).unwrap();
        sent
    }
}

/// The whole story on one database: the backup, the three changes after it, the restore, the
/// start, and a campaign queued afterwards.
fn a_restore_keeps_every_erasure_and_suppression(site: &Site, put_back: PutBack) {
    std::fs::write(site.dir.join("people.csv"), PEOPLE).unwrap();
    std::fs::write(site.dir.join("news.html"), "<p>Hello {{contact.name}}</p>").unwrap();
    site.ok(&["migrate"]);
    let postcodes = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/postcodes.csv");
    site.ok(&["postcodes", "import", postcodes.to_str().unwrap()]);
    site.ok(&["contacts", "import", "people.csv"]);
    let first = site.send_news();
    assert_eq!(first.len(), 4, "{:?}", first.keys());

    // Monday's backup, taken while nothing else has happened since the first campaign.
    let printed = site.ok(&["backup", "monday.backup"]);
    assert!(printed.contains("backed up"), "{printed}");
    assert!(printed.contains("is not in the backup"), "{printed}");

    // Tuesday: Ann is erased, Ben rings to unsubscribe, Cara's provider reports a complaint.
    site.ok(&["contact", "erase", "ann.erased@example.org"]);
    site.ok(&[
        "contact",
        "unsubscribe",
        "ben@example.org",
        "--source",
        "phone",
    ]);
    let complaint = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dsn/complaint-arf.eml"),
    )
    .unwrap()
    .replace(
        "<m-complaint@hertford.example.org>",
        &header(&first["cara@example.org"], "Message-ID: "),
    )
    .replace("Dev <dev@example.org>", "Cara <cara@example.org>");
    std::fs::create_dir(site.dir.join("reports")).unwrap();
    std::fs::write(site.dir.join("reports/1.eml"), complaint).unwrap();
    let printed = site.ok(&["inbox", "import", "reports"]);
    assert!(
        printed.contains("complaint report: suppressed"),
        "{printed}"
    );

    // The journal holds the three, by hash alone.
    let journal = std::fs::read_to_string(site.dir.join("canvass.journal")).unwrap();
    for kind in [" erased ", " unsubscribed ", " complaint "] {
        assert!(journal.contains(kind), "{kind} missing from:\n{journal}");
    }
    assert!(
        !journal.contains("example.org") && !journal.contains("Annabel"),
        "{journal}"
    );

    // Wednesday: Monday's copy goes back.
    match put_back {
        PutBack::RestoreCommand => {
            let printed = site.ok(&["restore", "monday.backup"]);
            assert!(
                printed.contains(
                    "re-applied 1 erasures and 2 suppressions recorded after this backup"
                ),
                "{printed}"
            );
        }
        PutBack::FileCopiedBack => {
            let db = site.dir.join("canvass.db");
            for stale in ["canvass.db-wal", "canvass.db-shm"] {
                let _ = std::fs::remove_file(site.dir.join(stale));
            }
            std::fs::copy(site.dir.join("monday.backup"), &db).unwrap();
        }
        PutBack::PgRestore => {
            let url = &site
                .env
                .iter()
                .find(|(key, _)| key == "CANVASS_DATABASE_URL")
                .unwrap()
                .1;
            let output = Command::new("pg_restore")
                .args(["--clean", "--if-exists", "--no-owner", "--dbname", url])
                .arg(site.dir.join("monday.backup"))
                .output()
                .expect("pg_restore runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    // The next start (here the worker's) puts back what the copy lacks, before any mail goes;
    // after `restore`, there is nothing left to put back.
    let started = site.ok(&["worker", "--drain"]);
    match put_back {
        PutBack::RestoreCommand => assert!(!started.contains("lacked"), "{started}"),
        _ => assert!(
            started.contains("lacked 1 erasures and 2 suppressions"),
            "{started}"
        ),
    }
    let second = site.send_news();
    assert_eq!(
        second.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["dan@example.org".to_owned()]),
        "after a restore ({put_back:?}), only Dan may be mailed"
    );
    let export = site.run(&["contact", "export", "ann.erased@example.org"]);
    let said = String::from_utf8_lossy(&export.stdout);
    assert!(!said.contains("Annabel"), "{said}");

    // Starting again changes nothing more.
    let again = site.ok(&["migrate"]);
    assert!(!again.contains("lacked"), "{again}");
}

/// Whether any file in `dir` whose name starts with `prefix` holds `needle`.
fn files_holding(dir: &Path, prefix: &str, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        })
        .map(|path| path.display().to_string())
        .collect()
}

fn sqlite_site() -> (tempfile::TempDir, Site) {
    let dir = tempfile::tempdir().unwrap();
    let site = Site {
        dir: dir.path().to_owned(),
        env: vec![(
            "CANVASS_DATABASE_URL".into(),
            format!("sqlite://{}", dir.path().join("canvass.db").display()),
        )],
    };
    (dir, site)
}

#[test]
fn canvass_restore_re_applies_the_journal_on_sqlite() {
    let (_dir, site) = sqlite_site();
    a_restore_keeps_every_erasure_and_suppression(&site, PutBack::RestoreCommand);
    for needle in ["ann.erased@example.org", "Annabel Quayle-Erased"] {
        let found = files_holding(&site.dir, "canvass.db", needle);
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }
}

#[test]
fn a_database_file_copied_back_by_hand_is_caught_at_the_next_start() {
    let (_dir, site) = sqlite_site();
    a_restore_keeps_every_erasure_and_suppression(&site, PutBack::FileCopiedBack);
    for needle in ["ann.erased@example.org", "Annabel Quayle-Erased"] {
        let found = files_holding(&site.dir, "canvass.db", needle);
        assert!(found.is_empty(), "{needle} is still in {found:?}");
    }
}

/// The PostgreSQL site: the database of its own, and the journal in the test's folder.
async fn postgres_site(db: &TestStore) -> Site {
    db.store.close().await;
    Site {
        dir: db.dir.path().to_owned(),
        env: vec![
            ("CANVASS_DATABASE_URL".into(), db.url_with_secret()),
            (
                "CANVASS_JOURNAL".into(),
                db.dir.path().join("canvass.journal").display().to_string(),
            ),
        ],
    }
}

#[tokio::test]
async fn canvass_restore_re_applies_the_journal_on_postgres() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let site = postgres_site(&db).await;
    a_restore_keeps_every_erasure_and_suppression(&site, PutBack::RestoreCommand);
}

#[tokio::test]
async fn a_pg_restore_by_hand_is_caught_at_the_next_start() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let site = postgres_site(&db).await;
    a_restore_keeps_every_erasure_and_suppression(&site, PutBack::PgRestore);
}

#[test]
fn a_backup_is_refused_over_an_existing_file_and_a_restore_from_what_is_no_backup() {
    let (_dir, site) = sqlite_site();
    site.ok(&["migrate"]);
    std::fs::write(site.dir.join("notes.txt"), "not a database").unwrap();
    let over = site.run(&["backup", "notes.txt"]);
    assert!(!over.status.success());
    assert!(
        String::from_utf8_lossy(&over.stderr).contains("exists already"),
        "{over:?}"
    );
    assert_eq!(
        std::fs::read_to_string(site.dir.join("notes.txt")).unwrap(),
        "not a database"
    );
    let before = std::fs::read(site.dir.join("canvass.db")).unwrap();
    let wrong = site.run(&["restore", "notes.txt"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("is not a backup of a canvass database"),
        "{wrong:?}"
    );
    assert_eq!(std::fs::read(site.dir.join("canvass.db")).unwrap(), before);
}

#[test]
fn no_command_but_migrate_creates_a_missing_database() {
    let (_dir, site) = sqlite_site();
    for args in [
        &["contacts", "import", "people.csv"][..],
        &["worker", "--drain"],
        &["topics", "list"],
        &["backup", "x.backup"],
    ] {
        let output = site.run(args);
        assert!(!output.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(
            said.contains("there is no database at") && said.contains("canvass.db"),
            "{args:?}: {said}"
        );
        assert!(!site.dir.join("canvass.db").exists(), "{args:?} created it");
    }
    let created = site.ok(&["migrate"]);
    assert!(created.contains("created the schema"), "{created}");
    let again = site.ok(&["migrate"]);
    assert!(again.contains("the schema is up to date"), "{again}");
}

/// The journal is born with the database and not reborn in silence: once this database has
/// written to it, a journal gone missing (moved, deleted, a restore onto a new machine without
/// it) stops every command, `restore` included, until it is put back, or a new one is started
/// knowingly (`migrate --new-journal`, audited). A line torn by a full disk or a crash never
/// swallows the entry after it.
#[test]
fn a_lost_journal_stops_everything_and_a_torn_line_swallows_nothing() {
    let (_dir, site) = sqlite_site();
    std::fs::write(site.dir.join("people.csv"), PEOPLE).unwrap();
    site.ok(&["migrate"]);
    site.ok(&["contacts", "import", "people.csv"]);
    site.ok(&["backup", "monday.backup"]);
    let journal = site.dir.join("canvass.journal");

    // Torn by a failed write, then an erasure: the erasure is still read, and re-applied.
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut torn, b"2026-12-07T09:16:00Z unsubscribed 9f86d0").unwrap();
    site.ok(&["contact", "erase", "ann.erased@example.org"]);
    let printed = site.ok(&["restore", "monday.backup"]);
    assert!(printed.contains("re-applied 1 erasures"), "{printed}");

    // Gone: nothing runs, and nothing is restored, until it is back.
    std::fs::rename(&journal, site.dir.join("elsewhere.journal")).unwrap();
    let inode = || {
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(site.dir.join("canvass.db")).unwrap(),
        )
    };
    let before = inode();
    for args in [
        &["restore", "monday.backup"][..],
        &["worker", "--drain"],
        &["migrate"],
        &["contact", "erase", "ben@example.org"],
    ] {
        let output = site.run(args);
        assert!(!output.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("canvass.journal"), "{args:?}: {said}");
    }
    assert!(!journal.exists(), "no command made a new, empty journal");
    assert_eq!(inode(), before, "the database was not replaced");
    std::fs::rename(site.dir.join("elsewhere.journal"), &journal).unwrap();
    site.ok(&["worker", "--drain"]);
    let ben = site.ok(&["contact", "export", "ben@example.org"]);
    assert!(
        ben.contains("\"Ben\""),
        "the erasure refused changed nothing: {ben}"
    );

    // Lost for good: started anew only when asked, and the audit log says so.
    std::fs::remove_file(&journal).unwrap();
    site.ok(&["migrate", "--new-journal"]);
    assert!(journal.exists());
    site.ok(&["contact", "erase", "ben@example.org"]);
}
