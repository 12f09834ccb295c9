//! Reading campaigns as staff see them: one whole, or the list within a person's scope.

use super::Campaign;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::{
    Approval, Audience, CampaignState, CampaignSummary, ConstituencyCode, DraftStage, Event, Near,
    NewCampaign, Postcode, PostcodePrefix, Scope, Sender, TopicSlug,
};
use crate::store::{Result, Store, decode_error, on_pool};

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    name: String,
    topic: String,
    topic_name: String,
    subject: String,
    html_template: String,
    text_template: Option<String>,
    event_title: Option<String>,
    event_starts_at: Option<DateTime<Utc>>,
    event_venue: Option<String>,
    event_postcode: Option<String>,
    state: String,
    paused_reason: Option<String>,
    scheduled_at: Option<DateTime<Utc>>,
    link_tag: Option<String>,
    markdown: Option<String>,
    from_address: Option<String>,
    reply_to: Option<String>,
    limited: bool,
    version: i64,
    needs_approval: bool,
    created_by: String,
    submitted_at: Option<DateTime<Utc>>,
    approved_version: Option<i64>,
    approved_by: Option<String>,
    approved_at: Option<DateTime<Utc>>,
    election_material: bool,
    postcodes_within: bool,
    within_miles: Option<i64>,
}

/// Campaigns `scope` sees: all of them for everyone; else those limited to constituencies all
/// within it. `$n` is the first placeholder free for the codes.
fn campaigns_within(scope: &Scope, first: usize) -> String {
    match scope.constituencies() {
        None => "TRUE".to_owned(),
        Some(codes) => {
            let placeholders: Vec<String> = (0..codes.len())
                .map(|i| format!("${}", first + i))
                .collect();
            let outside = if placeholders.is_empty() {
                String::new()
            } else {
                format!(
                    " AND z.constituency_code NOT IN ({})",
                    placeholders.join(", ")
                )
            };
            format!(
                "k.limited AND NOT EXISTS (SELECT 1 FROM campaign_limits z \
                 WHERE z.campaign_id = k.id{outside})"
            )
        }
    }
}

impl Store {
    pub async fn campaign(&self, id: i64) -> Result<Option<Campaign>> {
        let found = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let row: Option<CampaignRow> = sqlx::query_as(
                "SELECT k.id, k.name, t.slug AS topic, t.name AS topic_name, k.subject, \
                        k.html_template, \
                        k.text_template, k.event_title, k.event_starts_at, k.event_venue, \
                        k.event_postcode, k.state, k.paused_reason, k.scheduled_at, k.link_tag, \
                        k.markdown, k.from_address, k.reply_to, k.limited, k.version, \
                        k.needs_approval, k.created_by, k.submitted_at, \
                        k.approved_version, k.approved_by, k.approved_at, k.election_material, \
                        k.postcodes_within, k.within_miles \
                 FROM campaigns k JOIN topics t ON t.id = k.topic_id WHERE k.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => None,
                Some(row) => {
                    let audience: Vec<(String, String)> = sqlx::query_as(
                        "SELECT kind, value FROM campaign_audience WHERE campaign_id = $1 \
                         ORDER BY kind, value",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let limits: Vec<String> = sqlx::query_scalar(
                        "SELECT constituency_code FROM campaign_limits WHERE campaign_id = $1",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let authors: Vec<String> = sqlx::query_scalar(
                        "SELECT author FROM campaign_authors WHERE campaign_id = $1 \
                         ORDER BY author",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let excluding: Vec<i64> = sqlx::query_scalar(
                        "SELECT excluded_campaign_id FROM campaign_exclusions \
                         WHERE campaign_id = $1 ORDER BY excluded_campaign_id",
                    )
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?;
                    Some((row, audience, limits, authors, excluding))
                }
            }
        });
        let Some((row, rows, limits, authors, excluding)) = found else {
            return Ok(None);
        };
        let limits = limits
            .iter()
            .map(|code| ConstituencyCode::parse(code).map_err(|e| decode_error("limit", e)))
            .collect::<Result<Vec<_>>>()?;
        let limit = if !row.limited {
            Scope::Everyone
        } else if limits.is_empty() {
            Scope::nobody()
        } else {
            Scope::of(limits)
        };
        let approved = row.approved_version == Some(row.version);
        let approval = Approval {
            needed: row.needs_approval,
            version: row.version,
            created_by: row.created_by,
            authors,
            submitted_at: row.submitted_at,
            approved_by: row.approved_by.filter(|_| approved),
            approved_at: row.approved_at.filter(|_| approved),
        };
        let venue = row
            .event_postcode
            .as_deref()
            .map(Postcode::parse)
            .transpose()
            .map_err(|e| decode_error("event postcode", e))?;
        let near = match (row.within_miles, venue) {
            (Some(miles), Some(venue)) => Some(Near {
                miles: u32::try_from(miles).map_err(|e| decode_error("within miles", e))?,
                venue,
            }),
            _ => None,
        };
        let mut audience = Audience {
            postcodes_within: row.postcodes_within,
            near,
            excluding,
            ..Audience::default()
        };
        for (kind, value) in rows {
            if kind == "constituency" {
                let code =
                    ConstituencyCode::parse(&value).map_err(|e| decode_error("audience", e))?;
                audience.constituencies.push(code);
            } else {
                let prefix =
                    PostcodePrefix::parse(&value).map_err(|e| decode_error("audience", e))?;
                audience.postcodes.push(prefix);
            }
        }
        let sender = |held: Option<String>| {
            held.map(|s| Sender::parse(&s))
                .transpose()
                .map_err(|e| decode_error("sender", e))
        };
        let event = match (row.event_title, row.event_starts_at, row.event_venue) {
            (Some(title), Some(starts_at), Some(venue)) => Some(Event {
                title,
                starts_at,
                venue,
                postcode: row
                    .event_postcode
                    .map(|p| Postcode::parse(&p))
                    .transpose()
                    .map_err(|e| decode_error("event postcode", e))?,
            }),
            _ => None,
        };
        Ok(Some(Campaign {
            id: row.id,
            topic_name: row.topic_name,
            state: row.state.parse().map_err(|e| decode_error("state", e))?,
            paused_reason: row.paused_reason,
            scheduled_at: row.scheduled_at,
            link_tag: row
                .link_tag
                .map(|tag| tag.parse())
                .transpose()
                .map_err(|e| decode_error("link tag", e))?,
            limit,
            approval,
            spec: NewCampaign {
                name: row.name,
                topic: TopicSlug::parse(&row.topic).map_err(|e| decode_error("topic", e))?,
                subject: row.subject,
                html_template: row.html_template,
                text_template: row.text_template,
                markdown: row.markdown,
                from: sender(row.from_address)?,
                reply_to: sender(row.reply_to)?,
                audience,
                event,
                election_material: row.election_material,
            },
        }))
    }

    /// The campaigns `scope` sees, oldest first.
    pub async fn list_campaigns(&self, scope: &Scope) -> Result<Vec<CampaignSummary>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            name: String,
            topic: String,
            topic_name: String,
            subject: String,
            state: String,
            created_at: DateTime<Utc>,
            queued_at: Option<DateTime<Utc>>,
            scheduled_at: Option<DateTime<Utc>>,
            needs_approval: bool,
            submitted_at: Option<DateTime<Utc>>,
            approved: bool,
        }
        let sql = format!(
            "SELECT k.id, k.name, t.slug AS topic, t.name AS topic_name, k.subject, k.state, \
                    k.created_at, k.queued_at, k.scheduled_at, k.needs_approval, \
                    k.submitted_at, (k.approved_version IS NOT DISTINCT FROM k.version) AS approved \
             FROM campaigns k JOIN topics t ON t.id = k.topic_id WHERE {} ORDER BY k.id",
            campaigns_within(scope, 1)
        );
        let authors_sql = format!(
            "SELECT a.campaign_id, a.author FROM campaign_authors a \
             JOIN campaigns k ON k.id = a.campaign_id WHERE {} \
             ORDER BY a.campaign_id, a.author",
            campaigns_within(scope, 1)
        );
        let codes = scope.constituencies().unwrap_or_default();
        let (rows, authors): (Vec<Row>, Vec<(i64, String)>) = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for code in codes {
                query = query.bind(code.as_str());
            }
            let rows: Vec<Row> = query.fetch_all(&mut *conn).await?;
            let mut authors = sqlx::query_as(sqlx::AssertSqlSafe(authors_sql));
            for code in codes {
                authors = authors.bind(code.as_str());
            }
            (rows, authors.fetch_all(&mut *conn).await?)
        });
        let mut authors_of: HashMap<i64, Vec<String>> = HashMap::new();
        for (campaign, author) in authors {
            authors_of.entry(campaign).or_default().push(author);
        }
        rows.into_iter()
            .map(|row| {
                let state: CampaignState =
                    row.state.parse().map_err(|e| decode_error("state", e))?;
                Ok(CampaignSummary {
                    stage: (state == CampaignState::Draft).then(|| {
                        DraftStage::of(row.needs_approval, row.submitted_at.is_some(), row.approved)
                    }),
                    awaiting_approval: state == CampaignState::Draft
                        && row.needs_approval
                        && !row.approved,
                    authors: authors_of.remove(&row.id).unwrap_or_default(),
                    id: row.id,
                    name: row.name,
                    topic: row.topic,
                    topic_name: row.topic_name,
                    subject: row.subject,
                    state,
                    created_at: row.created_at,
                    queued_at: row.queued_at,
                    scheduled_at: row.scheduled_at,
                    submitted_at: row.submitted_at,
                })
            })
            .collect()
    }
}
