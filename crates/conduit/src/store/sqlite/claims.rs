//! Claims: finding and leasing deliveries the commit hand-over did not take
//! (retries that came due, deliveries left behind, replays), and giving leases
//! back.
//!
//! Candidates are found on a reader, so that an empty claim costs the writer
//! nothing; the writer then leases them, checking each condition again.

use std::collections::HashMap;

use bytes::Bytes;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::outbox::{OPEN, lease_end};
use super::rows;
use crate::ids::{format_time, now};
use crate::store::StoreResult;
use crate::webhooks::model::Delivery;

/// Leaves out deliveries to receivers the dispatcher cannot take now (see
/// [`crate::webhooks::model::receiver`]: `ep:{endpoint}` or `url:{url}`),
/// comparing the columns themselves so that the walk stays cheap per row.
fn push_skip(sql: &mut QueryBuilder<'_, Sqlite>, skip_receivers: &[String]) {
    // (prefix, the column compared, the rows the condition does not concern)
    for (prefix, column, other) in [
        ("ep:", "d.endpoint_id", "d.endpoint_id IS NULL"),
        ("url:", "d.url", "d.endpoint_id IS NOT NULL"),
    ] {
        let values: Vec<&str> = skip_receivers
            .iter()
            .filter_map(|r| r.strip_prefix(prefix))
            .collect();
        if values.is_empty() {
            continue;
        }
        sql.push(format!(" AND ({other} OR {column} NOT IN ("));
        let mut list = sql.separated(", ");
        for value in values {
            list.push_bind(value.to_string());
        }
        sql.push("))");
    }
}

/// Appends the lane gate: no earlier open delivery in the same lane.
fn push_lane_gate(sql: &mut QueryBuilder<'_, Sqlite>) {
    sql.push(format!(
        " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.lane = d.lane
           AND e.event_position < d.event_position AND e.{OPEN})"
    ));
}

/// Ids of deliveries that are due, unleased and head their lane (read-only).
// LIMITATION: the due index is walked from the oldest row, and rows for skipped
// (saturated) receivers or behind a busy lane head are stepped over one by one, so
// a claim costs more as a dead receiver's backlog grows. A per-receiver head table
// maintained on insert and record would make claims independent of backlogs.
pub(super) async fn candidates(
    readers: &SqlitePool,
    limit: u32,
    skip_receivers: &[String],
) -> StoreResult<Vec<String>> {
    let ts = format_time(now());
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT d.id FROM webhook_deliveries d WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= ",
    );
    sql.push_bind(ts.clone())
        .push(" AND (d.lease_until IS NULL OR d.lease_until < ")
        .push_bind(ts)
        .push(")");
    push_skip(&mut sql, skip_receivers);
    push_lane_gate(&mut sql);
    sql.push(" ORDER BY d.next_attempt_at, d.event_position LIMIT ")
        .push_bind(limit as i64);
    let found = sql.build().fetch_all(readers).await?;
    found.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Leases the given candidates, checking again that each is still claimable.
pub(super) async fn lease(
    conn: &mut SqliteConnection,
    ids: &[String],
    lease_secs: u64,
) -> StoreResult<Vec<Delivery>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ts = format_time(now());
    let mut sql = QueryBuilder::<Sqlite>::new("UPDATE webhook_deliveries AS d SET lease_until = ");
    sql.push_bind(lease_end(lease_secs))
        .push(" WHERE d.id IN (");
    let mut list = sql.separated(", ");
    for id in ids {
        list.push_bind(id.clone());
    }
    sql.push(") AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= ")
        .push_bind(ts.clone())
        .push(" AND (d.lease_until IS NULL OR d.lease_until < ")
        .push_bind(ts)
        .push(")");
    push_lane_gate(&mut sql);
    sql.push(" RETURNING *");
    let found = sql.build().fetch_all(&mut *conn).await?;
    let mut out: Vec<Delivery> = found.iter().map(rows::delivery).collect::<Result<_, _>>()?;
    out.sort_by(|a, b| {
        (&a.next_attempt_at, a.event_position).cmp(&(&b.next_attempt_at, b.event_position))
    });
    Ok(out)
}

/// The bodies of the events at `positions`.
pub(super) async fn bodies(
    readers: &SqlitePool,
    positions: &[i64],
) -> StoreResult<HashMap<i64, Bytes>> {
    let mut out = HashMap::with_capacity(positions.len());
    for chunk in positions.chunks(500) {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM events WHERE position IN (");
        let mut list = sql.separated(", ");
        for position in chunk {
            list.push_bind(*position);
        }
        sql.push(")");
        for row in sql.build().fetch_all(readers).await? {
            let event = rows::event(&row)?;
            out.insert(event.position, event.body);
        }
    }
    Ok(out)
}

/// When the next unleased delivery the dispatcher could take comes due: the
/// earliest due time among lane heads not in `skip_receivers` (a walk of the due
/// index that stops at the first match). Leased rows are not considered: this
/// process releases its own, and the caller looks again once a lease could
/// have run out.
pub(super) async fn next_due(
    readers: &SqlitePool,
    skip_receivers: &[String],
) -> StoreResult<Option<String>> {
    let mut sql = QueryBuilder::<Sqlite>::new(
        "SELECT d.next_attempt_at FROM webhook_deliveries d
         WHERE d.status IN ('pending', 'failed') AND (d.lease_until IS NULL OR d.lease_until < ",
    );
    sql.push_bind(format_time(now())).push(")");
    push_skip(&mut sql, skip_receivers);
    push_lane_gate(&mut sql);
    sql.push(" ORDER BY d.next_attempt_at, d.event_position LIMIT 1");
    let row = sql.build().fetch_optional(readers).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?.flatten())
}

/// Gives leases back (the dispatcher took more than it can send soon).
pub(super) async fn release(conn: &mut SqliteConnection, ids: &[String]) -> StoreResult<u64> {
    let mut total = 0;
    for chunk in ids.chunks(500) {
        let mut sql = QueryBuilder::<Sqlite>::new(
            "UPDATE webhook_deliveries SET lease_until = NULL WHERE id IN (",
        );
        let mut list = sql.separated(", ");
        for id in chunk {
            list.push_bind(id.clone());
        }
        sql.push(")");
        total += sql.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(total)
}

/// Drops every lease: at start, whatever a previous process held is free again.
pub(super) async fn release_all(conn: &mut SqliteConnection) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
    )
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
