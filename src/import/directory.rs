//! `canvass postcodes import`: the ONS postcode directory (ONSPD, NSPL) or a plain
//! `postcode,constituency_code,constituency_name` file.

use std::collections::BTreeMap;

use super::{
    Batch, CsvFile, Header, ImportError, ImportReport, Parser, Rejection, check_width, field,
    line_of, open_csv,
};
use crate::domain::{Actor, ConstituencyCode, Coordinates, Postcode};
use crate::store::{DirectoryEntry, Store};

/// Entries written in one statement group; the whole import is one transaction.
const BATCH_ROWS: usize = 30_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DirectoryImportSummary {
    pub postcodes: u64,
    pub constituencies: usize,
    /// Rows without a Westminster constituency: the Channel Islands and the Isle of Man (ONS
    /// pseudo-codes such as `L99999999`), and postcodes the ONS left unassigned.
    pub without_constituency: u64,
    pub rejected: u64,
    /// Postcodes given a place on the map (the ONSPD's `lat` and `long`); `None` for a file
    /// without those columns.
    pub placed: Option<u64>,
}

impl std::fmt::Display for DirectoryImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} postcodes in {} constituencies, {} without a constituency, rejected {}",
            self.postcodes, self.constituencies, self.without_constituency, self.rejected
        )?;
        match self.placed {
            Some(placed) => write!(f, "; {placed} of them placed on the map"),
            None => write!(f, "; no places on the map (the file has no lat and long)"),
        }
    }
}

struct Columns {
    postcode: usize,
    constituency_code: usize,
    constituency_name: Option<usize>,
    /// `lat` and `long`, together.
    place: Option<(usize, usize)>,
}

#[derive(Default)]
struct Parsed {
    entries: Vec<DirectoryEntry>,
    names: Vec<(ConstituencyCode, String)>,
    rejections: Vec<Rejection>,
    without_constituency: u64,
    placed: u64,
}

/// Refused rows above this share of the file refuse the whole import.
const MOST_REJECTED: f64 = 0.01;

/// Replaces the postcode directory with the file's contents, atomically. A file with more than
/// 1% of its rows refused, or one that would leave contacts placed today without a
/// constituency, is refused and the old directory kept, unless `force`.
pub async fn import_directory(
    store: &Store,
    file: CsvFile,
    force: bool,
    actor: &Actor,
    report: &mut dyn ImportReport,
) -> Result<DirectoryImportSummary, ImportError> {
    let (mut reader, size, file) = open_csv(file)?;
    let header = Header::read(&mut reader, &file)?;
    let columns = Columns::find(&header, &file)?;
    let has_places = columns.place.is_some();
    report.started(size);

    let mut parser = Parser::spawn(reader, move |batch: &mut Parsed, record| {
        match parse_row(record, &header, &columns) {
            Ok(Some((entry, name))) => {
                if let Some(name) = name {
                    batch.names.push((entry.constituency.clone(), name));
                }
                batch.placed += u64::from(entry.place.is_some());
                batch.entries.push(entry);
            }
            Ok(None) => batch.without_constituency += 1,
            Err(reason) => batch.rejections.push(Rejection {
                line: line_of(record),
                reason,
            }),
        }
    });

    let located_before = store.located_contacts().await?;
    let mut import = store.begin_directory_import().await?;
    let mut summary = DirectoryImportSummary {
        placed: has_places.then_some(0),
        ..DirectoryImportSummary::default()
    };
    let mut names: BTreeMap<ConstituencyCode, Option<String>> = BTreeMap::new();
    while let Some((batch, bytes_read)) = parser.next().await {
        import.insert(&batch.entries).await?;
        summary.postcodes += batch.entries.len() as u64;
        summary.without_constituency += batch.without_constituency;
        if let Some(placed) = &mut summary.placed {
            *placed += batch.placed;
        }
        summary.rejected += batch.rejections.len() as u64;
        for entry in &batch.entries {
            if !names.contains_key(&entry.constituency) {
                names.insert(entry.constituency.clone(), None);
            }
        }
        for (code, name) in batch.names {
            names.insert(code, Some(name));
        }
        for rejection in &batch.rejections {
            report.rejected(rejection);
        }
        report.advanced(bytes_read);
    }
    parser.finish(&file).await?;
    if summary.postcodes == 0 {
        return Err(ImportError::EmptyDirectory(file));
    }
    let rows = summary.postcodes + summary.without_constituency + summary.rejected;
    if !force && summary.rejected as f64 > rows as f64 * MOST_REJECTED {
        return Err(ImportError::TooManyRejected {
            file,
            rejected: summary.rejected,
            rows,
        });
    }
    let lost = located_before.saturating_sub(import.located_contacts().await?);
    if !force && lost > 0 {
        return Err(ImportError::WouldLoseContacts { file, lost });
    }
    summary.constituencies = names.len();
    import.commit(&names, actor).await?;
    store.settle_after_bulk_change().await?;
    Ok(summary)
}

impl Batch for Parsed {
    fn is_full(&self) -> bool {
        self.entries.len() >= BATCH_ROWS
    }
}

impl Columns {
    /// Finds the columns under any of the names the ONS files and the plain layout use. The
    /// ONS lookups name the constituency columns by boundary year, as `pcon24cd`/`pcon24nm`.
    fn find(header: &Header, file: &str) -> Result<Self, ImportError> {
        let missing = |wanted: &str| ImportError::MissingColumn {
            file: file.to_owned(),
            wanted: wanted.to_owned(),
        };
        let postcode = ["pcds", "postcode", "pcd", "pcd2"]
            .iter()
            .find_map(|name| header.find(|h| h == *name))
            .ok_or_else(|| missing("postcode (or pcds)"))?;
        let constituency_code = header
            .find(|h| h == "constituency_code" || h == "pcon" || is_yearly(h, "cd"))
            .ok_or_else(|| missing("constituency_code (or pcon)"))?;
        let constituency_name = header.find(|h| h == "constituency_name" || is_yearly(h, "nm"));
        let latitude = header.find(|h| h == "lat" || h == "latitude");
        let longitude = header.find(|h| h == "long" || h == "longitude");
        Ok(Self {
            postcode,
            constituency_code,
            constituency_name,
            place: latitude.zip(longitude),
        })
    }
}

/// `pcon` + two digits + `suffix`, as in `pcon24cd`.
fn is_yearly(name: &str, suffix: &str) -> bool {
    name.strip_prefix("pcon")
        .and_then(|rest| rest.strip_suffix(suffix))
        .is_some_and(|year| year.len() == 2 && year.bytes().all(|b| b.is_ascii_digit()))
}

/// A directory row: an entry, `None` for a postcode outside every Westminster constituency, or
/// the reason it is refused.
fn parse_row(
    record: &csv::ByteRecord,
    header: &Header,
    columns: &Columns,
) -> Result<Option<(DirectoryEntry, Option<String>)>, String> {
    check_width(record, header)?;
    let postcode = Postcode::parse(field(record, Some(columns.postcode))?)
        .map_err(|e| format!("unparseable postcode: {e}"))?;
    let code = field(record, Some(columns.constituency_code))?;
    if code.is_empty() || is_pseudo_code(code) {
        return Ok(None);
    }
    let constituency = ConstituencyCode::parse(code).map_err(|e| e.to_string())?;
    let name = match field(record, columns.constituency_name)? {
        "" => None,
        name => Some(name.to_owned()),
    };
    let place = match columns.place {
        Some((latitude, longitude)) => Coordinates::from_directory(
            field(record, Some(latitude))?,
            field(record, Some(longitude))?,
        )?,
        None => None,
    };
    Ok(Some((
        DirectoryEntry {
            postcode,
            constituency,
            place,
        },
        name,
    )))
}

/// The ONS pseudo-codes: a country letter and eight nines (`L99999999` for the Channel Islands,
/// `M99999999` for the Isle of Man, `S99999999` and the like for unassigned postcodes).
fn is_pseudo_code(code: &str) -> bool {
    code.len() == 9 && code.as_bytes()[1..].iter().all(|&b| b == b'9')
}
