//! What commands show on the console: progress (a bar on a terminal, plain lines otherwise,
//! on stderr) and results (rejected rows, summaries, a campaign's report, on stdout).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::domain::{CampaignReport, ReportCounts};
use crate::import::{ImportReport, Rejection};

/// Reports an import's progress for a person or a script.
pub struct ConsoleReport {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    /// The last tenth announced as a plain line.
    last_tenth: u64,
}

impl ConsoleReport {
    pub fn new(what: &'static str) -> Self {
        Self {
            bar: None,
            what,
            total: 0,
            last_tenth: 0,
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn print(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}

impl ImportReport for ConsoleReport {
    fn started(&mut self, total_bytes: u64) {
        self.total = total_bytes;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_bytes).with_message(self.what);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
    }

    fn advanced(&mut self, bytes_read: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(bytes_read),
            None if self.total > 0 => {
                let tenth = bytes_read * 10 / self.total;
                if tenth > self.last_tenth && tenth < 10 {
                    self.last_tenth = tenth;
                    eprintln!("{}: {}% read", self.what, tenth * 10);
                }
            }
            None => {}
        }
    }

    fn rejected(&mut self, rejection: &Rejection) {
        self.print(&format!("line {}: {}", rejection.line, rejection.reason));
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }
}

/// A bar for `worker --drain` on a terminal: deliveries done of those due when it started.
pub fn sending_bar(due: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || due == 0 {
        return None;
    }
    let bar = ProgressBar::new(due).with_message("sending");
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    Some(bar)
}

/// A campaign's report as a table: a line for the total, then one per constituency.
pub fn report_table(report: &CampaignReport) -> String {
    let mut out = format!(
        "campaign {} ({}): {}\n",
        report.id, report.state, report.name
    );
    let width = report
        .by_constituency
        .iter()
        .filter_map(|c| c.name.as_deref().or(c.code.as_deref()))
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .max(20);
    out.push_str(&format!(
        "{:width$}  {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>12}\n",
        "", "queued", "sent", "failed", "skipped", "bounced", "complaints", "unsubscribed"
    ));
    let mut line = |label: &str, c: &ReportCounts| {
        out.push_str(&format!(
            "{label:width$}  {:>7} {:>7} {:>7} {:>7} {:>7} {:>10} {:>12}\n",
            c.queued, c.sent, c.failed, c.skipped, c.bounced, c.complaints, c.unsubscribed
        ))
    };
    line("total", &report.total);
    for constituency in &report.by_constituency {
        let label = match (&constituency.name, &constituency.code) {
            (Some(name), _) => name.as_str(),
            (None, Some(code)) => code.as_str(),
            (None, None) => "(no constituency)",
        };
        line(label, &constituency.counts);
    }
    out
}
