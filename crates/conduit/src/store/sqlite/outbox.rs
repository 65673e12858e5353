//! The webhook outbox in SQLite: endpoints, deliveries and attempts.
//!
//! A delivery is sent by whoever holds its lease (`lease_until`). A dispatcher
//! that dies leaves its leased rows to be claimed again once the lease has passed
//! (or at once when the next process starts, see [`release_all`]).
//!
//! Ordering: a delivery is only claimable when no earlier delivery of its lane
//! (one task and one receiver) is still `pending` or `failed`. A leased row is
//! still `pending`, so a delivery in flight blocks the rest of its lane too.
//!
//! There are three ways a delivery gets leased:
//! - at insert, in the event's own transaction, when it is the head of its lane
//!   and the dispatcher said it can take it (the hot path: no claim round trip);
//! - when the attempt before it in its lane is recorded (same transaction);
//! - by a claim (see [`super::claims`]), for retries that came due and anything
//!   left behind.

use std::collections::HashSet;
use std::time::Instant;

use chrono::Duration;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows;
use crate::ids::{format_time, now};
use crate::store::StoreResult;
use crate::webhooks::model::{AttemptRecord, Delivery, Dispatch, Endpoint, NewDelivery};

/// Rows of one lane that are still to be sent.
pub(super) const OPEN: &str = "status IN ('pending', 'failed')";

/// Rows written by one multi-row `INSERT`.
const INSERT_CHUNK: usize = 64;

/// What [`insert`] wrote.
pub(super) struct Inserted {
    pub written: usize,
    /// Deliveries leased in the same transaction, to hand to the dispatcher after the commit.
    pub leased: Vec<Dispatch>,
}

/// The lease's end for a lease taken now.
pub(super) fn lease_end(lease_secs: u64) -> String {
    format_time(now() + Duration::seconds(lease_secs as i64))
}

/// Writes deliveries; leases those the dispatcher can take that head their lane.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    deliveries: &[NewDelivery],
    ts: &str,
) -> StoreResult<Inserted> {
    let until = lease_end(crate::webhooks::LEASE_SECS);

    // 1. Lanes that already hold an open delivery (all of it earlier than these).
    let mut busy: HashSet<String> = HashSet::new();
    let wanted: Vec<&str> = deliveries
        .iter()
        .filter(|d| d.lease)
        .map(|d| d.lane.as_str())
        .collect();
    for chunk in wanted.chunks(500) {
        let mut sql = QueryBuilder::<Sqlite>::new(format!(
            "SELECT DISTINCT lane FROM webhook_deliveries WHERE {OPEN} AND lane IN ("
        ));
        let mut list = sql.separated(", ");
        for lane in chunk {
            list.push_bind(lane.to_string());
        }
        sql.push(")");
        for row in sql.build().fetch_all(&mut *conn).await? {
            busy.insert(row.try_get(0)?);
        }
    }

    // 2. Hot: wanted by the dispatcher and first open one of its lane; every
    //    row makes its lane busy for the rows after it.
    let hot: Vec<bool> = deliveries
        .iter()
        .map(|d| {
            let free = !busy.contains(&d.lane);
            busy.insert(d.lane.clone());
            d.lease && free
        })
        .collect();

    // 3. The rows, a chunk per statement.
    for (chunk, hot) in deliveries
        .chunks(INSERT_CHUNK)
        .zip(hot.chunks(INSERT_CHUNK))
    {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_deliveries (id, event_position, event_id, event_type, key_id, task_id, endpoint_id, url, headers, lane, status, attempts, next_attempt_at, lease_until, created_at, updated_at) ",
        );
        sql.push_values(chunk.iter().zip(hot), |mut row, (d, hot)| {
            row.push_bind(d.id.clone())
                .push_bind(d.event_position)
                .push_bind(d.event_id.clone())
                .push_bind(d.event_type.clone())
                .push_bind(d.key_id.clone())
                .push_bind(d.task_id.clone())
                .push_bind(d.endpoint_id.clone())
                .push_bind(d.url.clone())
                .push_bind(
                    d.headers
                        .as_ref()
                        .and_then(|h| serde_json::to_string(h).ok()),
                )
                .push_bind(d.lane.clone())
                .push("'pending'")
                .push("0")
                .push_bind(ts.to_string())
                .push_bind(hot.then(|| until.clone()))
                .push_bind(ts.to_string())
                .push_bind(ts.to_string());
        });
        sql.build().execute(&mut *conn).await?;
    }

    let leased_at = Instant::now();
    let leased = deliveries
        .iter()
        .zip(&hot)
        .filter(|(_, hot)| **hot)
        .map(|(d, _)| Dispatch {
            delivery: new_record(d, ts),
            body: d.body.clone(),
            leased_at,
        })
        .collect();
    Ok(Inserted {
        written: deliveries.len(),
        leased,
    })
}

/// The stored form of a delivery just inserted.
fn new_record(d: &NewDelivery, ts: &str) -> Delivery {
    Delivery {
        id: d.id.clone(),
        event_position: d.event_position,
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        key_id: d.key_id.clone(),
        task_id: d.task_id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        url: d.url.clone(),
        headers: d.headers.clone(),
        lane: d.lane.clone(),
        status: "pending".into(),
        attempts: 0,
        last_status_code: None,
        last_error: None,
        next_attempt_at: Some(ts.to_string()),
        created_at: ts.to_string(),
        updated_at: ts.to_string(),
    }
}

/// Records attempts and their deliveries' next states; for each delivery that
/// is done and whose record asks for it, leases the next due delivery of its lane.
pub(super) async fn record(
    conn: &mut SqliteConnection,
    records: &[AttemptRecord],
    ts: &str,
) -> StoreResult<Vec<Option<Delivery>>> {
    // 1. The attempts that were made, a chunk per statement.
    let attempts: Vec<_> = records.iter().filter_map(|r| r.attempt.as_ref()).collect();
    for chunk in attempts.chunks(INSERT_CHUNK) {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt) ",
        );
        sql.push_values(chunk, |mut row, a| {
            row.push_bind(a.id.clone())
                .push_bind(a.delivery_id.clone())
                .push_bind(a.attempt)
                .push_bind(a.started_at.clone())
                .push_bind(a.duration_ms)
                .push_bind(a.status_code)
                .push_bind(a.error.clone())
                .push_bind(a.response_excerpt.clone());
        });
        sql.build().execute(&mut *conn).await?;
    }

    let mut next = Vec::with_capacity(records.len());
    for record in records {
        // 2. The delivery, unless it was cancelled (or finished) meanwhile.
        let (counted, code, error) = match &record.attempt {
            Some(a) => (1, a.status_code, a.error.clone()),
            None => (0, None, record.error.clone()),
        };
        let lane: Option<String> = sqlx::query(&format!(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + ?, last_status_code = COALESCE(?, last_status_code),
               last_error = ?, next_attempt_at = ?, lease_until = NULL, updated_at = ?
             WHERE id = ? AND {OPEN} RETURNING lane"
        ))
        .bind(&record.status)
        .bind(counted)
        .bind(code)
        .bind(&error)
        .bind(&record.next_attempt_at)
        .bind(ts)
        .bind(&record.delivery_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;

        // 3. The lane's next delivery, now that this one no longer blocks it.
        next.push(match (lane, record.lease_next) {
            (Some(lane), Some(lease_secs)) if record.status != "failed" => {
                lease_lane_head(conn, &lane, ts, lease_secs).await?
            }
            _ => None,
        });
    }
    Ok(next)
}

/// Leases the open head of `lane` if it is due and unleased.
async fn lease_lane_head(
    conn: &mut SqliteConnection,
    lane: &str,
    ts: &str,
    lease_secs: u64,
) -> StoreResult<Option<Delivery>> {
    let head = sqlx::query(&format!(
        "UPDATE webhook_deliveries SET lease_until = ?1
         WHERE id = (SELECT id FROM webhook_deliveries WHERE lane = ?2 AND {OPEN}
                     ORDER BY event_position LIMIT 1)
           AND next_attempt_at <= ?3 AND (lease_until IS NULL OR lease_until < ?3)
         RETURNING *"
    ))
    .bind(lease_end(lease_secs))
    .bind(lane)
    .bind(ts)
    .fetch_optional(&mut *conn)
    .await?;
    head.as_ref().map(rows::delivery).transpose()
}

/// Makes a delivery due now again (replay), unless it is in flight (leased).
pub(super) async fn retry(conn: &mut SqliteConnection, id: &str, ts: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
         WHERE id = ? AND (lease_until IS NULL OR lease_until < ?)",
    )
    .bind(ts)
    .bind(ts)
    .bind(id)
    .bind(ts)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn cancel_endpoint(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    ts: &str,
) -> StoreResult<u64> {
    cancel_open(
        conn,
        Owner::Endpoint(endpoint_id),
        "endpoint disabled or deleted",
        ts,
    )
    .await
}

/// Whose open deliveries [`cancel_open`] cancels.
enum Owner<'a> {
    Endpoint(&'a str),
    Key(&'a str),
}

/// Cancels the open deliveries of an endpoint or a key, noting why.
async fn cancel_open(
    conn: &mut SqliteConnection,
    owner: Owner<'_>,
    why: &str,
    ts: &str,
) -> StoreResult<u64> {
    let (column, id) = match owner {
        Owner::Endpoint(id) => ("endpoint_id", id),
        Owner::Key(id) => ("key_id", id),
    };
    let done = sqlx::query(&format!(
        "UPDATE webhook_deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_until = NULL,
           last_error = COALESCE(last_error, ?), updated_at = ?
         WHERE {column} = ? AND {OPEN}"
    ))
    .bind(why)
    .bind(ts)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes a deleted key's endpoints and cancels its open deliveries.
pub(super) async fn forget_key(
    conn: &mut SqliteConnection,
    key_id: &str,
    ts: &str,
) -> StoreResult<()> {
    cancel_open(conn, Owner::Key(key_id), "key deleted", ts).await?;
    sqlx::query("DELETE FROM webhook_endpoints WHERE key_id = ?")
        .bind(key_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts or replaces an endpoint; open deliveries follow a changed URL.
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

    // Deliveries not sent yet go to the endpoint's current URL and headers.
    let headers = (!e.headers.is_empty())
        .then(|| serde_json::to_string(&e.headers).ok())
        .flatten();
    sqlx::query(&format!(
        "UPDATE webhook_deliveries SET url = ?, headers = ?
         WHERE endpoint_id = ? AND {OPEN} AND (url != ? OR headers IS NOT ?)"
    ))
    .bind(&e.url)
    .bind(&headers)
    .bind(&e.id)
    .bind(&e.url)
    .bind(&headers)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
