//! The relays as the worker uses them: each message goes through one picked by weight among
//! those that can take it now. A relay that cannot be reached, refuses our login or puts off
//! our sender (a quota at MAIL FROM) rests, longer each time, while the others carry on; one
//! at its hourly or daily cap waits for its window, which is no failure. Only when every relay
//! needs a person (a refused login, TLS, our sender refused) does the campaign pause, as it
//! does with one relay. A message is handed to another relay only while nothing of it has been
//! sent: a recipient's refusal is the recipient's, whatever the relay.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::budget::Budget;
use crate::mail::{Relays, SendFailure, Trouble};
use crate::store::{Store, StoreError};

/// How long a relay that needs a person rests before it is tried again.
const BROKEN_REST: Duration = Duration::from_secs(3600);

/// What is known of each relay, and each relay's own rate.
pub(super) struct Relaying {
    relays: Relays,
    budgets: Vec<Option<Budget>>,
    states: Mutex<Vec<State>>,
    /// The longest rest after a passing trouble.
    longest_rest: Duration,
}

#[derive(Default)]
struct State {
    /// Not tried before this.
    resting_until: Option<Instant>,
    /// Troubles in a row, for the length of the next rest.
    failures: u32,
    /// At a cap until this.
    full_until: Option<Instant>,
    /// What made it need a person, if that is why it rests.
    broken: Option<SendFailure>,
}

impl Relaying {
    pub(super) fn new(store: &Store, relays: Relays, longest_rest: Duration) -> Self {
        let budgets = relays
            .iter()
            .map(|relay| {
                relay
                    .limits
                    .rate
                    .map(|rate| Budget::new(store.clone(), format!("relay:{}", relay.name), rate))
            })
            .collect();
        let states = relays.iter().map(|_| State::default()).collect();
        Self {
            relays,
            budgets,
            states: Mutex::new(states),
            longest_rest,
        }
    }

    pub(super) fn relays(&self) -> &Relays {
        &self.relays
    }

    /// Whether another relay may take the message after `failure` (which took nothing of it):
    /// there is one, and the failure is the relay's. A sender refused (5xx to MAIL FROM) is the
    /// campaign's From address, which no other relay would take either: its campaign pauses.
    pub(super) fn turn_elsewhere(&self, failure: &SendFailure) -> bool {
        self.relays.len() > 1
            && matches!(
                failure,
                SendFailure::Unavailable { trouble, .. } if *trouble != Trouble::Sender
            )
    }

    pub(super) fn budget(&self, index: usize) -> Option<&Budget> {
        self.budgets[index].as_ref()
    }

    /// A relay that can take a message now, picked by weight; else the failure to report:
    /// what made every relay need a person when each does (the campaign pauses), or that
    /// every relay rests or is at its cap (the sender waits).
    pub(super) fn pick(&self) -> Result<usize, SendFailure> {
        let states = self.states();
        let now = Instant::now();
        let usable: Vec<usize> = (0..states.len())
            .filter(|&i| {
                let state = &states[i];
                state.resting_until.is_none_or(|until| until <= now)
                    && state.full_until.is_none_or(|until| until <= now)
            })
            .collect();
        let total: u32 = usable
            .iter()
            .map(|&i| self.relays.get(i).limits.weight)
            .sum();
        if total > 0 {
            let mut ticket = rand::rng().random_range(0..total);
            for &i in &usable {
                let weight = self.relays.get(i).limits.weight;
                if ticket < weight {
                    return Ok(i);
                }
                ticket -= weight;
            }
        }
        if let Some(broken) = states
            .iter()
            .map(|s| s.broken.clone())
            .collect::<Option<Vec<_>>>()
        {
            return Err(broken.into_iter().last().expect("there is a relay"));
        }
        let full = states
            .iter()
            .any(|state| state.full_until.is_some_and(|until| until > now));
        Err(SendFailure::Unavailable {
            reason: if full {
                "every relay is resting or at its cap for now".into()
            } else {
                "every relay is resting after trouble".into()
            },
            trouble: if full {
                Trouble::Throttled
            } else {
                Trouble::Connection
            },
        })
    }

    /// Rests a relay after `failure` (which took nothing of the message): an hour when it
    /// needs a person, else 1, 2, 4 ... seconds up to the longest rest.
    pub(super) fn rest(&self, index: usize, failure: &SendFailure) {
        let mut states = self.states();
        let state = &mut states[index];
        let needs_a_person = matches!(
            failure,
            SendFailure::Unavailable { trouble, .. } if trouble.needs_a_person()
        );
        let rest = if needs_a_person {
            state.broken = Some(failure.clone());
            BROKEN_REST
        } else {
            Duration::from_secs(1 << state.failures.min(16)).min(self.longest_rest)
        };
        state.failures += 1;
        state.resting_until = Some(Instant::now() + rest);
        tracing::warn!(
            relay = %self.relays.get(index).transport,
            rest_seconds = rest.as_secs(),
            "a relay rests: {}",
            failure.reason()
        );
    }

    /// The relay took a message: it is well.
    pub(super) fn answered(&self, index: usize) {
        let mut states = self.states();
        let state = &mut states[index];
        if state.failures > 0 || state.broken.is_some() {
            *state = State::default();
        }
    }

    /// The relay's own rate allows no message for `wait`: others take them meanwhile.
    pub(super) fn slow(&self, index: usize, wait: Duration) {
        self.states()[index].full_until = Some(Instant::now() + wait);
    }

    /// Gives back a place counted against the relay's caps for a message it did not take.
    pub(super) async fn uncount(&self, store: &Store, index: usize) -> Result<(), StoreError> {
        let limits = &self.relays.get(index).limits;
        if limits.hourly.is_none() && limits.daily.is_none() {
            return Ok(());
        }
        store
            .uncount_relay_message(&self.relays.get(index).name)
            .await
    }

    /// RunningTotals one message against the relay's caps; `false` (and it waits for its window)
    /// when it is at one.
    pub(super) async fn count(&self, store: &Store, index: usize) -> Result<bool, StoreError> {
        let limits = &self.relays.get(index).limits;
        if limits.hourly.is_none() && limits.daily.is_none() {
            return Ok(true);
        }
        let now = Utc::now();
        let full = store
            .count_relay_message(
                &self.relays.get(index).name,
                limits.hourly,
                limits.daily,
                now,
            )
            .await?;
        if let Some(until) = full {
            self.full(index, until, now);
        }
        Ok(full.is_none())
    }

    fn full(&self, index: usize, until: DateTime<Utc>, now: DateTime<Utc>) {
        let wait = (until - now).to_std().unwrap_or_default();
        self.states()[index].full_until = Some(Instant::now() + wait);
        tracing::info!(
            relay = %self.relays.get(index).transport,
            "a relay is at its cap until {until}: mail waits for it or goes through another"
        );
    }

    fn states(&self) -> std::sync::MutexGuard<'_, Vec<State>> {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
