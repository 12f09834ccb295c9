//! `canvass contacts import`: the contacts list, with the consents each person gave.

use super::{
    Batch, CsvFile, Header, ImportError, ImportReport, Parser, Rejection, check_width, field,
    line_of, open_csv,
};
use crate::domain::{AGE_OF_CONSENT, ContactDraft, ContactRules, NewContact, Scope};
use crate::store::{ContactImportOutcome, Store, WithheldGrant};

/// Rows the parser hands over at a time (the store stages them, and applies many such batches
/// in one transaction).
const BATCH_ROWS: usize = 2_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContactsImportSummary {
    pub imported: u64,
    /// People held before whose details or consents the file changed.
    pub updated: u64,
    /// People held before whom the file changed in nothing.
    pub unchanged: u64,
    pub rejected: u64,
    pub consents_recorded: u64,
    /// Grants rows asked for that an earlier withdrawal kept out (the rows were saved).
    pub withheld: u64,
}

impl std::fmt::Display for ContactsImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "imported {}, updated {}", self.imported, self.updated)?;
        if self.unchanged > 0 {
            write!(f, ", unchanged {}", self.unchanged)?;
        }
        write!(f, ", rejected {}", self.rejected)
    }
}

/// The positions of the columns canvass reads.
struct Columns {
    email: usize,
    name: Option<usize>,
    /// Used when there is no `name` column: the two are joined.
    first_name: Option<usize>,
    last_name: Option<usize>,
    postcode: Option<usize>,
    date_of_birth: Option<usize>,
    guardian_consent: Option<usize>,
    guardian_name: Option<usize>,
    guardian_relationship: Option<usize>,
    guardian_consent_at: Option<usize>,
    guardian_method: Option<usize>,
    topics: Option<usize>,
    consent_at: Option<usize>,
    consent_source: Option<usize>,
}

const KNOWN_COLUMNS: &[&str] = &[
    "email",
    "name",
    "first_name",
    "last_name",
    "postcode",
    "date_of_birth",
    "guardian_consent",
    "guardian_name",
    "guardian_relationship",
    "guardian_consent_at",
    "guardian_method",
    "topics",
    "consent_at",
    "consent_source",
];

/// What the parsing thread hands to the writer.
#[derive(Default)]
struct Parsed {
    rows: Vec<NewContact>,
    /// The line of each row in `rows`.
    lines: Vec<u64>,
    rejections: Vec<Rejection>,
}

/// Imports a contacts CSV, each row checked against `rules` as any contact is; their default
/// source names where the list came from, and is the consent source of rows without a
/// `consent_source` of their own.
pub async fn import_contacts(
    store: &Store,
    file: CsvFile,
    rules: ContactRules,
    scope: &Scope,
    report: &mut dyn ImportReport,
) -> Result<ContactsImportSummary, ImportError> {
    let (mut reader, size, file) = open_csv(file)?;
    let header = Header::read(&mut reader, &file)?;
    let columns = Columns::find(&header).ok_or_else(|| ImportError::MissingColumn {
        file: file.clone(),
        wanted: "email".into(),
    })?;
    for unknown in header
        .0
        .iter()
        .filter(|h| !KNOWN_COLUMNS.contains(&h.as_str()))
    {
        report.note(&format!("ignoring column '{unknown}'"));
    }
    report.started(size);
    let source = rules.default_source.clone();

    let mut parser = Parser::spawn(reader, move |batch: &mut Parsed, record| {
        let line = line_of(record);
        match parse_row(record, &header, &columns, &rules) {
            Ok(contact) => {
                batch.rows.push(contact);
                batch.lines.push(line);
            }
            Err(reason) => batch.rejections.push(Rejection { line, reason }),
        }
    });

    let mut summary = ContactsImportSummary::default();
    let mut import = store.contact_import(&source).await?;
    while let Some((mut batch, bytes_read)) = parser.next().await {
        // Rows outside the importer's constituencies are refused, before anything is written.
        let outside = store.outside_scope(&batch.rows, scope).await?;
        for &(i, reason) in outside.iter().rev() {
            batch.rows.remove(i);
            let line = batch.lines.remove(i);
            batch.rejections.push(Rejection {
                line,
                reason: reason.message().into(),
            });
        }
        let outcome = import.add(&batch.rows, &batch.lines).await?;
        summary.count(&outcome, &mut batch.rejections);
        summary.report(batch.rejections, &outcome.withheld, report);
        report.advanced(bytes_read);
    }
    let mut refused = Vec::new();
    let outcome = import.finish().await?;
    summary.count(&outcome, &mut refused);
    summary.report(refused, &outcome.withheld, report);
    parser.finish(&file).await?;
    Ok(summary)
}

impl ContactsImportSummary {
    /// Adds what applying rows did, and its refusals to `rejections`.
    fn count(&mut self, outcome: &ContactImportOutcome, rejections: &mut Vec<Rejection>) {
        self.imported += outcome.inserted;
        self.updated += outcome.updated;
        self.unchanged += outcome.unchanged;
        self.consents_recorded += outcome.consents_recorded;
        rejections.extend(outcome.refused_erased.iter().map(|&line| Rejection {
            line,
            reason: "the person asked to be erased; not imported".into(),
        }));
        rejections.extend(outcome.refused_underage.iter().map(|&line| Rejection {
            line,
            reason: format!(
                "under {AGE_OF_CONSENT} and no guardian's consent with who gave it \
                 (guardian_consent true, guardian_name, guardian_relationship): not stored. To \
                 record that a guardian withdrew their consent, erase the child"
            ),
        }));
    }

    /// Reports `rejections` (and counts them) and the grants `withheld` from rows that were
    /// saved, in the order of their lines.
    fn report(
        &mut self,
        rejections: Vec<Rejection>,
        withheld: &[WithheldGrant],
        report: &mut dyn ImportReport,
    ) {
        self.rejected += rejections.len() as u64;
        self.withheld += withheld.len() as u64;
        let mut lines: Vec<(u64, Result<Rejection, String>)> = rejections
            .into_iter()
            .map(|rejection| (rejection.line, Ok(rejection)))
            .chain(
                withheld
                    .iter()
                    .map(|grant| (grant.key, Err(format!("line {}: {grant}", grant.key)))),
            )
            .collect();
        lines.sort_by_key(|(line, _)| *line);
        for (_, line) in lines {
            match line {
                Ok(rejection) => report.rejected(&rejection),
                Err(note) => report.note(&note),
            }
        }
    }
}

impl Batch for Parsed {
    fn is_full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS
    }
}

impl Columns {
    fn find(header: &Header) -> Option<Self> {
        let named = |name: &str| header.find(|h| h == name);
        Some(Self {
            email: named("email")?,
            name: named("name"),
            first_name: named("first_name"),
            last_name: named("last_name"),
            postcode: named("postcode"),
            date_of_birth: named("date_of_birth"),
            guardian_consent: named("guardian_consent"),
            guardian_name: named("guardian_name"),
            guardian_relationship: named("guardian_relationship"),
            guardian_consent_at: named("guardian_consent_at"),
            guardian_method: named("guardian_method"),
            topics: named("topics"),
            consent_at: named("consent_at"),
            consent_source: named("consent_source"),
        })
    }
}

fn parse_row(
    record: &csv::ByteRecord,
    header: &Header,
    columns: &Columns,
    rules: &ContactRules,
) -> Result<NewContact, String> {
    check_width(record, header)?;
    let joined;
    let name = match columns.name {
        Some(_) => field(record, columns.name)?,
        None => {
            let first = field(record, columns.first_name)?;
            let last = field(record, columns.last_name)?;
            joined = format!("{first} {last}");
            &joined
        }
    };
    let guardian_consent = match field(record, columns.guardian_consent)? {
        "" => None,
        text => Some(parse_bool(text).ok_or_else(|| {
            let text: String = text.chars().take(40).collect();
            format!("invalid guardian_consent: '{text}' is neither true nor false")
        })?),
    };
    let draft = ContactDraft {
        email: field(record, Some(columns.email))?,
        name,
        postcode: field(record, columns.postcode)?,
        date_of_birth: field(record, columns.date_of_birth)?,
        guardian_consent,
        guardian_name: field(record, columns.guardian_name)?,
        guardian_relationship: field(record, columns.guardian_relationship)?,
        guardian_consent_at: field(record, columns.guardian_consent_at)?,
        guardian_method: field(record, columns.guardian_method)?,
        topics: field(record, columns.topics)?.split(';').collect(),
        consent_at: field(record, columns.consent_at)?,
        source: field(record, columns.consent_source)?,
    };
    draft
        .parse(rules)
        .map_err(|e| format!("invalid {}: {}", e.field, e.message))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}
