//! The suppression journal: every erasure and suppression, also appended to a file kept outside
//! the database, so that no restore of the database (a backup put back, a file copied over it,
//! a `pg_restore`) brings an erased person back or mails someone who left.
//!
//! It holds what the suppression list holds and nothing more: the time, what happened and the
//! address's hash, one line each, never a name or an address:
//!
//! ```text
//! 2026-12-07T09:14:03.512077Z unsubscribed 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```
//!
//! A protective entry (an erasure, a suppression) is written and synced to disk before the
//! transaction that records it commits: a change the database holds is always in the journal.
//! A suppression lifted (a bounce found wrong, a confirmed sign-up) is written after its commit:
//! a lift the journal misses leaves the address suppressed, the safe way to be wrong.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{EmailHash, SuppressionReason};

/// The first line of every journal, saying what it is to whoever opens it.
const HEADER: &str = "# canvass suppression journal, version 1: time, what happened, the \
                      SHA-256 of the address. Keep it outside the database's backups.\n";

/// What happened to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalEvent {
    /// Put on the suppression list (for an erasure, with everything held on the person deleted).
    Suppressed(SuppressionReason),
    /// Taken off it: a bounce or complaint found wrong, or a confirmed sign-up.
    Lifted,
}

impl JournalEvent {
    fn as_str(self) -> &'static str {
        match self {
            Self::Suppressed(reason) => reason.as_str(),
            Self::Lifted => "lifted",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        match word {
            "lifted" => Some(Self::Lifted),
            reason => reason.parse().ok().map(Self::Suppressed),
        }
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub at: DateTime<Utc>,
    pub event: JournalEvent,
    pub hash: EmailHash,
}

impl JournalEntry {
    /// An address put on the suppression list.
    pub fn suppressed(at: DateTime<Utc>, reason: SuppressionReason, hash: EmailHash) -> Self {
        Self {
            at,
            event: JournalEvent::Suppressed(reason),
            hash,
        }
    }

    fn line(&self) -> String {
        format!(
            "{} {} {}\n",
            self.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            self.event.as_str(),
            self.hash.as_str()
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split(' ');
        let at = DateTime::parse_from_rfc3339(words.next()?).ok()?.to_utc();
        let event = JournalEvent::parse(words.next()?)?;
        let hash = words.next()?.parse().ok()?;
        words.next().is_none().then_some(Self { at, event, hash })
    }
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    /// Entries whose write failed, for changes that went ahead without it (a bounce recorded
    /// with the messages sent beside it): written before anything else, at the next write.
    held: Mutex<Vec<JournalEntry>>,
    /// Whether the last write failed (a full disk): the worker sends nothing meanwhile, and
    /// `/healthz` says so.
    broken: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("the suppression journal {}: {source}", path.display())]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl JournalError {
    /// Whether the journal file is not there.
    pub fn is_missing(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }
}

impl Journal {
    /// Opens the journal for appending; `create`: creating it (readable by its owner alone)
    /// when missing, else failing with [`JournalError::is_missing`].
    pub fn open(path: &Path, create: bool) -> Result<Self, JournalError> {
        let failed = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(create);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(failed)?;
        let metadata = file.metadata().map_err(failed)?;
        // A new file gets the header; a device (a test's /dev/full) does not.
        if metadata.is_file() && metadata.len() == 0 {
            file.lock().map_err(failed)?;
            // Another process may have written the header between the open and the lock.
            if file.metadata().map_err(failed)?.len() == 0 {
                file.write_all(HEADER.as_bytes()).map_err(failed)?;
                file.sync_all().map_err(failed)?;
                // The new file's name is durable only once its folder is.
                let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
                File::open(folder.unwrap_or(Path::new(".")))
                    .and_then(|dir| dir.sync_all())
                    .map_err(failed)?;
            }
            file.unlock().map_err(failed)?;
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            held: Mutex::default(),
            broken: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last write failed.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// Appends the entries (after any held ones) and syncs them to disk before returning. One
    /// write, under an exclusive lock of the file, so that the lines of processes sharing it
    /// never interleave; a line left torn by an earlier failed write is ended first, so that it
    /// never swallows the next entry.
    pub fn append(&self, entries: &[JournalEntry]) -> Result<(), JournalError> {
        let mut held = self
            .held
            .lock()
            .expect("the held entries are never left half-changed");
        if entries.is_empty() && held.is_empty() {
            return Ok(());
        }
        let text: String = held.iter().chain(entries).map(JournalEntry::line).collect();
        match self.write(&text) {
            Ok(()) => {
                held.clear();
                self.broken.store(false, Ordering::Relaxed);
                Ok(())
            }
            Err(source) => {
                self.broken.store(true, Ordering::Relaxed);
                Err(JournalError {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Appends the entries, or, when that fails, holds them to be written first at the next
    /// write: for changes that must go ahead without them (a bounce, recorded in the same
    /// transaction as the messages the server took).
    pub fn append_or_hold(&self, entries: &[JournalEntry]) {
        if let Err(error) = self.append(entries) {
            tracing::error!(
                "{error}; {} entries held until it can be written",
                entries.len()
            );
            self.held
                .lock()
                .expect("the held entries are never left half-changed")
                .extend_from_slice(entries);
        }
    }

    /// Tries the journal again after a failed write: the held entries, or an empty comment.
    pub fn probe(&self) -> bool {
        let nothing_held = self
            .held
            .lock()
            .expect("the held entries are never left half-changed")
            .is_empty();
        let tried = if nothing_held {
            self.write("#\n").map_err(|_| ())
        } else {
            self.append(&[]).map_err(|_| ())
        };
        self.broken.store(tried.is_err(), Ordering::Relaxed);
        tried.is_ok()
    }

    fn write(&self, text: &str) -> io::Result<()> {
        let file = self
            .file
            .lock()
            .expect("the journal is never left half-written");
        file.lock()?;
        let written = (|| {
            let mut text = std::borrow::Cow::Borrowed(text);
            let length = file.metadata()?.len();
            if length > 0 {
                let mut last = [0u8];
                std::os::unix::fs::FileExt::read_at(&*file, &mut last, length - 1)?;
                if last[0] != b'\n' {
                    text = format!("\n{text}").into();
                }
            }
            (&*file).write_all(text.as_bytes())?;
            file.sync_data()
        })();
        let unlocked = file.unlock();
        written.and(unlocked)
    }

    /// Reads every entry; a line that does not read as one (the last, torn by a crash mid-write)
    /// is counted and left out.
    pub fn read(path: &Path) -> Result<JournalRead, JournalError> {
        let failed = |source| JournalError {
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JournalRead::default()),
            opened => opened.map_err(failed)?,
        };
        let mut read = JournalRead::default();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(failed)?;
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            match JournalEntry::parse(&line) {
                Some(entry) => read.entries.push(entry),
                None => read.unreadable += 1,
            }
        }
        Ok(read)
    }
}

/// What a journal holds.
#[derive(Debug, Default)]
pub struct JournalRead {
    pub entries: Vec<JournalEntry>,
    /// Lines that read as no entry.
    pub unreadable: usize,
}

/// What the journal says must hold for one address, its entries taken in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Standing {
    /// The latest erasure: whatever was held on the address from before it must be gone.
    pub erased_at: Option<DateTime<Utc>>,
    /// The first lift after it (a confirmed sign-up): what was held from then on is the
    /// person's new record, whatever the erasure's time says (a clock that ran ahead).
    pub lifted_at: Option<DateTime<Utc>>,
    /// The suppression in force once every entry is taken, and since when: `None` after a lift.
    pub suppressed: Option<(SuppressionReason, DateTime<Utc>)>,
}

impl JournalRead {
    /// Each address's standing, as the entries leave it. An erasure is not undone by a lesser
    /// suppression, as in the database; only a lift (a confirmed sign-up) ends it.
    pub fn standings(&self) -> HashMap<EmailHash, Standing> {
        let mut standings: HashMap<EmailHash, Standing> = HashMap::new();
        for entry in &self.entries {
            let standing = standings.entry(entry.hash.clone()).or_default();
            match entry.event {
                JournalEvent::Lifted => {
                    standing.suppressed = None;
                    if standing.erased_at.is_some() && standing.lifted_at.is_none() {
                        standing.lifted_at = Some(entry.at);
                    }
                }
                JournalEvent::Suppressed(SuppressionReason::Erased) => {
                    standing.erased_at = standing.erased_at.max(Some(entry.at));
                    standing.lifted_at = None;
                    standing.suppressed = Some((SuppressionReason::Erased, entry.at));
                }
                JournalEvent::Suppressed(reason) => {
                    if !matches!(standing.suppressed, Some((SuppressionReason::Erased, _))) {
                        standing.suppressed = Some((reason, entry.at));
                    }
                }
            }
        }
        standings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

    fn entry(at: &str, event: JournalEvent, email: &str) -> JournalEntry {
        JournalEntry {
            at: at.parse().unwrap(),
            event,
            hash: Email::parse(email).unwrap().hash(),
        }
    }

    #[test]
    fn entries_read_back_as_written_and_a_torn_line_is_counted_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canvass.journal");
        let journal = Journal::open(&path, true).unwrap();
        let written = vec![
            entry(
                "2026-12-07T09:14:03.512077Z",
                JournalEvent::Suppressed(SuppressionReason::Erased),
                "jo@example.org",
            ),
            entry(
                "2026-12-07T09:15:00Z",
                JournalEvent::Lifted,
                "sam@example.org",
            ),
        ];
        journal.append(&written).unwrap();
        // A crash in the middle of a write leaves a line cut short.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2026-12-07T09:16:00Z unsubscribed 9f86d0")
            .unwrap();
        // The next entry is not swallowed by the torn line.
        let after = entry(
            "2026-12-07T09:17:00Z",
            JournalEvent::Suppressed(SuppressionReason::Complaint),
            "cara@example.org",
        );
        journal.append(std::slice::from_ref(&after)).unwrap();
        let read = Journal::read(&path).unwrap();
        assert_eq!(read.entries, [written, vec![after]].concat());
        assert_eq!(read.unreadable, 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# canvass suppression journal"), "{text}");
        assert!(!text.contains("example.org"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_journal_is_made_only_when_asked_and_a_failed_write_is_held_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canvass.journal");
        let missing = Journal::open(&path, false).unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        assert!(!path.exists());

        let full = Journal::open(Path::new("/dev/full"), false).unwrap();
        let bounced = entry(
            "2026-12-07T09:17:00Z",
            JournalEvent::Suppressed(SuppressionReason::Bounced),
            "dan@example.org",
        );
        full.append_or_hold(std::slice::from_ref(&bounced));
        assert!(full.is_broken());
        assert!(!full.probe());
        assert_eq!(*full.held.lock().unwrap(), [bounced]);
    }

    #[test]
    fn a_missing_journal_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let read = Journal::read(&dir.path().join("none")).unwrap();
        assert!(read.entries.is_empty() && read.unreadable == 0);
    }

    #[test]
    fn standings_keep_an_erasure_until_a_lift_and_its_time_for_ever() {
        let erased = JournalEvent::Suppressed(SuppressionReason::Erased);
        let bounced = JournalEvent::Suppressed(SuppressionReason::Bounced);
        let read = JournalRead {
            entries: vec![
                entry("2026-12-01T10:00:00Z", erased, "jo@example.org"),
                entry("2026-12-02T10:00:00Z", bounced, "jo@example.org"),
                entry("2026-12-01T10:00:00Z", bounced, "sam@example.org"),
                entry(
                    "2026-12-02T10:00:00Z",
                    JournalEvent::Lifted,
                    "sam@example.org",
                ),
                entry("2026-12-03T10:00:00Z", erased, "ann@example.org"),
                entry(
                    "2026-12-04T10:00:00Z",
                    JournalEvent::Lifted,
                    "ann@example.org",
                ),
            ],
            unreadable: 0,
        };
        let standings = read.standings();
        let of = |email: &str| standings[&Email::parse(email).unwrap().hash()].clone();
        assert_eq!(
            of("jo@example.org"),
            Standing {
                erased_at: Some("2026-12-01T10:00:00Z".parse().unwrap()),
                lifted_at: None,
                suppressed: Some((
                    SuppressionReason::Erased,
                    "2026-12-01T10:00:00Z".parse().unwrap()
                )),
            }
        );
        assert_eq!(of("sam@example.org"), Standing::default());
        // Signed up again after the erasure: not suppressed, but what was held before it is
        // still to be gone.
        assert_eq!(
            of("ann@example.org"),
            Standing {
                erased_at: Some("2026-12-03T10:00:00Z".parse().unwrap()),
                lifted_at: Some("2026-12-04T10:00:00Z".parse().unwrap()),
                suppressed: None,
            }
        );
    }
}
