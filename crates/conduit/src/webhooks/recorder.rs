//! Group-recording of attempts.
//!
//! Every finished attempt writes its attempt row, its delivery's new state and,
//! for a delivery that is done, the lease of the next one in its lane. Sent one
//! by one, each would cost the store's writer a savepoint of its own; the
//! recorder instead collects whatever attempts finished while the previous batch
//! was being committed and records them in one store call.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::model::{AttemptRecord, Delivery};
use crate::store::Store;

/// Most attempts recorded in one store call.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Option<Option<Delivery>>>;

/// The handle attempts record through.
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<(AttemptRecord, Reply)>,
}

impl Recorder {
    /// Starts the recording task; it ends when the last handle is dropped.
    pub(super) fn start(store: Arc<dyn Store>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Recorder { tx }
    }

    /// Records one attempt; returns the lane's next delivery (leased) if the
    /// record asked for it, or `None` if the store failed.
    pub(super) async fn record(&self, record: AttemptRecord) -> Option<Option<Delivery>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((record, reply)).ok()?;
        answer.await.ok().flatten()
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<(AttemptRecord, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        // 1. Everything that finished meanwhile.
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }

        // 2. One store call; every attempt hears how it went.
        let (records, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        match store.record_attempts(records).await {
            Ok(next) => {
                for (reply, next) in replies.into_iter().zip(next) {
                    let _ = reply.send(Some(next));
                }
            }
            Err(err) => {
                // The leases run out and later claims try again.
                tracing::error!(cause = %err, count = replies.len(), "cannot record webhook attempts");
                for reply in replies {
                    let _ = reply.send(None);
                }
            }
        }
    }
}
