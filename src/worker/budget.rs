//! The sending rate of the whole installation (`CANVASS_SEND_RATE`): every worker on the
//! database draws its messages from one token bucket kept there ([`Store::draw_send_budget`]),
//! a few at a time, so that the rate holds for all of them together, on every host. A worker
//! that dies loses what it drew and had not sent (a quarter of a second's worth at most): the
//! others never send faster for it.

use std::time::Duration;

use crate::domain::Rate;
use crate::store::{Draw, Store, StoreError};

/// How long a draw may wait for the database.
const DRAW_PATIENCE: Duration = Duration::from_secs(2);

/// This worker's draws on a bucket (the installation's, or a relay's), shared by its senders.
pub struct Budget {
    store: Store,
    /// The bucket: `all` (the installation), or `relay:HOST:PORT`.
    scope: String,
    rate: Rate,
    /// Tokens drawn at a time: a quarter of a second's worth, one at least.
    draw: f64,
    /// Drawn and not yet spent; whether the rate has been set in the database.
    held: tokio::sync::Mutex<(f64, bool)>,
}

impl Budget {
    pub fn new(store: Store, scope: String, rate: Rate) -> Self {
        Self {
            store,
            scope,
            rate,
            draw: (rate.per_second() / 4.0).floor().max(1.0),
            held: tokio::sync::Mutex::new((0.0, false)),
        }
    }

    /// Waits for one message's share of the rate; `false` if `stopping` says to stop first, or
    /// the database does not answer in time (the message is held back).
    pub async fn take(&self, stopping: impl Fn() -> bool) -> Result<bool, StoreError> {
        Ok(matches!(
            self.take_within(Duration::MAX, stopping).await?,
            Taken::Yes
        ))
    }

    /// One message's share, waited for only while the wait is shorter than `patience`; else
    /// how long it would be.
    pub async fn take_within(
        &self,
        patience: Duration,
        stopping: impl Fn() -> bool,
    ) -> Result<Taken, StoreError> {
        // Another sender may be waiting on the bucket: that wait counts against the patience.
        let Ok(mut held) = tokio::time::timeout(patience, self.held.lock()).await else {
            return Ok(Taken::Later(patience));
        };
        let (tokens, declared) = &mut *held;
        if !*declared {
            self.store
                .set_send_rate(&self.scope, self.rate.per_second())
                .await?;
            *declared = true;
        }
        loop {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                return Ok(Taken::Yes);
            }
            if stopping() {
                return Ok(Taken::Stopping);
            }
            // A database slow to answer holds the message back (it goes again later) rather
            // than the sender and its leases; one that is down fails the recording of that,
            // which stops the worker until it answers.
            let Ok(drawn) = tokio::time::timeout(
                DRAW_PATIENCE,
                self.store.draw_send_budget(&self.scope, self.draw),
            )
            .await
            else {
                return Ok(Taken::Later(DRAW_PATIENCE));
            };
            match drawn? {
                Draw::Taken(taken) => *tokens += taken,
                Draw::Wait(seconds) => {
                    let wait = Duration::from_secs_f64(seconds.clamp(0.0, 3600.0));
                    if wait > patience {
                        return Ok(Taken::Later(wait));
                    }
                    // In short sleeps, so that a stop is heard at once.
                    let wait = wait.clamp(Duration::from_millis(2), Duration::from_millis(100));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// What asking for a message's share came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Yes,
    /// Not within the patience given: it would take this long.
    Later(Duration),
    Stopping,
}
