//! One attempt of one delivery: find the secret, sign, send, decide what comes
//! next, record it, and tell the endpoint's health tracker.

use std::time::{Duration, Instant};

use tracing::Instrument;

use super::dispatcher::Context;
use super::model::{Attempt, AttemptRecord, Delivery, Dispatch};
use super::retry::{Next, jitter, parse_retry_after};
use super::signing::{self, Secrets, Signed};
use crate::ids::{format_time, new_id, now, parse_time};

/// Most bytes of a receiver's answer kept in the attempt log.
const EXCERPT_BYTES: usize = 4096;

/// What the dispatcher learns when an attempt is over.
pub(super) struct Finished {
    /// The receiver the attempt was for (its concurrency slot, see
    /// [`super::model::receiver`]).
    pub receiver: String,
    /// Whether the receiver answered promptly (`None`: nothing was sent).
    pub healthy: Option<bool>,
    /// The next delivery of the lane, already leased.
    pub next: Option<Dispatch>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Succeeded,
    /// A non-2xx answer.
    Rejected,
    /// 410 Gone: the receiver asks never to be called again.
    Gone,
    Timeout,
    /// Connection or protocol failure.
    Error,
    /// The SSRF guard refused the address.
    Refused,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Succeeded => "succeeded",
            Kind::Rejected => "http_error",
            Kind::Gone => "gone",
            Kind::Timeout => "timeout",
            Kind::Error => "connect_error",
            Kind::Refused => "refused",
        }
    }
}

/// The result of the HTTP exchange.
struct Sent {
    kind: Kind,
    status_code: Option<u16>,
    error: Option<String>,
    excerpt: Option<String>,
    retry_after: Option<Duration>,
}

/// Runs one attempt of a leased delivery, start to end.
pub(super) async fn run(ctx: &Context, dispatch: Dispatch) -> Finished {
    let span = tracing::debug_span!(
        "webhook_attempt",
        delivery_id = %dispatch.delivery.id,
        event_id = %dispatch.delivery.event_id
    );
    attempt(ctx, dispatch).instrument(span).await
}

async fn attempt(ctx: &Context, dispatch: Dispatch) -> Finished {
    let d = &dispatch.delivery;
    // 1. Who signs, and whether the receiver is still wanted.
    let secrets = match secrets_for(ctx, d) {
        Ok(secrets) => secrets,
        Err(reason) => return drop_delivery(ctx, d, reason).await,
    };

    // 2. Sign and send.
    let attempt_id = new_id("att");
    let started_at = now();
    let clock = Instant::now();
    let sent = send(
        ctx,
        &dispatch,
        &secrets,
        &attempt_id,
        started_at.timestamp(),
    )
    .await;
    let elapsed = clock.elapsed();
    metrics::counter!("conduit_webhook_attempts_total", "outcome" => sent.kind.label())
        .increment(1);
    metrics::histogram!("conduit_webhook_attempt_seconds").record(elapsed.as_secs_f64());
    tracing::debug!(
        delivery_id = %d.id,
        event_id = %d.event_id,
        status = sent.status_code,
        outcome = sent.kind.label(),
        ms = elapsed.as_millis() as u64,
        "webhook attempt"
    );

    // 3. What comes next.
    let attempts = d.attempts as u32 + 1;
    let (status, next_at, retry_in) = decide(ctx, d, &sent, attempts);

    // 4. Record it; the lane's next delivery comes back leased.
    let record = AttemptRecord {
        delivery_id: d.id.clone(),
        attempt: Some(Attempt {
            id: attempt_id,
            delivery_id: d.id.clone(),
            attempt: attempts as i64,
            started_at: format_time(started_at),
            duration_ms: elapsed.as_millis() as i64,
            status_code: sent.status_code.map(i64::from),
            error: sent.error.clone(),
            response_excerpt: sent.excerpt,
        }),
        status: status.to_string(),
        next_attempt_at: next_at,
        error: None,
        lease_next: lease_next(ctx, d),
    };
    let next = match ctx.recorder.record(record).await {
        Some(next) => {
            if let Some(delay) = retry_in {
                ctx.app.webhooks.wake.due_at(Instant::now() + delay);
            }
            match next {
                Some(delivery) => with_body(ctx, delivery).await,
                None => None,
            }
        }
        None => None,
    };

    // 5. The endpoint's health: 410 and long failure runs disable it.
    if let Some(endpoint_id) = &d.endpoint_id {
        let gone = sent.kind == Kind::Gone;
        let ok = sent.kind == Kind::Succeeded;
        super::health::observe(&ctx.app, endpoint_id, ok, gone, sent.status_code).await;
    }

    let healthy = match sent.kind {
        Kind::Succeeded | Kind::Gone => true,
        Kind::Rejected => sent.status_code.is_some_and(|c| c < 500),
        Kind::Timeout | Kind::Error | Kind::Refused => false,
    };
    Finished {
        receiver: d.receiver(),
        healthy: Some(healthy),
        next,
    }
}

/// Whether the record should lease the lane's next delivery: not when shutting
/// down, and not for lanes of a single delivery (events of no task, replays).
fn lease_next(ctx: &Context, d: &Delivery) -> Option<u64> {
    let single = d.task_id.is_none() || d.lane.starts_with("replay:");
    (!single && !ctx.app.shutdown.is_cancelled()).then_some(super::LEASE_SECS)
}

/// The delivery's next status and due time after this attempt.
/// Also returns the retry delay, if one was scheduled.
fn decide(
    ctx: &Context,
    d: &Delivery,
    sent: &Sent,
    attempts: u32,
) -> (&'static str, Option<String>, Option<Duration>) {
    match sent.kind {
        Kind::Succeeded => ("succeeded", None, None),
        Kind::Gone => {
            tracing::warn!(delivery_id = %d.id, event_id = %d.event_id, "webhook receiver answered 410 Gone; giving up");
            ("dead", None, None)
        }
        _ => match ctx
            .retry
            .after_failure(attempts, sent.retry_after, jitter())
        {
            Next::Retry(delay) => {
                tracing::warn!(
                    delivery_id = %d.id,
                    event_id = %d.event_id,
                    attempt = attempts,
                    status = sent.status_code,
                    delay_ms = delay.as_millis() as u64,
                    "webhook attempt failed; retry scheduled"
                );
                let at = now() + chrono::Duration::from_std(delay).unwrap_or_default();
                ("failed", Some(format_time(at)), Some(delay))
            }
            Next::GiveUp => {
                tracing::warn!(delivery_id = %d.id, event_id = %d.event_id, attempt = attempts, "webhook delivery dead after its last retry");
                ("dead", None, None)
            }
        },
    }
}

/// The secrets that sign `d`: a registered endpoint's own, or for a task's
/// `webhook_url` its key's. Fails when the endpoint or key is gone or disabled.
fn secrets_for(ctx: &Context, d: &Delivery) -> Result<Secrets, &'static str> {
    let at = now();
    if let Some(endpoint_id) = &d.endpoint_id {
        let endpoint = ctx
            .app
            .webhooks
            .endpoints
            .get(endpoint_id)
            .ok_or("endpoint deleted")?;
        if endpoint.status != "active" {
            return Err("endpoint disabled");
        }
        let previous = endpoint
            .previous_secret
            .as_ref()
            .filter(|(_, until)| parse_time(until).is_some_and(|u| u > at))
            .map(|(secret, _)| secret.clone());
        return Ok(Secrets {
            current: endpoint.secret.clone(),
            previous,
        });
    }
    let key_id = d.key_id.as_deref().ok_or("no key")?;
    let key = ctx.app.keys.by_id(key_id).ok_or("key deleted")?;
    let previous = key
        .previous_webhook_secret
        .as_ref()
        .filter(|(_, until)| *until > at)
        .map(|(secret, _)| secret.clone());
    Ok(Secrets {
        current: key.webhook_secret.clone(),
        previous,
    })
}

/// Marks a delivery cancelled without sending it.
async fn drop_delivery(ctx: &Context, d: &Delivery, reason: &str) -> Finished {
    tracing::debug!(delivery_id = %d.id, reason, "webhook delivery cancelled before sending");
    let record = AttemptRecord {
        delivery_id: d.id.clone(),
        attempt: None,
        status: "cancelled".into(),
        next_attempt_at: None,
        error: Some(reason.to_string()),
        lease_next: lease_next(ctx, d),
    };
    let next = match ctx.recorder.record(record).await.flatten() {
        Some(delivery) => with_body(ctx, delivery).await,
        None => None,
    };
    Finished {
        receiver: d.receiver(),
        healthy: None,
        next,
    }
}

/// Attaches the event's body to a delivery leased by a record: from the
/// commit-time cache, else from the event log.
async fn with_body(ctx: &Context, delivery: Delivery) -> Option<Dispatch> {
    let body = match ctx.app.webhooks.wake.body(delivery.event_position) {
        Some(body) => body,
        None => match ctx.app.store.event(&delivery.event_id).await {
            Ok(Some(event)) => event.body,
            other => {
                // The lease runs out and a later claim tries again.
                tracing::error!(delivery_id = %delivery.id, found = ?other.map(|e| e.is_some()), "cannot read the event of a webhook delivery");
                return None;
            }
        },
    };
    Some(Dispatch {
        delivery,
        body,
        leased_at: Instant::now(),
    })
}

/// Signs and sends one request; reads at most [`EXCERPT_BYTES`] of the answer.
async fn send(
    ctx: &Context,
    dispatch: &Dispatch,
    secrets: &Secrets,
    attempt_id: &str,
    timestamp: i64,
) -> Sent {
    let d = &dispatch.delivery;
    let failed = |kind, error: String| Sent {
        kind,
        status_code: None,
        error: Some(error),
        excerpt: None,
        retry_after: None,
    };

    // 1. A literal address never meets the resolver: check it here.
    if let Err(reason) = ctx.policy.check_url(&d.url) {
        return failed(
            Kind::Refused,
            format!("refused by the SSRF guard: {reason}"),
        );
    }

    // 2. The request.
    let signed = Signed {
        event_id: &d.event_id,
        event_type: &d.event_type,
        attempt_id,
        timestamp,
        body: &dispatch.body,
    };
    let headers = signing::headers(secrets, &signed, d.headers.as_ref());
    let request = ctx
        .client
        .post(&d.url)
        .headers(headers)
        .body(dispatch.body.clone());
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            if let Some(reason) = super::client::refusal(&err) {
                return failed(
                    Kind::Refused,
                    format!("refused by the SSRF guard: {reason}"),
                );
            }
            let kind = if err.is_timeout() {
                Kind::Timeout
            } else {
                Kind::Error
            };
            return failed(kind, describe(&err));
        }
    };

    // 3. The answer.
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now()));
    let mut excerpt = Vec::new();
    let mut error = None;
    while excerpt.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                error = Some(describe(&err));
                break;
            }
        }
    }
    excerpt.truncate(EXCERPT_BYTES);
    let kind = match status.as_u16() {
        200..=299 if error.is_none() => Kind::Succeeded,
        200..=299 => Kind::Error,
        410 => Kind::Gone,
        _ => Kind::Rejected,
    };
    if kind == Kind::Rejected && error.is_none() {
        error = Some(match status.as_u16() {
            300..=399 => format!("HTTP {status}: redirects are not followed"),
            _ => format!("HTTP {status}"),
        });
    }
    Sent {
        kind,
        status_code: Some(status.as_u16()),
        error,
        excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
        retry_after,
    }
}

/// A request error in a few words, without the URL (it may carry a token).
fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}
