//! Importing contacts from a CSV file uploaded through the browser: the import runs as a job
//! beside the request, its page shows a progress bar, and the rejected lines are listed and
//! downloadable. Jobs live in this process's memory, each seen only by the person who started
//! it; the upload is read from memory and never written to disk.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::session::{FORM_TOKEN, Signed};
use super::{Layout, Problem, Section, Template, render, see_other};
use crate::app::imports::{CsvFile, ImportReport, Rejection};
use crate::app::{self, AppError};
use crate::domain::{counted, listed, thousands};
use crate::http::AppState;

/// The largest file taken: about a million rows.
pub const UPLOAD_LIMIT: usize = 128 * 1024 * 1024;
/// Jobs kept to look back at; the oldest go first.
const KEPT: usize = 64;
/// Rejected lines shown on the page (all are in the download).
const SHOWN: usize = 200;

/// The imports of this process.
#[derive(Default)]
pub struct Imports {
    jobs: Mutex<VecDeque<Arc<Job>>>,
}

struct Job {
    id: String,
    /// The person who started it: no one else sees it.
    owner: i64,
    file: String,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    total_bytes: u64,
    read_bytes: u64,
    rejections: Vec<Rejection>,
    notes: Vec<String>,
    /// The summary line, or why the import as a whole was refused.
    outcome: Option<Result<String, String>>,
}

impl Imports {
    fn add(&self, job: Arc<Job>) {
        let mut jobs = self.jobs.lock().expect("no one panics holding the jobs");
        if jobs.len() >= KEPT {
            jobs.pop_front();
        }
        jobs.push_back(job);
    }

    fn find(&self, id: &str, owner: i64) -> Option<Arc<Job>> {
        let jobs = self.jobs.lock().expect("no one panics holding the jobs");
        jobs.iter()
            .find(|job| job.id == id && job.owner == owner)
            .cloned()
    }
}

/// Tells a job's page how the import goes.
struct Reporter(Arc<Job>);

impl Reporter {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.0.progress.lock().expect("no one panics holding a job")
    }
}

impl ImportReport for Reporter {
    fn started(&mut self, total_bytes: u64) {
        self.progress().total_bytes = total_bytes;
    }

    fn advanced(&mut self, bytes_read: u64) {
        self.progress().read_bytes = bytes_read;
    }

    fn rejected(&mut self, rejection: &Rejection) {
        self.progress().rejections.push(rejection.clone());
    }

    fn note(&mut self, message: &str) {
        self.progress().notes.push(message.to_owned());
    }
}

#[derive(Serialize)]
struct FormData {
    error: Option<String>,
    source: String,
    /// The constituencies the person may import into, by name; `None`: everywhere.
    scope: Option<String>,
}

/// The upload form.
pub async fn page(State(state): State<AppState>, signed: Signed) -> Response {
    form(&state, &signed, StatusCode::OK, None, String::new()).await
}

async fn form(
    state: &AppState,
    signed: &Signed,
    status: StatusCode,
    error: Option<String>,
    source: String,
) -> Response {
    let scope = match app::contacts::constituency_names(&state.app).await {
        Ok(names) => names.of_scope(&signed.session.member.scope),
        Err(error) => return Problem::from(error).page(state, Some(signed)),
    };
    render(
        state,
        status,
        Template::Import,
        Layout::new("Import contacts", Section::Import, Some(signed)),
        FormData {
            error,
            source,
            scope,
        },
    )
}

/// Takes the upload, starts the import and sends the browser to its page.
pub async fn upload(
    State(state): State<AppState>,
    signed: Signed,
    mut multipart: Multipart,
) -> Response {
    let mut token = String::new();
    let mut source = String::new();
    let mut consented = String::new();
    let mut file: Option<(String, Bytes)> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                let message = format!("the upload could not be read: {}", error.body_text());
                return form(&state, &signed, error.status(), Some(message), source).await;
            }
        };
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let bytes = match field.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => {
                let message = format!("the upload could not be read: {}", error.body_text());
                return form(&state, &signed, error.status(), Some(message), source).await;
            }
        };
        match name.as_str() {
            FORM_TOKEN => token = String::from_utf8_lossy(&bytes).into_owned(),
            "source" => source = String::from_utf8_lossy(&bytes).trim().to_owned(),
            "consented" => consented = String::from_utf8_lossy(&bytes).trim().to_owned(),
            "file" => file = Some((file_name.unwrap_or_else(|| "upload.csv".into()), bytes)),
            _ => {}
        }
    }
    if !signed.session.member.role.writes() {
        return Problem::denied("You may read but not import; ask an organiser or admin.")
            .page(&state, Some(&signed));
    }
    let expected = signed.session.form_token.as_bytes();
    if !bool::from(token.as_bytes().ct_eq(expected)) {
        return (
            StatusCode::FORBIDDEN,
            "Refused: the form is out of date or not from this console.",
        )
            .into_response();
    }
    // What was wrong, told on the form again, with the source as typed.
    let refused = |message: String, source: String| {
        form(
            &state,
            &signed,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(message),
            source,
        )
    };
    let Some((name, bytes)) = file.filter(|(_, bytes)| !bytes.is_empty()) else {
        return refused("choose a CSV file to import".to_owned(), source).await;
    };
    // The source is checked before the job starts, so that the form can say so.
    if let Err(error) = crate::domain::parse_source(&source) {
        return refused(format!("say where the list came from: {error}"), source).await;
    }
    let mut id = [0u8; 12];
    rand::rng().fill_bytes(&mut id);
    let job = Arc::new(Job {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        owner: signed.session.user,
        file: name.clone(),
        progress: Mutex::default(),
    });
    state.imports.add(job.clone());
    let app = state.app.clone();
    let actor = signed.actor();
    let size = bytes.len() as u64;
    let reporter_job = job.clone();
    tokio::spawn(async move {
        let csv = CsvFile::from_reader(name, std::io::Cursor::new(bytes), size);
        let mut reporter = Reporter(reporter_job.clone());
        let outcome =
            app::imports::contacts(&app, &actor, csv, &source, Some(&consented), &mut reporter)
                .await;
        let outcome = match outcome {
            Ok(summary) => Ok(summary.to_string()),
            Err(AppError::Unavailable(error)) => {
                tracing::error!("console import: {error}");
                Err("the database failed; what was imported before it stays".to_owned())
            }
            Err(error) => Err(error.to_string()),
        };
        reporter.progress().outcome = Some(outcome);
    });
    see_other(&format!("/admin/import/{}", job.id))
}

#[derive(Serialize)]
struct JobData {
    id: String,
    file: String,
    percent: u64,
    running: bool,
    summary: Option<String>,
    failure: Option<String>,
    rejected: usize,
    /// The refusals grouped by reason, the commonest first.
    reasons: Vec<Reason>,
    shown: Vec<Rejection>,
    more: bool,
    notes: Vec<String>,
}

fn job_data(job: &Job) -> JobData {
    let progress = job.progress.lock().expect("no one panics holding a job");
    let percent = match (progress.total_bytes, &progress.outcome) {
        (_, Some(_)) => 100,
        (0, None) => 0,
        (total, None) => (progress.read_bytes * 100 / total).min(99),
    };
    JobData {
        id: job.id.clone(),
        file: job.file.clone(),
        percent,
        running: progress.outcome.is_none(),
        summary: progress.outcome.clone().and_then(Result::ok),
        failure: progress.outcome.clone().and_then(Result::err),
        rejected: progress.rejections.len(),
        reasons: reasons(&progress.rejections),
        shown: progress.rejections.iter().take(SHOWN).cloned().collect(),
        more: progress.rejections.len() > SHOWN,
        notes: progress.notes.clone(),
    }
}

/// Lines refused for one reason.
#[derive(Serialize)]
struct Reason {
    reason: String,
    /// How many, in words.
    how_many: String,
    /// The first few lines, as a sentence lists them: `lines 2, 3 and 9`.
    lines: String,
}

/// Lines of a group named before "and N more".
const LINES_NAMED: usize = 5;

fn reasons(rejections: &[Rejection]) -> Vec<Reason> {
    let mut groups: Vec<(&str, Vec<u64>)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for rejection in rejections {
        let i = *at.entry(&rejection.reason).or_insert_with(|| {
            groups.push((&rejection.reason, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(rejection.line);
    }
    groups.sort_by_key(|group| std::cmp::Reverse(group.1.len()));
    groups
        .into_iter()
        .map(|(reason, lines)| {
            let mut named: Vec<String> = lines
                .iter()
                .take(LINES_NAMED)
                .map(|line| thousands(*line))
                .collect();
            if lines.len() > LINES_NAMED {
                named.push(format!(
                    "{} more",
                    thousands((lines.len() - LINES_NAMED) as u64)
                ));
            }
            Reason {
                reason: reason.to_owned(),
                how_many: counted(lines.len() as u64, "line", "lines"),
                lines: match lines.len() {
                    1 => format!("line {}", listed(&named)),
                    _ => format!("lines {}", listed(&named)),
                },
            }
        })
        .collect()
}

/// An import's page: its progress, then what it did and the lines it refused.
pub async fn job(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(job) = state.imports.find(&id, signed.session.user) else {
        return Problem::not_found("No such import (they are kept until the server restarts).")
            .page(&state, Some(&signed));
    };
    let data = job_data(&job);
    let mut layout = Layout::new("Import", Section::Import, Some(&signed));
    layout.refresh = data.running;
    render(&state, StatusCode::OK, Template::ImportJob, layout, data)
}

/// The lines an import refused, as CSV: line, reason.
pub async fn rejected(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(job) = state.imports.find(&id, signed.session.user) else {
        return Problem::not_found("No such import.").page(&state, Some(&signed));
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let progress = job.progress.lock().expect("no one panics holding a job");
    let _ = out.write_record(["line", "reason"]);
    for rejection in &progress.rejections {
        let _ = out.write_record([rejection.line.to_string(), rejection.reason.clone()]);
    }
    let body = out.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"rejected-lines.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}
