//! What became of campaigns: each one's report, what waits to be sent, and the campaigns the
//! worker paused.

use super::find;

use super::{Actor, App, Result};
use crate::domain::{CampaignReport, CampaignState, ReportCounts, Scope};

use crate::store::Backlog;

/// What a campaign did: its deliveries by state, and the bounces, complaints and unsubscribes
/// its messages brought, in total and by constituency.
pub async fn report(app: &App, actor: &Actor, id: i64) -> Result<CampaignReport> {
    let campaign = find(app, actor, id).await?;
    let scope = actor.scope();
    let mut by_constituency = app.store.campaign_report(id).await?;
    // A campaign the actor sees reaches only their constituencies; someone who has moved away
    // since is counted where they were, and shown only to those who see there.
    by_constituency.retain(|c| scope.covers(c.code.as_deref()));
    let mut total = ReportCounts::default();
    for constituency in &by_constituency {
        total += constituency.counts;
    }
    Ok(CampaignReport {
        id,
        name: campaign.spec.name,
        state: campaign.state,
        total,
        by_constituency,
    })
}

/// What waits to be sent: due now, waiting for a retry, and when.
pub async fn backlog(app: &App) -> Result<Backlog> {
    Ok(app.store.backlog().await?)
}

/// A campaign the worker paused, holding its messages until someone acts.
#[derive(Debug, Clone)]
pub struct PausedByWorker {
    pub id: i64,
    /// Messages it holds.
    pub held: u64,
    /// Why the worker paused it.
    pub reason: String,
}

/// The campaigns the worker paused (not those staff paused).
pub async fn paused_by_worker(app: &App) -> Result<Vec<PausedByWorker>> {
    let mut paused = Vec::new();
    for summary in app.store.list_campaigns(&Scope::Everyone).await? {
        if summary.state != CampaignState::Paused {
            continue;
        }
        let Some(campaign) = app.store.campaign(summary.id).await? else {
            continue;
        };
        if let Some(reason) = campaign.paused_reason {
            let held = app.store.delivery_counts(campaign.id).await?.queued;
            paused.push(PausedByWorker {
                id: campaign.id,
                held,
                reason,
            });
        }
    }
    Ok(paused)
}
