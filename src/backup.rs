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
pub async fn backup(store: &Store, url: &DatabaseUrl, dest: &Path) -> anyhow::Result<u64> {
    if dest.exists() {
        bail!("{} exists already: name a new file", dest.display());
    }
    match url {
        DatabaseUrl::Sqlite(_) => {
            store
                .vacuum_into(dest)
                .await
                .with_context(|| format!("copying the database into {}", dest.display()))?;
        }
        DatabaseUrl::Postgres(url) => {
            let (url, password) = without_password(url)?;
            let mut dump = tokio::process::Command::new("pg_dump");
            dump.args(["--format=custom", "--no-password", "--file"])
                .arg(dest)
                .arg("--dbname")
                .arg(url);
            if let Some(password) = password {
                dump.env("PGPASSWORD", password);
            }
            run(dump, "pg_dump").await?;
        }
    }
    // The copy holds personal data: its owner's alone, and on disk before it is reported done.
    let file = std::fs::File::open(dest)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Puts the backup `src` in place of the database. The service and the worker must be stopped:
/// they would go on with the database they had open. Nothing changes unless `src` is a backup
/// of a canvass database. The journal is replayed afterwards, by whoever opens the store.
pub async fn restore(url: &DatabaseUrl, src: &Path) -> anyhow::Result<()> {
    if !src.is_file() {
        bail!("{} is not a file", src.display());
    }
    match url {
        DatabaseUrl::Sqlite(_) => {
            let Some(target) = url.sqlite_file() else {
                bail!("the database is in memory: there is nothing to restore into");
            };
            check_sqlite_backup(src).await?;
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
            let (url, password) = without_password(url)?;
            let mut restore = tokio::process::Command::new("pg_restore");
            restore
                .args([
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-password",
                    "--dbname",
                ])
                .arg(url)
                .arg(src);
            if let Some(password) = password {
                restore.env("PGPASSWORD", password);
            }
            run(restore, "pg_restore").await?;
        }
    }
    Ok(())
}

/// Whether `src` is an SQLite database, whole, that canvass made.
async fn check_sqlite_backup(src: &Path) -> anyhow::Result<()> {
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
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut connection)
        .await
        .with_context(not_a_backup)?;
    Ok(())
}

/// The URL with its password taken out, and the password: given to the PostgreSQL tools in
/// their environment, never on a command line that every user of the machine can read.
fn without_password(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut parsed = url::Url::parse(url).context("reading the database URL")?;
    let password = parsed.password().map(|encoded| {
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = parsed.set_password(None);
    Ok((parsed.to_string(), password))
}

/// Runs a PostgreSQL tool; its own words on failure.
async fn run(mut command: tokio::process::Command, name: &str) -> anyhow::Result<()> {
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
    Ok(())
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
    }
}
