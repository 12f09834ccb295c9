//! Bulk imports as jobs: the contacts list and the postcode directory, read from any reader (a
//! file on disk, a file uploaded through a page), telling their progress as they go.

use super::{Actor, App, AppError, Result, contacts};
use crate::domain::{AuditAction, parse_source};
use crate::import;

pub use crate::import::{
    ContactsImportSummary, CsvFile, DirectoryImportSummary, ImportError, ImportReport, Rejection,
};

/// What an import tells as it goes: for a progress bar, a page's or a terminal's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportEvent {
    /// The file is open; its size (0 when unknown).
    Started {
        total_bytes: u64,
    },
    /// How far into the file the import has got.
    Advanced {
        bytes_read: u64,
    },
    Rejected(Rejection),
    /// Something worth knowing that is not about one row.
    Note(String),
}

/// Sends each event to whoever shows them; an import goes on when nobody listens any more.
impl ImportReport for tokio::sync::mpsc::UnboundedSender<ImportEvent> {
    fn started(&mut self, total_bytes: u64) {
        let _ = self.send(ImportEvent::Started { total_bytes });
    }

    fn advanced(&mut self, bytes_read: u64) {
        let _ = self.send(ImportEvent::Advanced { bytes_read });
    }

    fn rejected(&mut self, rejection: &Rejection) {
        let _ = self.send(ImportEvent::Rejected(rejection.clone()));
    }

    fn note(&mut self, message: &str) {
        let _ = self.send(ImportEvent::Note(message.to_owned()));
    }
}

/// Imports or updates contacts from a CSV file; `source` names where the list came from, and
/// is the consent source of rows that give none; `consented`, when the people on it agreed
/// (the date the list was made), is the consent time of rows that give none (else now: an old
/// list given no date would outrank a withdrawal made since). Each row is checked as any contact is, and a
/// member of staff kept to some constituencies imports only rows within them.
pub async fn contacts(
    app: &App,
    actor: &Actor,
    file: CsvFile,
    source: &str,
    consented: Option<&str>,
    report: &mut dyn ImportReport,
) -> Result<ContactsImportSummary> {
    super::may_write(actor)?;
    let source = parse_source(source)
        .map_err(|e| AppError::invalid("source", format!("where the list came from: {e}")))?;
    let mut rules = contacts::rules(app, source).await?;
    if let Some(consented) = consented {
        rules = rules
            .consented_at(consented)
            .map_err(|e| AppError::invalid(e.field, e.message))?;
    }
    let name = file.name.clone();
    let summary = import::import_contacts(&app.store, file, rules, actor.scope(), report).await?;
    app.store
        .record_audit(
            actor,
            AuditAction::ContactsImported,
            &format!("{name} ({source}): {summary}"),
        )
        .await?;
    Ok(summary)
}

/// Replaces the postcode directory from an ONSPD/NSPL file or a plain one; refused, keeping the
/// old directory, when over 1% of rows are refused or contacts would lose their constituency,
/// unless `force`.
pub async fn directory(
    app: &App,
    actor: &Actor,
    file: CsvFile,
    force: bool,
    report: &mut dyn ImportReport,
) -> Result<DirectoryImportSummary> {
    super::must_be_admin(actor)?;
    Ok(import::import_directory(&app.store, file, force, actor, report).await?)
}
