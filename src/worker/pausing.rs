//! Pausing a campaign that needs a person (our login refused, TLS that cannot be verified, a
//! run of recipients refused for good): what was claimed before the pause goes back unsent, and
//! the admins are told.

use super::{Shared, WorkerError, alerts, lock};

use std::sync::atomic::Ordering;

use crate::mail::Trouble;

use crate::store::ClaimedDelivery;

impl Shared {
    /// Holds back every delivery of this campaign already claimed, while the pause is being
    /// written; `false` when a pause of it is already under way.
    pub(super) fn begin_pause(&self, delivery: &ClaimedDelivery) -> bool {
        let mut paused = lock(&self.claims.paused);
        match paused.get(&delivery.campaign_id) {
            Some(&u64::MAX) => false,
            _ => {
                paused.insert(delivery.campaign_id, u64::MAX);
                true
            }
        }
    }

    /// Pauses the delivery's campaign, saying why, unless a pause of it is under way: what
    /// this worker holds of it goes back unsent.
    pub(super) async fn pause(
        &self,
        delivery: &ClaimedDelivery,
        why: &str,
        trouble: Option<Trouble>,
    ) -> Result<(), WorkerError> {
        if !self.begin_pause(delivery) {
            return Ok(());
        }
        let paused = self
            .store
            .pause_failing_campaign(delivery.campaign_id, why)
            .await?;
        // Committed (or staff had paused or cancelled it already): from here on only a claim
        // begun after now can hold its rows, after someone resumes it.
        lock(&self.claims.paused).insert(
            delivery.campaign_id,
            self.claims.begun.load(Ordering::Acquire),
        );
        if paused {
            tracing::error!(
                campaign = delivery.campaign_id,
                "campaign paused: {why}; resume it with `canvass campaign resume {}` once \
                 that is sorted",
                delivery.campaign_id
            );
            let alerting = alerts::Alerting {
                store: self.store.clone(),
                transport: self.settings.relays.first().clone(),
                letterhead: self.settings.letterhead.clone(),
            };
            let (campaign, why) = (delivery.campaign_id, why.to_owned());
            let refused_login = trouble == Some(Trouble::Login);
            tokio::spawn(async move {
                alerting
                    .campaign_paused(campaign, &why, refused_login)
                    .await
            });
        }
        Ok(())
    }
}
