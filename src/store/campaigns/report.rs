//! What became of a campaign's messages: counts by constituency and by delivery state.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{ConstituencyCounts, DeliveryCounts, ReportCounts};
use crate::store::{Result, Store, decode_error, on_pool};

impl Store {
    /// What a campaign's deliveries did, by the constituency of their recipients when it was
    /// queued, largest first: from the counts the database keeps (`campaign_totals`), added up
    /// by constituency here.
    pub async fn campaign_report(&self, id: i64) -> Result<Vec<ConstituencyCounts>> {
        type Group = (String, Option<String>, bool, bool, bool, i64);
        self.fold_counts().await?;
        let (groups, names): (Vec<Group>, Vec<(String, Option<String>)>) = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let groups = sqlx::query_as(
                "SELECT state, NULLIF(constituency_code, ''), bounced, complained, unsubscribed, \
                     deliveries \
                 FROM campaign_totals WHERE campaign_id = $1 AND deliveries <> 0",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            let names = sqlx::query_as("SELECT code, name FROM constituencies")
                .fetch_all(&mut *conn)
                .await?;
            (groups, names)
        });
        let mut by_code: BTreeMap<Option<String>, ReportCounts> = BTreeMap::new();
        for (state, code, bounced, complained, unsubscribed, n) in groups {
            let n = n as u64;
            let counts = by_code.entry(code).or_default();
            match state.as_str() {
                "queued" => counts.queued += n,
                "sent" => counts.sent += n,
                "failed" => counts.failed += n,
                _ => counts.skipped += n,
            }
            counts.bounced += u64::from(bounced) * n;
            counts.complaints += u64::from(complained) * n;
            counts.unsubscribed += u64::from(unsubscribed) * n;
        }
        let names: HashMap<String, Option<String>> = names.into_iter().collect();
        let mut report: Vec<ConstituencyCounts> = by_code
            .into_iter()
            .map(|(code, counts)| ConstituencyCounts {
                name: code
                    .as_ref()
                    .and_then(|code| names.get(code).cloned().flatten()),
                code,
                counts,
            })
            .collect();
        let size = |c: &ReportCounts| c.queued + c.sent + c.failed + c.skipped;
        report.sort_by(|a, b| {
            size(&b.counts)
                .cmp(&size(&a.counts))
                .then(a.code.cmp(&b.code))
        });
        Ok(report)
    }

    pub async fn delivery_counts(&self, id: i64) -> Result<DeliveryCounts> {
        self.fold_counts().await?;
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT state, CAST(sum(deliveries) AS BIGINT) FROM campaign_totals \
                 WHERE campaign_id = $1 \
                 GROUP BY state",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        let mut counts = DeliveryCounts::default();
        for (state, n) in rows {
            let n = n as u64;
            match state.as_str() {
                "queued" => counts.queued = n,
                "sent" => counts.sent = n,
                "failed" => counts.failed = n,
                "skipped" => counts.skipped = n,
                other => return Err(decode_error("delivery state", other)),
            }
        }
        Ok(counts)
    }
}
