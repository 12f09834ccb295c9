//! Bulk imports from CSV files: the contacts list and the ONS postcode directory.
//!
//! Both stream: a blocking thread reads and parses the file into batches while the store writes
//! the previous batch, with a bounded channel between them, so memory stays flat whatever the
//! file's size. Bad rows are reported by line number and the good ones are imported.

mod contacts;
mod directory;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use contacts::{ContactsImportSummary, import_contacts};

pub use directory::{DirectoryImportSummary, import_directory};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::StoreError;

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    #[error("cannot read {file}: {source}")]
    Open {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {source}")]
    Csv { file: String, source: csv::Error },
    #[error("{file}: the header has no {wanted} column")]
    MissingColumn { file: String, wanted: String },
    #[error("{0}: no postcodes found; the directory is unchanged")]
    EmptyDirectory(String),
    #[error(
        "{file}: {rejected} of {rows} rows were refused, over 1%; the directory is unchanged. \
         Correct the file, or pass --force to load the rows that were read"
    )]
    TooManyRejected {
        file: String,
        rejected: u64,
        rows: u64,
    },
    #[error(
        "{file}: {lost} contacts whose postcode the current directory places would have no \
         constituency with this one, and constituency campaigns would skip them; the directory \
         is unchanged. Pass --force to replace it anyway"
    )]
    WouldLoseContacts { file: String, lost: u64 },
    #[error(
        "{file}: the row at line {line} runs on for over {MAX_RECORD_BYTES} bytes: is a closing \
         quote missing? Nothing from line {line} on was imported"
    )]
    RunawayRecord { file: String, line: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The header of a CSV file, with names compared case-insensitively.
struct Header(Vec<String>);

impl Header {
    fn read(reader: &mut CsvReader, file: &str) -> Result<Self, ImportError> {
        let names = reader.byte_headers().map_err(|source| ImportError::Csv {
            file: file.to_owned(),
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

/// The most one row may take: far more than any honest row, and a bound on a quote left open,
/// which would otherwise read the rest of the file into one field.
const MAX_RECORD_BYTES: u64 = 1 << 20;
/// The most one cell may hold.
const MAX_FIELD_BYTES: usize = 1000;
/// The CSV reader's buffer: it reads this far ahead of the row it is on.
const READ_AHEAD: usize = 1 << 20;

type CsvReader = csv::Reader<Guarded<Box<dyn Read + Send>>>;

/// A CSV file to import: one on disk, or one uploaded through a page.
pub struct CsvFile {
    /// How messages name it: its path, or the uploaded file's name.
    pub name: String,
    reader: Box<dyn Read + Send>,
    /// Its size in bytes, for progress; 0 when unknown.
    size: u64,
}

impl CsvFile {
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let open_error = |source| ImportError::Open {
            file: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(open_error)?;
        let size = file.metadata().map_err(open_error)?.len();
        Ok(Self::from_reader(path.display().to_string(), file, size))
    }

    /// Any reader, such as an upload's body; `size` 0 when unknown.
    pub fn from_reader(
        name: impl Into<String>,
        reader: impl Read + Send + 'static,
        size: u64,
    ) -> Self {
        Self {
            name: name.into(),
            reader: Box::new(reader),
            size,
        }
    }
}

/// Opens a CSV file for streaming, with its size for the progress report and its name. The delimiter is a
/// comma, or a semicolon when the header has semicolons and no commas (Excel's CSV where the
/// decimal separator is a comma).
fn open_csv(file: CsvFile) -> Result<(CsvReader, u64, String), ImportError> {
    let CsvFile {
        name,
        mut reader,
        size,
    } = file;
    let mut start = Vec::new();
    (&mut reader)
        .take(64 * 1024)
        .read_to_end(&mut start)
        .map_err(|source| ImportError::Open {
            file: name.clone(),
            source,
        })?;
    let header = start.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |byte: u8| header.iter().filter(|&&b| b == byte).count();
    let delimiter = match (count(b','), count(b';')) {
        (0, semicolons) if semicolons > 0 => b';',
        _ => b',',
    };
    let reader = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .buffer_capacity(READ_AHEAD)
        .from_reader(Guarded::new(
            Box::new(std::io::Cursor::new(start).chain(reader)) as Box<dyn Read + Send>,
        ));
    Ok((reader, size, name))
}

/// The file as the CSV reader sees it, every line ending a line feed: a carriage return before
/// a line feed is dropped and one alone becomes a line feed, so that Excel's CRLF (and old Mac
/// CR) files count their lines as the user does (the csv crate numbers CRLF lines wrongly), and reading fails once a row has run on for [`MAX_RECORD_BYTES`] past the end of
/// the last one (`row_ended`, which the parser moves on after each row).
struct Guarded<R> {
    inner: R,
    /// A carriage return held back until the next byte shows whether a line feed follows.
    pending_cr: bool,
    /// Bytes read and cleaned, not yet handed over, from `ready_from` on.
    ready: Vec<u8>,
    ready_from: usize,
    /// Bytes handed to the CSV reader so far.
    delivered: u64,
    row_ended: Arc<AtomicU64>,
}

impl<R> Guarded<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            pending_cr: false,
            ready: Vec::new(),
            ready_from: 0,
            delivered: 0,
            row_ended: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<R: Read> Guarded<R> {
    /// Reads the next piece of the file into `ready`, carriage returns before line feeds
    /// dropped; nothing at the end of the file.
    fn refill(&mut self) -> std::io::Result<()> {
        let mut raw = vec![0; 64 * 1024];
        let read = self.inner.read(&mut raw)?;
        self.ready.clear();
        self.ready_from = 0;
        if read == 0 && std::mem::take(&mut self.pending_cr) {
            self.ready.push(b'\n');
        }
        raw.truncate(read);
        for &byte in &raw {
            // A carriage return alone ends a line too (Excel's "CSV (Macintosh)").
            if std::mem::take(&mut self.pending_cr) && byte != b'\n' {
                self.ready.push(b'\n');
            }
            match byte {
                b'\r' => self.pending_cr = true,
                _ => self.ready.push(byte),
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let ahead = self
            .delivered
            .saturating_sub(self.row_ended.load(Ordering::Relaxed));
        if ahead > MAX_RECORD_BYTES + READ_AHEAD as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                RunawayRow,
            ));
        }
        while self.ready_from == self.ready.len() {
            self.refill()?;
            // Nothing, and nothing held back: the end. (A piece that was only a carriage
            // return, held back, cleans down to nothing without being the end.)
            if self.ready.is_empty() && !self.pending_cr {
                return Ok(0);
            }
        }
        let available = &self.ready[self.ready_from..];
        let taken = available.len().min(out.len());
        out[..taken].copy_from_slice(&available[..taken]);
        self.ready_from += taken;
        self.delivered += taken as u64;
        Ok(taken)
    }
}

/// The read error [`Guarded`] gives for a runaway row.
#[derive(Debug, thiserror::Error)]
#[error("a row ran on past the limit")]
struct RunawayRow;

/// The text of one field; a missing or empty cell is `""`.
fn field(record: &csv::ByteRecord, column: Option<usize>) -> Result<&str, String> {
    match column.and_then(|i| record.get(i)) {
        None => Ok(""),
        Some(bytes) if bytes.len() > MAX_FIELD_BYTES => Err(format!(
            "a cell of {} bytes; at most {MAX_FIELD_BYTES} are taken",
            bytes.len()
        )),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| "not valid UTF-8".to_owned()),
    }
}

/// Checks that a row has as many fields as the header. A row short of fields with a cell that
/// runs over several lines is a quote left open, which took the lines after it into one cell
/// (a cell of several lines in a row of the right width is Excel's Alt+Enter, and fine).
fn check_width(record: &csv::ByteRecord, header: &Header) -> Result<(), String> {
    if record.len() != header.len() && record.iter().any(|cell| cell.contains(&b'\n')) {
        return Err(
            "a quote opened on this line is not closed at its end, so the lines after it were \
             read into one cell; close the quote and import the file again"
                .into(),
        );
    }
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
    /// The line the row being read starts on.
    next_line: Arc<AtomicU64>,
}

impl<B: Batch> Parser<B> {
    fn spawn(
        mut reader: CsvReader,
        mut parse: impl FnMut(&mut B, &csv::ByteRecord) + Send + 'static,
    ) -> Self {
        let (sender, batches) = mpsc::channel(2);
        let row_ended = reader.get_ref().row_ended.clone();
        let next_line = Arc::new(AtomicU64::new(reader.position().line()));
        let next = next_line.clone();
        let thread = tokio::task::spawn_blocking(move || {
            let mut record = csv::ByteRecord::new();
            let mut batch = B::default();
            row_ended.store(reader.position().byte(), Ordering::Relaxed);
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(error) => {
                        // The rows read before it are imported all the same.
                        let _ = sender.blocking_send((batch, reader.position().byte()));
                        return Err(error);
                    }
                }
                row_ended.store(reader.position().byte(), Ordering::Relaxed);
                next.store(reader.position().line(), Ordering::Relaxed);
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
        Self {
            batches,
            thread,
            next_line,
        }
    }

    async fn next(&mut self) -> Option<(B, u64)> {
        self.batches.recv().await
    }

    /// Waits for the thread, and reports a read error it met (a file that is not CSV at all).
    async fn finish(self, file: &str) -> Result<(), ImportError> {
        drop(self.batches);
        let read = self.thread.await.expect("the CSV parser does not panic");
        read.map_err(|source| {
            let runaway = matches!(source.kind(), csv::ErrorKind::Io(e)
                if e.get_ref().is_some_and(|inner| inner.is::<RunawayRow>()));
            if runaway {
                ImportError::RunawayRecord {
                    file: file.to_owned(),
                    line: self.next_line.load(Ordering::Relaxed),
                }
            } else {
                ImportError::Csv {
                    file: file.to_owned(),
                    source,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything read through a `Guarded`, in reads of `size` bytes.
    fn through(input: &[u8], size: usize) -> Vec<u8> {
        let mut guarded = Guarded::new(input);
        let mut out = Vec::new();
        let mut buffer = vec![0; size];
        loop {
            let read = guarded.read(&mut buffer).unwrap();
            if read == 0 {
                return out;
            }
            out.extend_from_slice(&buffer[..read]);
        }
    }

    #[test]
    fn every_line_ends_with_a_line_feed() {
        let input = b"a,b\r\nc,d\re\r\n\r\nlast\r";
        for size in [1, 2, 3, 7, 4096] {
            assert_eq!(
                through(input, size),
                b"a,b\nc,d\ne\n\nlast\n",
                "reads of {size}"
            );
        }
        assert_eq!(through(b"", 8), b"");
        assert_eq!(through(b"\r", 1), b"\n");
    }
}
