//! The sending rate of the whole installation (`CANVASS_SEND_RATE`): every worker on the
//! database draws its messages from one token bucket kept there ([`Store::draw_send_budget`]),
//! a few at a time, so that the rate holds for all of them together, on every host. A worker
//! that dies loses what it drew and had not sent (a quarter of a second's worth at most): the
//! others never send faster for it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::store::{Draw, Store, StoreError};

/// Messages per second, above 0; fractions allowed (`0.5`: one every two seconds).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(f64);

impl Rate {
    /// The most any installation would want: far beyond any relay's quota.
    const HIGHEST: f64 = 100_000.0;

    pub fn per_second(self) -> f64 {
        self.0
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rate: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not a number of messages a second"))?;
        rate.try_into()
    }
}

impl TryFrom<f64> for Rate {
    type Error = String;

    fn try_from(rate: f64) -> Result<Self, Self::Error> {
        match rate.is_finite() && rate > 0.0 && rate <= Self::HIGHEST {
            true => Ok(Self(rate)),
            false => Err(format!(
                "must be above 0 and at most {} messages a second",
                Self::HIGHEST
            )),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The bucket the whole installation draws from.
const SCOPE: &str = "all";

/// This worker's draws on the installation's bucket, shared by its senders.
pub struct Budget {
    store: Store,
    rate: Rate,
    /// Tokens drawn at a time: a quarter of a second's worth, one at least.
    draw: f64,
    /// Drawn and not yet spent; whether the rate has been set in the database.
    held: tokio::sync::Mutex<(f64, bool)>,
}

impl Budget {
    pub fn new(store: Store, rate: Rate) -> Self {
        Self {
            store,
            rate,
            draw: (rate.per_second() / 4.0).floor().max(1.0),
            held: tokio::sync::Mutex::new((0.0, false)),
        }
    }

    /// Waits for one message's share of the rate; `false` if `stopping` says to stop first.
    pub async fn take(&self, stopping: impl Fn() -> bool) -> Result<bool, StoreError> {
        let mut held = self.held.lock().await;
        let (tokens, declared) = &mut *held;
        if !*declared {
            self.store
                .set_send_rate(SCOPE, self.rate.per_second())
                .await?;
            *declared = true;
        }
        loop {
            if *tokens >= 1.0 {
                *tokens -= 1.0;
                return Ok(true);
            }
            if stopping() {
                return Ok(false);
            }
            match self.store.draw_send_budget(SCOPE, self.draw).await? {
                Draw::Taken => *tokens += self.draw,
                Draw::Wait(seconds) => {
                    // In short sleeps, so that a stop is heard at once.
                    let wait = Duration::from_secs_f64(seconds.clamp(0.002, 0.1));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_fractions_and_refuse_nonsense() {
        assert_eq!("0.5".parse::<Rate>().unwrap().per_second(), 0.5);
        assert_eq!(" 20 ".parse::<Rate>().unwrap().per_second(), 20.0);
        for bad in ["0", "-1", "NaN", "inf", "fast", "1e9"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
