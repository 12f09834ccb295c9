//! Writing a campaign: creating it (or a copy), and changing a draft, with its audience, its
//! limit to the author's constituencies and its authors.

use super::{DraftOutcome, StateChangeOutcome};

use crate::domain::{
    Actor, Audience, CampaignState, Coordinates, LinkTag, NewCampaign, Postcode, PostcodePrefix,
    Scope,
};
use crate::store::{
    BeginWrite, Result, Store, StoreError, decode_error, insert_audit, now, on_pool,
};

/// A campaign's audience as the rows of `campaign_audience`: (kind, value).
pub(super) fn audience_rows(audience: &Audience) -> Vec<(&'static str, &str)> {
    let constituencies = audience
        .constituencies
        .iter()
        .map(|c| ("constituency", c.as_str()));
    let postcodes = audience.postcodes.iter().map(|p| {
        let kind = match p {
            PostcodePrefix::Area(_) => "area",
            PostcodePrefix::District(_) => "district",
            PostcodePrefix::Sector(_) => "sector",
        };
        (kind, p.as_str())
    });
    constituencies.chain(postcodes).collect()
}

/// Writes every field of `$campaign` and its audience over campaign `$id`, inside the caller's
/// write transaction; a topic that does not exist is [`StoreError::UnknownTopic`].
macro_rules! write_campaign {
    ($conn:expr, $id:expr, $campaign:expr) => {{
        let conn = $conn;
        let campaign: &NewCampaign = $campaign;
        let event = campaign.event.as_ref();
        let topic = topic_id!(&mut *conn, campaign.topic);
        // The venue's place, kept for `{{distance_miles}}` and a distance rule: a rule cannot
        // be measured from a venue the directory does not place.
        let near = campaign.audience.near.as_ref();
        let venue = match event.and_then(|e| e.postcode.as_ref()) {
            None => None,
            Some(postcode) => {
                let place: Option<(Option<f64>, Option<f64>)> =
                    sqlx::query_as("SELECT latitude, longitude FROM postcodes WHERE postcode = $1")
                        .bind(postcode.as_str())
                        .fetch_optional(&mut *conn)
                        .await?;
                match place {
                    Some((Some(latitude), Some(longitude))) => Some(Coordinates {
                        latitude,
                        longitude,
                    }),
                    _ => None,
                }
            }
        };
        if let (Some(near), None) = (near, venue) {
            return Err(StoreError::VenueUnplaced(near.venue.as_str().to_owned()));
        }
        sqlx::query(
            "UPDATE campaigns SET name = $2, topic_id = $3, subject = $4, html_template = $5, \
                 text_template = $6, event_title = $7, event_starts_at = $8, event_venue = $9, \
                 event_postcode = $10, updated_at = $11, markdown = $12, from_address = $13, \
                 reply_to = $14, election_material = $15, postcodes_within = $16, \
                 within_miles = $17, venue_latitude = $18, venue_longitude = $19, \
                 venue_miles_east = $20 \
             WHERE id = $1",
        )
        .bind($id)
        .bind(&campaign.name)
        .bind(topic)
        .bind(&campaign.subject)
        .bind(&campaign.html_template)
        .bind(campaign.text_template.as_deref())
        .bind(event.map(|e| e.title.as_str()))
        .bind(event.map(|e| e.starts_at))
        .bind(event.map(|e| e.venue.as_str()))
        .bind(
            event
                .and_then(|e| e.postcode.as_ref())
                .map(Postcode::as_str),
        )
        .bind(now())
        .bind(campaign.markdown.as_deref())
        .bind(campaign.from.as_ref().map(ToString::to_string))
        .bind(campaign.reply_to.as_ref().map(ToString::to_string))
        .bind(campaign.election_material)
        .bind(campaign.audience.postcodes_within)
        .bind(near.map(|near| i64::from(near.miles)))
        .bind(venue.map(|v| v.latitude))
        .bind(venue.map(|v| v.longitude))
        .bind(venue.map(|v| v.miles_per_degree_east()))
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM campaign_audience WHERE campaign_id = $1")
            .bind($id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM campaign_exclusions WHERE campaign_id = $1")
            .bind($id)
            .execute(&mut *conn)
            .await?;
        for excluded in &campaign.audience.excluding {
            sqlx::query(
                "INSERT INTO campaign_exclusions (campaign_id, excluded_campaign_id) \
                 VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind($id)
            .bind(*excluded)
            .execute(&mut *conn)
            .await?;
        }
        for (kind, value) in audience_rows(&campaign.audience) {
            sqlx::query(
                "INSERT INTO campaign_audience (campaign_id, kind, value) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind($id)
            .bind(kind)
            .bind(value)
            .execute(&mut *conn)
            .await?;
        }
    }};
}

/// Records `$actor` as an author of campaign `$id`, inside the caller's write transaction.
macro_rules! add_author {
    ($conn:expr, $id:expr, $actor:expr) => {
        sqlx::query(
            "INSERT INTO campaign_authors (campaign_id, author) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind($id)
        .bind($actor.to_string())
        .execute($conn)
        .await?
    };
}

impl Store {
    /// Stores a draft campaign, reaching no one outside `limit`, and returns its id.
    pub async fn create_campaign(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_campaign(campaign, limit, needs_approval, actor, None)
            .await
    }

    /// Stores a copy of campaign `source` (given as `campaign`) as a new draft, as
    /// [`Store::create_campaign`] does. Whoever wrote any version of the source is an author of
    /// the copy too, in the same transaction: copying someone's words does not let them approve
    /// them.
    pub async fn create_campaign_copy(
        &self,
        source: i64,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
    ) -> Result<i64> {
        self.insert_campaign(campaign, limit, needs_approval, actor, Some(source))
            .await
    }

    async fn insert_campaign(
        &self,
        campaign: &NewCampaign,
        limit: &Scope,
        needs_approval: bool,
        actor: &Actor,
        source: Option<i64>,
    ) -> Result<i64> {
        let id = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let topic = topic_id!(&mut *tx, campaign.topic);
            // A row to write the campaign over, as an edit writes over a draft.
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO campaigns (name, topic_id, subject, html_template, state, \
                     created_by, created_at, updated_at, link_tag) \
                 VALUES ('', $1, '', '', 'draft', $2, $3, $3, $4) RETURNING id",
            )
            .bind(topic)
            .bind(actor.to_string())
            .bind(now())
            .bind(LinkTag::random().to_string())
            .fetch_one(&mut *tx)
            .await?;
            write_campaign!(&mut *tx, id, campaign);
            write_limit!(&mut *tx, id, limit);
            add_author!(&mut *tx, id, actor);
            sqlx::query(
                "INSERT INTO campaign_authors (campaign_id, author) \
                 SELECT $1, author FROM campaign_authors WHERE campaign_id = $2 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(source)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE campaigns SET needs_approval = $2 WHERE id = $1")
                .bind(id)
                .bind(needs_approval)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, actor: actor, action: "campaign.created", contact: None::<i64>,
                detail: Some(format!("campaign {id}")), ip: None::<String>)?;
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Changes a draft: every field and its audience, as `campaign`. It is a new version: any
    /// approval of the old one is withdrawn, and a campaign that needs one is unscheduled (one
    /// that does not stays scheduled, at the new version). The new version is made by the
    /// statement that checks the campaign is still a draft, which on PostgreSQL holds its row
    /// until commit: an edit never lands on a campaign queued meanwhile.
    pub async fn update_draft(
        &self,
        id: i64,
        campaign: &NewCampaign,
        actor: &Actor,
    ) -> Result<StateChangeOutcome> {
        let outcome = on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let edited = sqlx::query(
                "UPDATE campaigns SET version = version + 1, edited_by = $2, \
                     submitted_at = NULL, approved_version = NULL, approved_by = NULL, \
                     approved_at = NULL, \
                     scheduled_at = CASE WHEN needs_approval THEN NULL ELSE scheduled_at END, \
                     scheduled_version = CASE WHEN needs_approval OR scheduled_at IS NULL \
                         THEN NULL ELSE version + 1 END \
                 WHERE id = $1 AND state = 'draft'",
            )
            .bind(id)
            .bind(actor.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if edited == 0 {
                let why: DraftOutcome<()> = unchanged_draft!(&mut *tx, id);
                return Ok(match why {
                    DraftOutcome::NotDraft(state) => StateChangeOutcome::Refused(state),
                    _ => StateChangeOutcome::NotFound,
                });
            }
            write_campaign!(&mut *tx, id, campaign);
            add_author!(&mut *tx, id, actor);
            insert_audit!(&mut *tx, actor: actor, action: "campaign.edited", contact: None::<i64>,
                detail: Some(format!("campaign {id}")), ip: None::<String>)?;
            tx.commit().await?;
            StateChangeOutcome::Changed(CampaignState::Draft)
        });
        Ok(outcome)
    }
}
