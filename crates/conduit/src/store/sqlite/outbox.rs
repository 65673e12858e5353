//! The webhook outbox in SQLite: endpoints, deliveries and attempts.
//!
//! Deliveries are claimed with a lease (`lease_until`): a dispatcher that dies
//! leaves its leased rows to be claimed again once the lease has passed. A
//! delivery is only claimable when no earlier delivery of its lane (one task and
//! one receiver) is still pending or failed, which keeps per-task order.

use chrono::Duration;
use sqlx::sqlite::SqliteConnection;

use super::rows;
use crate::ids::{format_time, now};
use crate::store::StoreResult;
use crate::webhooks::model::{AttemptRecord, Delivery, Endpoint, NewDelivery};

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    deliveries: &[NewDelivery],
    ts: &str,
) -> StoreResult<usize> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, event_position, event_id, event_type, key_id, task_id, endpoint_id, url, headers, lane, status, attempts, next_attempt_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
        )
        .bind(&d.id)
        .bind(d.event_position)
        .bind(&d.event_id)
        .bind(&d.event_type)
        .bind(&d.key_id)
        .bind(&d.task_id)
        .bind(&d.endpoint_id)
        .bind(&d.url)
        .bind(d.headers.as_ref().and_then(|h| serde_json::to_string(h).ok()))
        .bind(&d.lane)
        .bind(ts)
        .bind(ts)
        .bind(ts)
        .execute(&mut *conn)
        .await?;
    }
    Ok(deliveries.len())
}

pub(super) async fn claim(
    conn: &mut SqliteConnection,
    limit: u32,
    lease_secs: u64,
) -> StoreResult<Vec<Delivery>> {
    let now_time = now();
    let ts = format_time(now_time);
    let until = format_time(now_time + Duration::seconds(lease_secs as i64));
    let found = sqlx::query(
        "SELECT d.* FROM webhook_deliveries d
         WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= ?1
           AND (d.lease_until IS NULL OR d.lease_until < ?1)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                           WHERE e.lane = d.lane AND e.event_position < d.event_position
                             AND e.status IN ('pending', 'failed'))
         ORDER BY d.next_attempt_at, d.event_position
         LIMIT ?2",
    )
    .bind(&ts)
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        let delivery = rows::delivery(row)?;
        sqlx::query("UPDATE webhook_deliveries SET lease_until = ? WHERE id = ?")
            .bind(&until)
            .bind(&delivery.id)
            .execute(&mut *conn)
            .await?;
        out.push(delivery);
    }
    Ok(out)
}

pub(super) async fn record(
    conn: &mut SqliteConnection,
    record: &AttemptRecord,
    ts: &str,
) -> StoreResult<()> {
    let a = &record.attempt;
    sqlx::query(
        "INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.id)
    .bind(&a.delivery_id)
    .bind(a.attempt)
    .bind(&a.started_at)
    .bind(a.duration_ms)
    .bind(a.status_code)
    .bind(&a.error)
    .bind(&a.response_excerpt)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status_code = ?, last_error = ?,
           next_attempt_at = ?, lease_until = NULL, updated_at = ?
         WHERE id = ? AND status NOT IN ('cancelled', 'succeeded')",
    )
    .bind(&record.status)
    .bind(a.status_code)
    .bind(&a.error)
    .bind(&record.next_attempt_at)
    .bind(ts)
    .bind(&a.delivery_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn retry(conn: &mut SqliteConnection, id: &str, ts: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
    )
    .bind(ts)
    .bind(ts)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn cancel_endpoint(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    ts: &str,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL, updated_at = ?
         WHERE endpoint_id = ? AND status IN ('pending', 'failed')",
    )
    .bind(ts)
    .bind(endpoint_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

pub(super) async fn write_endpoint(conn: &mut SqliteConnection, e: &Endpoint) -> StoreResult<()> {
    let (previous, previous_until) = match &e.previous_secret {
        Some((secret, until)) => (Some(secret.clone()), Some(until.clone())),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, key_id, url, description, events, rate_limit, secret, previous_secret, previous_expires, status, disabled_reason, headers, last_success_at, failing_since, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, description = excluded.description, events = excluded.events,
           rate_limit = excluded.rate_limit, secret = excluded.secret, previous_secret = excluded.previous_secret,
           previous_expires = excluded.previous_expires, status = excluded.status, disabled_reason = excluded.disabled_reason,
           headers = excluded.headers, last_success_at = excluded.last_success_at, failing_since = excluded.failing_since,
           updated_at = excluded.updated_at",
    )
    .bind(&e.id)
    .bind(&e.key_id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(serde_json::to_string(&e.events).unwrap_or_else(|_| "[]".into()))
    .bind(e.rate_limit.map(i64::from))
    .bind(&e.secret)
    .bind(previous)
    .bind(previous_until)
    .bind(&e.status)
    .bind(&e.disabled_reason)
    .bind(serde_json::to_string(&e.headers).unwrap_or_else(|_| "{}".into()))
    .bind(&e.last_success_at)
    .bind(&e.failing_since)
    .bind(&e.created_at)
    .bind(&e.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
