//! The database as the operator keeps it: opened with its suppression journal, migrated, backed
//! up and restored, with the journal re-applied after anything that could have lost an erasure.
//! The command line and the demo start the [`App`] here; nothing else opens a database.
//!
//! - [`backup`]: the copy itself (SQLite's `VACUUM INTO`, `pg_dump`) and its restore.

mod backup;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::app::App;
use crate::config::Config;
use crate::domain::Publisher;
use crate::store::{DatabaseUrl, Journal, JournalStart, Migrated, Replayed, Store};

/// Whether a command may create a missing SQLite database: only `migrate` does (and `demo`, in
/// a folder of its own), so that a command run from the wrong folder says so rather than start
/// an empty database there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    IfMissing,
    No,
}

/// Connects to the database.
async fn connect(config: &Config, create: Create) -> anyhow::Result<Store> {
    if let (Create::No, Some(file)) = (create, config.database_url.sqlite_file())
        && !file.exists()
    {
        bail!(
            "there is no database at {}: run `canvass migrate` to create one there, or point \
             CANVASS_DATABASE_URL (or --config) at the database in use",
            std::path::absolute(&file).unwrap_or(file).display()
        );
    }
    Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", config.database_url))
}

/// The store writing every erasure and suppression to the journal too, when one is set.
async fn with_journal(store: Store, config: &Config, start: JournalStart) -> anyhow::Result<Store> {
    Ok(match &config.journal {
        Some(path) => store.with_journal_at(path, start).await?,
        None => store,
    })
}

/// Connects to a database whose schema is up to date, with its journal.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = connect(config, Create::No).await?;
    store.check_schema().await?;
    with_journal(store, config, JournalStart::Never).await
}

/// The application over a database whose schema is up to date, as the settings make it.
pub async fn open(config: &Config) -> anyhow::Result<App> {
    Ok(application(config, open_store(config).await?))
}

/// Creates (or opens) the SQLite or PostgreSQL database at `url` with its suppression journal
/// at `journal`, brings its schema up to date and re-applies what the journal holds, as
/// `canvass migrate` does: the application over it, for `publisher`, its links under
/// `base_url`. The demo's way in, which has no settings file.
pub async fn open_migrated(
    url: &str,
    journal: &Path,
    publisher: Publisher,
    base_url: &str,
) -> anyhow::Result<App> {
    let url: DatabaseUrl = url.parse()?;
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening {url}"))?;
    store.migrate().await.context("migrating the database")?;
    let store = store.with_journal_at(journal, JournalStart::IfNew).await?;
    let app = App::new(store, publisher, base_url);
    replay(&app).await?;
    Ok(app)
}

/// The application over `store`, as the settings make it.
fn application(config: &Config, store: Store) -> App {
    App::new(store, config.publisher.clone(), &config.base_url)
        .with_sender_domains(config.sender_domains.clone())
        .with_approval(config.require_approval)
        .with_remote_images(config.remote_images)
        .with_data_protection(config.data_protection.clone())
}

/// Creates the database if it is missing and brings its schema up to date, starting the
/// journal afresh when `new_journal` (the old one lost for good), then re-applies what the
/// journal holds that the database lacks. What was migrated.
pub async fn migrate(config: &Config, new_journal: bool) -> anyhow::Result<Migrated> {
    let store = connect(config, Create::IfMissing).await?;
    let migrated = store.migrate().await.context("migrating the database")?;
    let start = if new_journal {
        JournalStart::Anew
    } else {
        JournalStart::IfNew
    };
    let store = with_journal(store, config, start).await?;
    replay(&application(config, store)).await?;
    Ok(migrated)
}

/// A backup written.
pub struct BackedUp {
    /// Its size in bytes.
    pub bytes: u64,
    /// The suppression journal, which the backup does not hold, when one is set.
    pub journal: Option<PathBuf>,
}

/// Writes a consistent copy of the database to `dest`, a file that must not exist yet.
pub async fn back_up(config: &Config, dest: &Path) -> anyhow::Result<BackedUp> {
    let store = open_store(config).await?;
    let bytes = backup::backup(&store, &config.database_url, dest).await?;
    Ok(BackedUp {
        bytes,
        journal: store.journal().map(|journal| journal.path().to_owned()),
    })
}

/// A backup put back.
pub struct Restored {
    pub migrated: Migrated,
    /// What the journal re-applied.
    pub replayed: Replayed,
    /// The journal it was re-applied from; `None`: none is set.
    pub journal: Option<PathBuf>,
}

/// Puts the backup `src` in place of the database, brings its schema up to date and
/// re-applies the erasures and suppressions recorded since. The journal is checked first: a
/// restore without it would bring back everyone erased since the backup.
pub async fn restore(config: &Config, src: &Path) -> anyhow::Result<Restored> {
    if let Some(path) = &config.journal {
        Journal::open(path, false).map_err(|e| {
            if e.is_missing() {
                anyhow::anyhow!(
                    "there is no suppression journal at {}: copy it back from where it is kept \
                 before restoring, or the erasures and unsubscribes made since the backup come \
                 back with it",
                    path.display()
                )
            } else {
                e.into()
            }
        })?;
    }
    backup::restore(&config.database_url, src).await?;
    let store = connect(config, Create::No).await?;
    let migrated = store.migrate().await.context("migrating the database")?;
    let store = with_journal(store, config, JournalStart::IfNew).await?;
    let replayed = store.replay_journal().await?;
    Ok(Restored {
        migrated,
        replayed,
        journal: store.journal().map(|journal| journal.path().to_owned()),
    })
}

/// Re-applies what the journal holds that the database lacks (a database restored by hand), and
/// says so when there was any.
pub async fn replay(app: &App) -> anyhow::Result<()> {
    let replayed = app
        .store
        .replay_journal()
        .await
        .context("re-applying the suppression journal")?;
    if !replayed.is_empty() {
        tracing::warn!(
            "the database lacked {} erasures and {} suppressions that the suppression journal \
             holds (was it restored from a backup?): re-applied them",
            replayed.erasures,
            replayed.suppressions
        );
    }
    Ok(())
}
