//! Backups and restores. A backup is a consistent copy taken while the service runs (SQLite's
//! `VACUUM INTO`, PostgreSQL's `pg_dump --format=custom`); a restore puts one back and then
//! replays the suppression journal, so that nobody erased or unsubscribed since the copy was
//! taken comes back with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use crate::store::{DatabaseUrl, Store};

/// Writes a consistent copy of the database to `dest`, a file that must not exist yet; its size
/// in bytes.
pub(super) async fn backup(store: &Store, url: &DatabaseUrl, dest: &Path) -> anyhow::Result<u64> {
    // Made first, empty, the owner's alone, and only if nothing is there (a symlink left in
    // the way included): the copy holds personal data from its first byte.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists already: name a new file", dest.display())
        }
        created => created.with_context(|| format!("creating {}", dest.display()))?,
    };
    let copied = copy_into(store, url, dest).await;
    if copied.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    copied?;
    let file = std::fs::File::open(dest)?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// The copy itself, into the empty file `dest`.
async fn copy_into(store: &Store, url: &DatabaseUrl, dest: &Path) -> anyhow::Result<()> {
    match url {
        DatabaseUrl::Sqlite(_) => {
            store
                .vacuum_into(dest)
                .await
                .with_context(|| format!("copying the database into {}", dest.display()))?;
        }
        DatabaseUrl::Postgres(url) => {
            let mut dump = postgres_tool("pg_dump", url)?;
            dump.args(["--format=custom", "--file"]).arg(dest);
            run(dump, "pg_dump").await?;
        }
    }
    Ok(())
}

/// Puts the backup `src` in place of the database. The service and the worker must be stopped:
/// they would go on with the database they had open. Nothing changes unless `src` is a backup
/// of a canvass database. The journal is replayed afterwards, by whoever opens the store.
pub(super) async fn restore(url: &DatabaseUrl, src: &Path) -> anyhow::Result<()> {
    if !src.is_file() {
        bail!("{} is not a file", src.display());
    }
    match url {
        DatabaseUrl::Sqlite(_) => {
            let Some(target) = url.sqlite_file() else {
                bail!("the database is in memory: there is nothing to restore into");
            };
            check_sqlite_backup(src, url).await?;
            // Copied beside the database first, so that the database is replaced whole, by a
            // rename, or not at all.
            let staged = with_suffix(&target, ".restoring");
            std::fs::copy(src, &staged)
                .with_context(|| format!("copying {} to {}", src.display(), staged.display()))?;
            std::fs::File::open(&staged)?.sync_all()?;
            // The write-ahead log and its index belong to the database being replaced.
            for suffix in ["-wal", "-shm"] {
                match std::fs::remove_file(with_suffix(&target, suffix)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e)?,
                    _ => {}
                }
            }
            std::fs::rename(&staged, &target)?;
            let folder = target.parent().filter(|p| !p.as_os_str().is_empty());
            std::fs::File::open(folder.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        DatabaseUrl::Postgres(url) => {
            check_postgres_backup(src).await?;
            let mut restore = postgres_tool("pg_restore", url)?;
            restore
                .args([
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    "--exit-on-error",
                ])
                .arg(src);
            run(restore, "pg_restore").await?;
        }
    }
    Ok(())
}

/// Whether `src` is an SQLite database, whole, that canvass made, at a schema this build
/// knows.
async fn check_sqlite_backup(src: &Path, url: &DatabaseUrl) -> anyhow::Result<()> {
    let not_a_backup = || format!("{} is not a backup of a canvass database", src.display());
    let mut connection = SqliteConnectOptions::new()
        .filename(src)
        .read_only(true)
        .connect()
        .await
        .with_context(not_a_backup)?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut connection)
        .await
        .with_context(not_a_backup)?;
    if check != "ok" {
        bail!("{}: the file is damaged ({check})", not_a_backup());
    }
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_sqlx_migrations', 'contacts', 'consent_ledger', 'suppressions', 'campaigns')",
    )
    .fetch_one(&mut connection)
    .await
    .with_context(not_a_backup)?;
    if tables != 5 {
        bail!("{}: it lacks canvass's tables", not_a_backup());
    }
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut connection)
        .await
        .with_context(not_a_backup)?;
    check_version(src, version.unwrap_or(0), url)
}

/// Whether the PostgreSQL dump `src` holds canvass's tables (read from its table of contents,
/// restoring nothing).
async fn check_postgres_backup(src: &Path) -> anyhow::Result<()> {
    let mut list = tokio::process::Command::new("pg_restore");
    list.arg("--list").arg(src);
    let listed = run(list, "pg_restore --list")
        .await
        .with_context(|| format!("{} is not a pg_dump of a canvass database", src.display()))?;
    let has = |table: &str| {
        listed
            .lines()
            .any(|line| line.contains(" TABLE ") && line.split_whitespace().any(|w| w == table))
    };
    if !["_sqlx_migrations", "contacts", "suppressions", "campaigns"]
        .into_iter()
        .all(has)
    {
        bail!(
            "{} is not a backup of a canvass database: it lacks canvass's tables",
            src.display()
        );
    }
    Ok(())
}

/// A backup from a newer canvass would run under an older one that does not know its schema.
fn check_version(src: &Path, version: i64, url: &DatabaseUrl) -> anyhow::Result<()> {
    let known = Store::latest_schema(url);
    if version > known {
        bail!(
            "{} holds schema version {version}, newer than this canvass knows ({known}): \
             restore it with the canvass that made it",
            src.display()
        );
    }
    Ok(())
}

/// A PostgreSQL tool (`pg_dump`, `pg_restore`) pointed at the database `url`: its password in
/// the tool's environment, never on a command line that every user of the machine can read.
fn postgres_tool(program: &str, url: &str) -> anyhow::Result<tokio::process::Command> {
    let (url, password) = without_password(url)?;
    let mut command = tokio::process::Command::new(program);
    command.args(["--no-password", "--dbname"]).arg(url);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    Ok(command)
}

/// The URL with its password taken out, and the password.
fn without_password(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut parsed = url::Url::parse(url).context("reading the database URL")?;
    let mut password = parsed.password().map(|encoded| {
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = parsed.set_password(None);
    // A password in the query too (`?password=`), which libpq reads as well.
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        if key.eq_ignore_ascii_case("password") {
            password = Some(value.into_owned())
        } else {
            kept.push((key.into_owned(), value.into_owned()))
        }
    }
    if kept.is_empty() {
        parsed.set_query(None)
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), password))
}

/// Runs a PostgreSQL tool; what it printed, or its own words on failure.
async fn run(mut command: tokio::process::Command, name: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {name} (Debian's postgresql-client)"))?;
    if !output.status.success() {
        bail!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        let (url, password) =
            without_password("postgres://canvass:p%40ss%3Aword@db.example.org:5432/canvass")
                .unwrap();
        assert_eq!(url, "postgres://canvass@db.example.org:5432/canvass");
        assert_eq!(password.as_deref(), Some("p@ss:word"));
        let (url, password) = without_password("postgres://postgres@127.0.0.1/test").unwrap();
        assert_eq!(url, "postgres://postgres@127.0.0.1/test");
        assert_eq!(password, None);
        let (url, password) =
            without_password("postgres://u@h/db?password=S3cr3t&sslmode=require").unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=require");
        assert_eq!(password.as_deref(), Some("S3cr3t"));
    }
}
