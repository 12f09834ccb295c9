//! The worker's reading of the change feed ([`crate::store::Changes`]): which contacts and
//! campaigns changed, and when the feed was last read. A message is checked again against the
//! database just before MAIL FROM when its recipient or campaign changed after it was last
//! checked, and only goes once the feed has been read within [`FRESH`]: a change committed at T
//! is known to every sender by T + [`FRESH`], within the contract's second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::lock;
use crate::store::{Change, Store, StoreError};

/// How often the feed is read.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// How old the last reading may be when a message goes.
pub(crate) const FRESH: Duration = Duration::from_millis(500);
/// Changes remembered at most; past this the oldest are forgotten, and a message checked before
/// them is checked again in the database whatever changed.
const REMEMBERED: usize = 100_000;

pub(crate) struct Feed {
    state: Mutex<State>,
    /// Rung after every reading.
    read: Notify,
}

struct State {
    /// The feed's position at the last reading.
    position: u64,
    /// When the last successful reading began (`None`: not read yet).
    read_at: Option<Instant>,
    /// The latest change of each contact and campaign, by position.
    contacts: HashMap<i64, u64>,
    campaigns: HashMap<i64, u64>,
    /// The latest change that may concern anyone.
    anyone: u64,
    /// Changes up to here are forgotten.
    forgotten: u64,
}

impl Feed {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                position: 0,
                read_at: None,
                contacts: HashMap::new(),
                campaigns: HashMap::new(),
                anyone: 0,
                forgotten: 0,
            }),
            read: Notify::new(),
        }
    }

    /// Reads what changed since the last reading. The first reading only learns the position:
    /// claims made after it re-check everyone anyway.
    pub(crate) async fn read(&self, store: &Store) -> Result<(), StoreError> {
        let started = Instant::now();
        let (since, first) = {
            let state = lock(&self.state);
            (state.position, state.read_at.is_none())
        };
        let read = store.changes_since(since).await?;
        let mut state = lock(&self.state);
        if !first {
            for (seq, change) in read.changes {
                match change {
                    Change::Contact(id) => _ = state.contacts.insert(id, seq),
                    Change::Campaign(id) => _ = state.campaigns.insert(id, seq),
                    Change::Anyone => state.anyone = seq,
                }
            }
            if state.contacts.len() + state.campaigns.len() > REMEMBERED {
                state.contacts.clear();
                state.campaigns.clear();
                state.forgotten = read.position;
            }
        }
        state.position = read.position;
        state.read_at = Some(started);
        drop(state);
        self.read.notify_waiters();
        Ok(())
    }

    /// The position of the last reading: a claim or check begun after it sees every change up
    /// to it.
    pub(crate) fn position(&self) -> u64 {
        lock(&self.state).position
    }

    /// Whether the recipient or the campaign of a message last checked at position `checked`
    /// may have changed since.
    pub(crate) fn changed_since(&self, contact: i64, campaign: i64, checked: u64) -> bool {
        let state = lock(&self.state);
        let after = |seq: Option<&u64>| seq.is_some_and(|&seq| seq > checked);
        checked < state.forgotten
            || state.anyone > checked
            || after(state.contacts.get(&contact))
            || after(state.campaigns.get(&campaign))
    }

    /// Waits until the feed was read less than [`FRESH`] ago, or `give_up` says to stop waiting
    /// (checked at every reading and every [`POLL`]). `false` when given up.
    pub(crate) async fn fresh(&self, give_up: impl Fn() -> bool) -> bool {
        loop {
            let notified = self.read.notified();
            let read_at = lock(&self.state).read_at;
            if read_at.is_some_and(|at| at.elapsed() < FRESH) {
                return true;
            }
            if give_up() {
                return false;
            }
            let _ = tokio::time::timeout(POLL, notified).await;
        }
    }
}
