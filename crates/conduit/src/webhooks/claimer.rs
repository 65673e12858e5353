//! The claim loop: takes from the outbox what the commit hand-over did not.
//!
//! That is retries whose time has come, deliveries left behind by a killed
//! process, deliveries to receivers that were saturated, and replays. The loop
//! sleeps until the earliest of: a wake from the [`Gate`], the next due time in
//! the outbox, or shutdown. It never polls for new work: besides those it only
//! looks again once per lease length, for leases this process let run out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::dispatcher::Msg;
use super::gate::Gate;
use crate::app::App;
use crate::ids::{now, parse_time};

/// Most deliveries leased by one claim.
const CLAIM_BATCH: usize = 500;
/// How long to wait after the store failed.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Runs until shutdown.
pub(super) async fn run(app: Arc<App>, gate: Arc<Gate>, tx: mpsc::UnboundedSender<Msg>) {
    // Whatever a previous process leased is free: it cannot be sending any more.
    // LIMITATION: this assumes one dispatching process per database, which holds
    // for the embedded SQLite store; a shared database needs leases owned by an
    // instance id, released only when that instance is known to be gone.
    match app.store.release_deliveries(Vec::new()).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "released webhook leases of the previous run"),
        Err(err) => tracing::warn!(cause = %err, "cannot release old webhook leases"),
    }

    let mut due: Option<Instant> = Some(Instant::now());
    gate.plan(due.map(Instant::into_std));
    loop {
        // 1. Sleep until woken or due.
        tokio::select! {
            _ = app.shutdown.cancelled() => return,
            _ = gate.woken() => {}
            _ = sleep_until(due) => {}
        }

        // 2. Claim while there is room and work.
        let skip = gate.saturated();
        let mut failed = false;
        let mut full = false;
        loop {
            let room = gate.room().min(CLAIM_BATCH);
            if room == 0 {
                // The dispatcher wakes this loop when room frees up.
                full = true;
                break;
            }
            match app
                .store
                .claim_deliveries(room as u32, super::LEASE_SECS, &skip)
                .await
            {
                Ok(list) => {
                    let count = list.len();
                    if count > 0 {
                        gate.take(count);
                        tracing::debug!(count, "claimed webhook deliveries");
                        if tx.send(Msg::Deliver(list)).is_err() {
                            return;
                        }
                    }
                    if count < room {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(cause = %err, "cannot claim webhook deliveries");
                    failed = true;
                    break;
                }
            }
        }

        // 3. When to look again without a wake. At the latest after a lease's
        //    length: a lease this process dropped (its record failed, or it
        //    waited in memory too long) has run out by then.
        let lease_out = Instant::now() + Duration::from_secs(super::LEASE_SECS);
        due = if failed {
            Some(Instant::now() + ERROR_BACKOFF)
        } else if full {
            Some(lease_out)
        } else {
            match app.store.next_due_delivery(&skip).await {
                Ok(next) => Some(
                    next.as_deref()
                        .and_then(parse_time)
                        .map_or(lease_out, |at| {
                            let wait = (at - now()).to_std().unwrap_or(Duration::ZERO);
                            // Due already (it came due just now): look again shortly
                            // rather than spin.
                            (Instant::now() + wait.max(Duration::from_millis(10))).min(lease_out)
                        }),
                ),
                Err(err) => {
                    tracing::warn!(cause = %err, "cannot read the next webhook due time");
                    Some(Instant::now() + ERROR_BACKOFF)
                }
            }
        };
        gate.plan(due.map(Instant::into_std));
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
