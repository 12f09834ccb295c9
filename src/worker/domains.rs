//! Pacing by recipient domain: a mailbox provider that puts messages off for its own reasons
//! (a 421, or a 4.7.x status: Gmail's and Outlook's "try again later") slows down alone, its
//! messages postponed for a while that doubles each time, while every other domain keeps its
//! pace; and optional caps per domain (`CANVASS_DOMAIN_RATES=gmail.com:20,outlook.com:10`),
//! kept in the database for every worker together like the installation's rate.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::budget::Budget;
use crate::domain::Rate;
use crate::store::Store;

/// The first rest of a domain that puts messages off, and the longest.
const FIRST_REST: Duration = Duration::from_secs(15);
const LONGEST_REST: Duration = Duration::from_secs(15 * 60);

/// What the worker knows of each recipient domain.
pub(super) struct Domains {
    rests: Mutex<HashMap<String, Rest>>,
    budgets: HashMap<String, Budget>,
}

struct Rest {
    until: Instant,
    times: u32,
}

impl Domains {
    /// The caps given (`gmail.com` and so on, lower case), each a bucket in the database.
    pub(super) fn new(store: &Store, rates: &[(String, Rate)]) -> Self {
        let budgets = rates
            .iter()
            .map(|(domain, rate)| {
                let budget = Budget::new(store.clone(), format!("domain:{domain}"), *rate);
                (domain.clone(), budget)
            })
            .collect();
        Self {
            rests: Mutex::default(),
            budgets,
        }
    }

    /// Until when messages to `domain` wait, if it is resting.
    pub(super) fn resting(&self, domain: &str) -> Option<Duration> {
        let rests = self.rests();
        let rest = rests.get(domain)?;
        rest.until.checked_duration_since(Instant::now())
    }

    /// The domain's own cap, if it has one.
    pub(super) fn budget(&self, domain: &str) -> Option<&Budget> {
        self.budgets.get(domain)
    }

    /// A message to `domain` was put off with `reason`: the domain rests if the reason is the
    /// provider slowing us down.
    pub(super) fn put_off(&self, domain: &str, reason: &str) {
        if !slows_the_domain(reason) {
            return;
        }
        let mut rests = self.rests();
        let now = Instant::now();
        let rest = rests.entry(domain.to_owned()).or_insert(Rest {
            until: now,
            times: 0,
        });
        // Messages in flight together put off together: one rest for them, not one each.
        if rest.until > now {
            return;
        }
        let wait = FIRST_REST
            .saturating_mul(1 << rest.times.min(10))
            .min(LONGEST_REST);
        rest.times += 1;
        rest.until = now + wait;
        tracing::warn!(
            domain,
            rest_seconds = wait.as_secs(),
            "a recipient domain is slowing us down: its messages wait"
        );
    }

    /// A message to `domain` was taken: it keeps its pace again.
    pub(super) fn took(&self, domain: &str) {
        let mut rests = self.rests();
        if rests.remove(domain).is_some() {
            tracing::info!(domain, "a recipient domain takes mail again");
        }
    }

    fn rests(&self) -> std::sync::MutexGuard<'_, HashMap<String, Rest>> {
        self.rests.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a deferral (`RCPT TO: 421 4.7.0 Try again later`) is the provider slowing the
/// sender down, rather than this one message's trouble: a 421, or a 4.7.x status.
fn slows_the_domain(reason: &str) -> bool {
    let reply = reason.split_once(": ").map_or(reason, |(_, reply)| reply);
    let mut words = reply.split_whitespace();
    let code = words.next().unwrap_or_default();
    let status = words.next().unwrap_or_default();
    code.starts_with("421") || status.starts_with("4.7.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_provider_slowing_us_down_rests_its_domain() {
        assert!(slows_the_domain(
            "RCPT TO: 421 4.7.28 Our system has detected an unusual rate of mail"
        ));
        assert!(slows_the_domain("the message: 451 4.7.500 Server busy"));
        assert!(slows_the_domain("RCPT TO: 421 Service not available"));
        assert!(!slows_the_domain("RCPT TO: 452 4.2.2 Mailbox full"));
        assert!(!slows_the_domain(
            "RCPT TO: 450 4.1.8 Sender address rejected"
        ));
    }
}
