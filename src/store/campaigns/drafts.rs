//! Writing a campaign: creating it (or a copy), and changing a draft, with its audience, its
//! limit to the author's constituencies and its authors.

use super::{DraftOutcome, StateChangeOutcome};

use crate::domain::{
    Actor, Audience, AuditAction, CampaignState, LinkTag, NewCampaign, PostcodePrefix, Scope,
};
use crate::store::{Audit, BeginWrite, InTransaction, Result, Store, now, on_pool};

/// A campaign's audience as the rows of `campaign_audience`: (kind, value).
pub(crate) fn audience_rows(audience: &Audience) -> Vec<(&'static str, &str)> {
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
            let topic = tx.topic_id(&campaign.topic).await?;
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
            tx.write_campaign(id, campaign).await?;
            tx.write_limit(id, limit).await?;
            tx.add_author(id, actor).await?;
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
            tx.audit(Audit::of(
                actor,
                AuditAction::CampaignCreated,
                format!("campaign {id}"),
            ))
            .await?;
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
                let why: DraftOutcome<()> = tx.why_draft_unchanged(id).await?;
                return Ok(match why {
                    DraftOutcome::NotDraft(state) => StateChangeOutcome::Refused(state),
                    _ => StateChangeOutcome::NotFound,
                });
            }
            tx.write_campaign(id, campaign).await?;
            tx.add_author(id, actor).await?;
            tx.audit(Audit::of(
                actor,
                AuditAction::CampaignEdited,
                format!("campaign {id}"),
            ))
            .await?;
            tx.commit().await?;
            StateChangeOutcome::Changed(CampaignState::Draft)
        });
        Ok(outcome)
    }
}
