//! Unsubscribes arrive in bursts (a campaign goes out, people click), and each must be
//! committed before its 200. Writer tasks apply them: each takes every request waiting when it
//! is free and writes them in one transaction, so that concurrent requests share a commit
//! instead of queueing for the database's writer one by one. A lone request is written at once;
//! nothing waits to fill a batch.

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{
    MAX_UNSUBSCRIBE_BATCH, Store, StoreError, UnsubscribeOutcome, UnsubscribeRequest,
};

/// Requests waiting beyond this are held back at the sender (the HTTP handler waits).
const QUEUE_DEPTH: usize = 4 * MAX_UNSUBSCRIBE_BATCH;

type Reply = oneshot::Sender<Result<UnsubscribeOutcome, StoreError>>;

/// The handle requests go through. Cloning it is cheap; the task ends when every handle is gone.
#[derive(Clone)]
pub(super) struct Unsubscriber {
    queue: mpsc::Sender<(UnsubscribeRequest, Reply)>,
}

impl Unsubscriber {
    /// Starts the task that writes the requests to `store`.
    pub(super) fn start(store: Store) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let requests = Arc::new(Mutex::new(requests));
        for _ in 0..store.concurrent_writers() {
            tokio::spawn(run(store.clone(), requests.clone()));
        }
        Self { queue }
    }

    /// Unsubscribes the person; returns once it is committed.
    pub(super) async fn unsubscribe(
        &self,
        request: UnsubscribeRequest,
    ) -> Result<UnsubscribeOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((request, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// One writer: takes what is waiting, writes it, answers. SQLite has one; PostgreSQL, whose
/// transactions commit side by side, several.
async fn run(store: Store, requests: Arc<Mutex<mpsc::Receiver<(UnsubscribeRequest, Reply)>>>) {
    let mut batch = Vec::with_capacity(MAX_UNSUBSCRIBE_BATCH);
    loop {
        let received = requests
            .lock()
            .await
            .recv_many(&mut batch, MAX_UNSUBSCRIBE_BATCH)
            .await;
        if received == 0 {
            break;
        }
        let (people, replies): (Vec<UnsubscribeRequest>, Vec<Reply>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let result = store.unsubscribe(&people).await;
        tracing::debug!(requests = people.len(), elapsed = ?started.elapsed(), "unsubscribe batch");
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::error!(%error, requests = people.len(), "unsubscribing; rolled back");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable));
                }
            }
        }
    }
}
