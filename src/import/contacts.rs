//! `canvass contacts import`: the contacts list, with the consents each person gave.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, SubsecRound, Utc};

use super::{
    Batch, Header, ImportError, ImportReport, Parser, Rejection, check_width, field, line_of,
    open_csv,
};
use crate::domain::{Email, Name, NewContact, Postcode, TopicSlug};
use crate::store::{Store, now};

/// Rows written to the store in one transaction.
const BATCH_ROWS: usize = 10_000;

/// New contacts after which the planner's statistics are first refreshed; then each time the
/// count doubles, so that a bulk load is planned for the tables it is making.
const STATISTICS_REFRESH_FIRST: u64 = 20_000;

/// How far in the future a consent time may lie before it is taken for a mistake: clocks differ.
const CLOCK_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContactsImportSummary {
    pub imported: u64,
    pub updated: u64,
    pub rejected: u64,
    pub consents_recorded: u64,
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

/// What a row is checked against.
struct RowRules {
    topics: HashSet<TopicSlug>,
    default_source: String,
    now: DateTime<Utc>,
}

/// Imports a contacts CSV. `source` names where the list came from; it is also the consent
/// source of rows without a `consent_source` of their own.
pub async fn import_contacts(
    store: &Store,
    path: &Path,
    source: &str,
    report: &mut dyn ImportReport,
) -> Result<ContactsImportSummary, ImportError> {
    let (mut reader, size) = open_csv(path)?;
    let header = Header::read(&mut reader, path)?;
    let columns = Columns::find(&header).ok_or_else(|| ImportError::MissingColumn {
        path: path.to_owned(),
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
    let rules = RowRules {
        topics: store
            .list_topics()
            .await?
            .into_iter()
            .map(|t| t.slug)
            .collect(),
        default_source: source.to_owned(),
        now: now(),
    };

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
    let mut next_statistics_refresh = STATISTICS_REFRESH_FIRST;
    while let Some((batch, bytes_read)) = parser.next().await {
        let outcome = store.import_contacts(&batch.rows, source).await?;
        if summary.imported + outcome.inserted >= next_statistics_refresh {
            store.refresh_statistics().await?;
            next_statistics_refresh *= 2;
        }
        summary.imported += outcome.inserted;
        summary.updated += outcome.updated;
        summary.consents_recorded += outcome.consents_recorded;
        let mut rejections = batch.rejections;
        rejections.extend(outcome.refused_erased.iter().map(|&i| Rejection {
            line: batch.lines[i],
            reason: "the person asked to be erased; not imported".into(),
        }));
        rejections.sort_by_key(|r| r.line);
        summary.rejected += rejections.len() as u64;
        for rejection in &rejections {
            report.rejected(rejection);
        }
        report.advanced(bytes_read);
    }
    parser.finish(path).await?;
    store.refresh_statistics().await?;
    Ok(summary)
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
    rules: &RowRules,
) -> Result<NewContact, String> {
    check_width(record, header)?;
    let email = Email::parse(field(record, Some(columns.email))?)
        .map_err(|e| format!("invalid email: {e}"))?;
    let name = match columns.name {
        Some(_) => Name::parse(field(record, columns.name)?),
        None => {
            let first = field(record, columns.first_name)?;
            let last = field(record, columns.last_name)?;
            Name::parse(&format!("{first} {last}"))
        }
    }
    .map_err(|e| e.to_string())?;
    let postcode = match field(record, columns.postcode)? {
        "" => None,
        text => Some(Postcode::parse(text).map_err(|e| format!("unparseable postcode: {e}"))?),
    };
    let date_of_birth = match field(record, columns.date_of_birth)? {
        "" => None,
        text => {
            let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| format!("bad date_of_birth '{}': expected YYYY-MM-DD", short(text)))?;
            if date > rules.now.date_naive() {
                return Err(format!("bad date_of_birth '{text}': in the future"));
            }
            Some(date)
        }
    };
    let guardian_consent = match field(record, columns.guardian_consent)? {
        "" => None,
        text => Some(parse_bool(text).ok_or_else(|| {
            format!(
                "bad guardian_consent '{}': expected true or false",
                short(text)
            )
        })?),
    };
    let mut topics = Vec::new();
    for slug in field(record, columns.topics)?.split(';').map(str::trim) {
        if slug.is_empty() {
            continue;
        }
        let topic = TopicSlug::parse(slug)
            .ok()
            .filter(|t| rules.topics.contains(t))
            .ok_or_else(|| match slug.contains(',') {
                true => format!(
                    "unknown topic '{}': topics are separated by ';', as in news;events",
                    short(slug)
                ),
                false => format!("unknown topic '{}'", short(slug)),
            })?;
        if !topics.contains(&topic) {
            topics.push(topic);
        }
    }
    let consent_at = match field(record, columns.consent_at)? {
        "" => rules.now,
        text => {
            let at = parse_consent_time(text).ok_or_else(|| {
                format!(
                    "bad consent_at '{}': expected a date (YYYY-MM-DD, read as midnight UK \
                     time) or a time in RFC 3339",
                    short(text)
                )
            })?;
            if at > rules.now + CLOCK_SKEW {
                return Err(format!("bad consent_at '{text}': in the future"));
            }
            at.trunc_subsecs(6)
        }
    };
    let consent_source = match field(record, columns.consent_source)? {
        "" => rules.default_source.clone(),
        text => text.chars().take(200).collect(),
    };
    Ok(NewContact {
        email,
        name,
        postcode,
        date_of_birth,
        guardian_consent,
        topics,
        consent_at,
        consent_source,
    })
}

/// An RFC 3339 time, or a date alone (as spreadsheets write it), read as the start of that day
/// in the UK: a form filled in on 1 July said yes from 00:00 BST.
fn parse_consent_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?;
    // `earliest`: the UK's clocks never change at midnight, but be defined whatever happens.
    midnight
        .and_local_timezone(chrono_tz::Europe::London)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Some(true),
        "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Echoes at most a short piece of a bad value.
fn short(text: &str) -> String {
    text.chars().take(40).collect()
}
