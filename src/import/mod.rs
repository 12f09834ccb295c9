//! Bulk imports from CSV files: the contacts list and the ONS postcode directory.
//!
//! Both stream: a blocking thread reads and parses the file into batches while the store writes
//! the previous batch, with a bounded channel between them, so memory stays flat whatever the
//! file's size. Bad rows are reported by line number and the good ones are imported.

mod contacts;
mod directory;

use std::path::{Path, PathBuf};

pub use contacts::{ContactsImportSummary, import_contacts};
pub use directory::{DirectoryImportSummary, import_directory};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    pub reason: String,
}

/// Where an import tells what it is doing, for a progress bar or plain lines.
pub trait ImportReport: Send {
    /// The file's size, once it is open.
    fn started(&mut self, total_bytes: u64);
    /// How far into the file the import has got.
    fn advanced(&mut self, bytes_read: u64);
    fn rejected(&mut self, rejection: &Rejection);
    /// Something worth knowing that is not about one row.
    fn note(&mut self, message: &str);
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: the header has no {wanted} column")]
    MissingColumn { path: PathBuf, wanted: String },
    #[error("{0}: no postcodes found; the directory is unchanged")]
    EmptyDirectory(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The header of a CSV file, with names compared case-insensitively.
struct Header(Vec<String>);

impl Header {
    fn read(reader: &mut csv::Reader<std::fs::File>, path: &Path) -> Result<Self, ImportError> {
        let names = reader.byte_headers().map_err(|source| ImportError::Csv {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self(
            names
                .iter()
                .map(|name| {
                    String::from_utf8_lossy(name)
                        .trim_start_matches('\u{feff}')
                        .trim()
                        .to_ascii_lowercase()
                })
                .collect(),
        ))
    }

    /// The position of the first column whose name satisfies `wanted`.
    fn find(&self, wanted: impl Fn(&str) -> bool) -> Option<usize> {
        self.0.iter().position(|name| wanted(name))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Opens a CSV file for streaming, with its size for the progress report.
fn open_csv(path: &Path) -> Result<(csv::Reader<std::fs::File>, u64), ImportError> {
    let open_error = |source| ImportError::Open {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_error)?;
    let size = file.metadata().map_err(open_error)?.len();
    let reader = csv::ReaderBuilder::new()
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(file);
    Ok((reader, size))
}

/// The text of one field; a missing or empty cell is `""`.
fn field(record: &csv::ByteRecord, column: Option<usize>) -> Result<&str, String> {
    match column.and_then(|i| record.get(i)) {
        None => Ok(""),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| "not valid UTF-8".to_owned()),
    }
}

/// Checks that a row has as many fields as the header.
fn check_width(record: &csv::ByteRecord, header: &Header) -> Result<(), String> {
    if record.len() == header.len() {
        Ok(())
    } else {
        Err(format!(
            "has {} fields, the header has {}",
            record.len(),
            header.len()
        ))
    }
}

/// The line a record starts on.
fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

/// What a parser thread collects between two hand-overs to the writer.
trait Batch: Default + Send + 'static {
    /// Whether it is time to hand this batch over.
    fn is_full(&self) -> bool;
}

/// The parser's side of an import: reads `reader` on a blocking thread and hands over batches,
/// each with how far into the file it reaches, through a channel of two, so that at most a few
/// batches are in memory however long the file is.
struct Parser<B> {
    batches: mpsc::Receiver<(B, u64)>,
    thread: JoinHandle<Result<(), csv::Error>>,
}

impl<B: Batch> Parser<B> {
    fn spawn(
        mut reader: csv::Reader<std::fs::File>,
        mut parse: impl FnMut(&mut B, &csv::ByteRecord) + Send + 'static,
    ) -> Self {
        let (sender, batches) = mpsc::channel(2);
        let thread = tokio::task::spawn_blocking(move || {
            let mut record = csv::ByteRecord::new();
            let mut batch = B::default();
            while reader.read_byte_record(&mut record)? {
                parse(&mut batch, &record);
                if batch.is_full() {
                    let full = std::mem::take(&mut batch);
                    if sender
                        .blocking_send((full, reader.position().byte()))
                        .is_err()
                    {
                        // The writer stopped on an error of its own, which it reports.
                        return Ok(());
                    }
                }
            }
            let _ = sender.blocking_send((batch, reader.position().byte()));
            Ok(())
        });
        Self { batches, thread }
    }

    async fn next(&mut self) -> Option<(B, u64)> {
        self.batches.recv().await
    }

    /// Waits for the thread, and reports a read error it met (a file that is not CSV at all).
    async fn finish(self, path: &Path) -> Result<(), ImportError> {
        drop(self.batches);
        self.thread
            .await
            .expect("the CSV parser does not panic")
            .map_err(|source| ImportError::Csv {
                path: path.to_owned(),
                source,
            })
    }
}
