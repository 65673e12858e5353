//! The single writer with group commit.
//!
//! SQLite allows one writer at a time, and a durable commit costs an fsync. So one
//! task owns the only writing connection and takes requests from a channel: it
//! waits for the first, drains whatever else is queued (up to [`MAX_BATCH`]), and
//! applies them all in one transaction, each inside its own savepoint so that one
//! failing request does not fail the others. After the commit it tells the
//! [`CommitSink`] about each applied change, in commit order, and only then
//! answers the callers. Under load one fsync covers hundreds of requests; when
//! idle a request commits alone at once.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

use super::rows;
use crate::events::Event;
use crate::ids::{format_time, new_id, now};
use crate::keys::model::VirtualKey;
use crate::store::{
    Applied, Change, CommitSink, OutboxPlanner, StoreError, StoreResult, Transition,
};
use crate::tasks::model::{Task, TaskStatus};
use crate::webhooks::model::{AttemptRecord, Delivery, NewDelivery};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// A request to the writer, with where to send its answer.
pub(super) enum Op {
    Change(Change, oneshot::Sender<StoreResult<Applied>>),
    /// Leases these claim candidates (those still claimable).
    Claim {
        ids: Vec<String>,
        lease_secs: u64,
        reply: oneshot::Sender<StoreResult<Vec<Delivery>>>,
    },
    Record(
        Vec<AttemptRecord>,
        oneshot::Sender<StoreResult<Vec<Option<Delivery>>>>,
    ),
    Retry(String, oneshot::Sender<StoreResult<bool>>),
    Insert(Vec<NewDelivery>, oneshot::Sender<StoreResult<usize>>),
    CancelEndpoint(String, oneshot::Sender<StoreResult<u64>>),
    /// Gives these leases back; an empty list gives back every lease.
    Release(Vec<String>, oneshot::Sender<StoreResult<u64>>),
}

/// What the writer task needs besides its connection.
pub(super) struct WriterContext {
    pub sink: Arc<dyn CommitSink>,
    pub planner: Arc<OnceLock<Arc<dyn OutboxPlanner>>>,
}

/// Runs until every sender is dropped; then the connection closes.
pub(super) async fn run(
    mut conn: SqliteConnection,
    mut ops: mpsc::Receiver<Op>,
    ctx: WriterContext,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = ops.recv().await {
        // 1. Take everything that is already waiting.
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match ops.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        metrics::histogram!("conduit_store_batch_size").record(batch.len() as f64);

        // 2. Apply them in one transaction, one savepoint each.
        let outcomes = commit_batch(&mut conn, &mut batch, &ctx).await;

        // 3. Tell the sink in commit order, then answer.
        for (op, outcome) in batch.drain(..).zip(outcomes) {
            outcome.answer(op, ctx.sink.as_ref());
        }
    }
    let _ = conn.close().await;
}

/// The result of one op inside a batch, before the batch committed.
// Short-lived and moved once; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    Applied(StoreResult<Applied>),
    Deliveries(StoreResult<Vec<Delivery>>),
    Next(StoreResult<Vec<Option<Delivery>>>),
    Unit(StoreResult<()>),
    Flag(StoreResult<bool>),
    Count(StoreResult<u64>),
}

impl Outcome {
    fn failed(err: StoreError) -> Outcome {
        Outcome::Unit(Err(err))
    }

    fn answer(self, op: Op, sink: &dyn CommitSink) {
        fn err<T>(result: &StoreResult<T>) -> StoreError {
            match result {
                Err(StoreError::NotFound(w)) => StoreError::NotFound(w),
                Err(StoreError::Conflict(m)) => StoreError::Conflict(m.clone()),
                Err(other) => StoreError::Corrupt(format!("commit failed: {other}")),
                Ok(_) => StoreError::Unavailable,
            }
        }
        match (op, self) {
            (Op::Change(_, reply), Outcome::Applied(result)) => {
                if let Ok(applied) = &result {
                    sink.committed(applied);
                }
                let _ = reply.send(result);
            }
            (Op::Claim { reply, .. }, Outcome::Deliveries(result)) => {
                let _ = reply.send(result);
            }
            (Op::Record(_, reply), Outcome::Next(result)) => {
                let _ = reply.send(result);
            }
            (Op::Retry(_, reply), Outcome::Flag(result)) => {
                let _ = reply.send(result);
            }
            (Op::Insert(_, reply), Outcome::Count(result)) => {
                let _ = reply.send(result.map(|n| n as usize));
            }
            (Op::CancelEndpoint(_, reply), Outcome::Count(result)) => {
                let _ = reply.send(result);
            }
            (Op::Release(_, reply), Outcome::Count(result)) => {
                let _ = reply.send(result);
            }
            (op, Outcome::Unit(result)) => {
                // The whole batch failed: every caller gets the error.
                let e = err(&result);
                match op {
                    Op::Change(_, r) => drop(r.send(Err(e))),
                    Op::Claim { reply, .. } => drop(reply.send(Err(e))),
                    Op::Record(_, r) => drop(r.send(Err(e))),
                    Op::Retry(_, r) => drop(r.send(Err(e))),
                    Op::Insert(_, r) => drop(r.send(Err(e))),
                    Op::CancelEndpoint(_, r) => drop(r.send(Err(e))),
                    Op::Release(_, r) => drop(r.send(Err(e))),
                }
            }
            _ => {}
        }
    }
}

async fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Op],
    ctx: &WriterContext,
) -> Vec<Outcome> {
    let failed_all = |err: &sqlx::Error, n: usize| -> Vec<Outcome> {
        tracing::error!(cause = %err, "store commit failed");
        (0..n)
            .map(|_| Outcome::failed(StoreError::Corrupt(err.to_string())))
            .collect()
    };
    if let Err(err) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return failed_all(&err, batch.len());
    }
    let timestamp = format_time(now());
    let mut outcomes = Vec::with_capacity(batch.len());
    for op in batch.iter() {
        let _ = sqlx::query("SAVEPOINT op").execute(&mut *conn).await;
        let outcome = apply_op(conn, op, &timestamp, ctx).await;
        let ok = match &outcome {
            Outcome::Applied(r) => r.is_ok(),
            Outcome::Deliveries(r) => r.is_ok(),
            Outcome::Next(r) => r.is_ok(),
            Outcome::Unit(r) => r.is_ok(),
            Outcome::Flag(r) => r.is_ok(),
            Outcome::Count(r) => r.is_ok(),
        };
        if !ok {
            let _ = sqlx::query("ROLLBACK TO op").execute(&mut *conn).await;
        }
        let _ = sqlx::query("RELEASE op").execute(&mut *conn).await;
        outcomes.push(outcome);
    }
    if let Err(err) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return failed_all(&err, batch.len());
    }
    outcomes
}

async fn apply_op(conn: &mut SqliteConnection, op: &Op, ts: &str, ctx: &WriterContext) -> Outcome {
    match op {
        Op::Change(change, _) => Outcome::Applied(apply_change(conn, change, ts, ctx).await),
        Op::Claim {
            ids, lease_secs, ..
        } => Outcome::Deliveries(super::claims::lease(conn, ids, *lease_secs).await),
        Op::Record(records, _) => Outcome::Next(super::outbox::record(conn, records, ts).await),
        Op::Retry(id, _) => Outcome::Flag(super::outbox::retry(conn, id, ts).await),
        Op::Insert(deliveries, _) => Outcome::Count(
            super::outbox::insert(conn, deliveries, ts)
                .await
                .map(|inserted| inserted.written as u64),
        ),
        Op::CancelEndpoint(id, _) => {
            Outcome::Count(super::outbox::cancel_endpoint(conn, id, ts).await)
        }
        Op::Release(ids, _) if ids.is_empty() => {
            Outcome::Count(super::claims::release_all(conn).await)
        }
        Op::Release(ids, _) => Outcome::Count(super::claims::release(conn, ids).await),
    }
}

async fn apply_change(
    conn: &mut SqliteConnection,
    change: &Change,
    ts: &str,
    ctx: &WriterContext,
) -> StoreResult<Applied> {
    let mut applied = Applied::default();
    match change {
        Change::CreateTask(task) => {
            // The task's estimated cost is reserved against the budget in the same
            // transaction, so concurrent submits cannot overspend it.
            if task.cost > 0.0 {
                reserve(conn, &task.key_id, task.cost, ts, &mut applied).await?;
            }
            write_task(conn, task, true).await?;
            applied.task = Some((**task).clone());
        }
        Change::Transition {
            task_id,
            transition,
        } => {
            transition_task(conn, task_id, transition, ts, &mut applied).await?;
        }
        Change::Emit {
            key_id,
            event_type,
            data,
        } => {
            let event =
                insert_event(conn, key_id.clone(), None, event_type, None, data, ts).await?;
            applied.events.push(Arc::new(event));
        }
        Change::PutKey { key, event } => {
            write_key(conn, key).await?;
            if let Some((event_type, data)) = event {
                let event =
                    insert_event(conn, Some(key.id.clone()), None, event_type, None, data, ts)
                        .await?;
                applied.events.push(Arc::new(event));
            }
            applied.key = Some((**key).clone());
        }
        Change::DeleteKey { id } => {
            let done = sqlx::query("DELETE FROM keys WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("key"));
            }
            // The key's endpoints (and their secrets) go with it, and nothing of
            // its is delivered any more.
            super::outbox::forget_key(conn, id, ts).await?;
            applied.deleted_key = Some(id.clone());
        }
        Change::PutEndpoint(endpoint) => {
            super::outbox::write_endpoint(conn, endpoint).await?;
            if endpoint.status != "active" {
                super::outbox::cancel_endpoint(conn, &endpoint.id, ts).await?;
            }
            applied.endpoint = Some((**endpoint).clone());
        }
        Change::DeleteEndpoint { id } => {
            let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound("webhook endpoint"));
            }
            super::outbox::cancel_endpoint(conn, id, ts).await?;
            applied.deleted_endpoint = Some(id.clone());
        }
        Change::PutSetting { name, value } => {
            sqlx::query("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(value)
                .execute(&mut *conn)
                .await?;
        }
    }

    // Every event gets its deliveries in this same transaction.
    if let Some(planner) = ctx.planner.get() {
        let mut deliveries = Vec::new();
        for event in &applied.events {
            deliveries.extend(planner.plan(event, applied.task.as_ref()));
        }
        if !deliveries.is_empty() {
            let inserted = super::outbox::insert(conn, &deliveries, ts).await?;
            applied.deliveries = inserted.written;
            applied.leased = inserted.leased;
        }
    }
    Ok(applied)
}

async fn transition_task(
    conn: &mut SqliteConnection,
    task_id: &str,
    transition: &Transition,
    ts: &str,
    applied: &mut Applied,
) -> StoreResult<()> {
    let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
        .bind(task_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound("task"))?;
    let mut task = rows::task(&row)?;

    // 1. Check the state machine.
    let target = transition.target();
    let allowed = match transition {
        Transition::Start { .. } => task.status == TaskStatus::Pending,
        Transition::Progress { .. } => task.status == TaskStatus::Processing,
        _ => task.status.can_become(target),
    };
    if !allowed {
        return Err(StoreError::Conflict(format!(
            "The task is {} and cannot become {}.",
            task.status.as_str(),
            target.as_str()
        )));
    }

    // 2. Change the record and choose the event.
    let reserved = task.cost;
    let prefix = task.task_type.event_prefix();
    let (suffix, data) = match transition {
        Transition::Start { data } => {
            task.progress_message = Some("processing".into());
            ("started", data.clone())
        }
        Transition::Progress {
            progress,
            message,
            data,
        } => {
            task.progress = (*progress).min(100);
            task.progress_message = Some(message.clone());
            ("progress", data.clone())
        }
        Transition::Complete { result, cost, data } => {
            task.progress = 100;
            task.progress_message = Some("completed".into());
            task.result = Some(result.clone());
            task.cost = *cost;
            ("completed", data.clone())
        }
        Transition::Fail { error, data } => {
            task.error = Some(error.clone());
            task.progress_message = Some(error.message.clone());
            ("failed", data.clone())
        }
        Transition::Cancel { reason } => {
            task.progress_message = Some("cancelled".into());
            ("cancelled", json!({"taskId": task.id, "reason": reason}))
        }
        Transition::TimedOut { data } => {
            task.error = Some(crate::tasks::model::TaskError {
                message: "The task did not finish within its time limit.".into(),
                code: "timeout".into(),
                retryable: true,
            });
            task.progress_message = Some("timed out".into());
            ("failed", data.clone())
        }
    };
    task.status = target;
    task.updated_at = ts.to_string();
    if target.is_terminal() {
        task.completed_at = Some(ts.to_string());
    }
    task.last_sequence += 1;
    task.version += 1;
    write_task(conn, &task, false).await?;

    let event_type = format!("{prefix}.{suffix}");
    let event = insert_event(
        conn,
        Some(task.key_id.clone()),
        Some(task.id.clone()),
        &event_type,
        Some(task.last_sequence),
        &data,
        ts,
    )
    .await?;
    applied.events.push(Arc::new(event));

    // 3. Settle the reservation: a completed task is charged its actual cost; a
    //    task that ends any other way is refunded.
    let adjustment = match transition {
        Transition::Complete { cost, .. } => *cost - reserved,
        Transition::Fail { .. } | Transition::Cancel { .. } | Transition::TimedOut { .. } => {
            task.cost = 0.0;
            -reserved
        }
        _ => 0.0,
    };
    if adjustment.abs() > 1e-9 {
        write_task(conn, &task, false).await?;
        charge(conn, &task.key_id, adjustment, ts, applied).await?;
    }
    applied.task = Some(task);
    Ok(())
}

/// Adds `cost` to the key's spend; emits `key.budget.exceeded` when it crosses the budget.
async fn charge(
    conn: &mut SqliteConnection,
    key_id: &str,
    cost: f64,
    ts: &str,
    applied: &mut Applied,
) -> StoreResult<()> {
    let Some(row) =
        sqlx::query("UPDATE keys SET spend = max(0, round(spend + ?, 6)), updated_at = ? WHERE id = ? RETURNING *")
            .bind(cost)
            .bind(ts)
            .bind(key_id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(());
    };
    let key = rows::key(&row)?;
    announce_if_exhausted(conn, key, cost, ts, applied).await
}

/// Reserves `cost` against the key's budget, or refuses with `BudgetExceeded`.
async fn reserve(
    conn: &mut SqliteConnection,
    key_id: &str,
    cost: f64,
    ts: &str,
    applied: &mut Applied,
) -> StoreResult<()> {
    let row = sqlx::query(
        "UPDATE keys SET spend = round(spend + ?1, 6), updated_at = ?2
         WHERE id = ?3 AND (budget IS NULL OR round(spend + ?1, 6) <= budget) RETURNING *",
    )
    .bind(cost)
    .bind(ts)
    .bind(key_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => {
            let key = rows::key(&row)?;
            announce_if_exhausted(conn, key, cost, ts, applied).await
        }
        None => Err(StoreError::BudgetExceeded),
    }
}

/// Emits `key.budget.exceeded` when adding `cost` used up the budget.
async fn announce_if_exhausted(
    conn: &mut SqliteConnection,
    key: crate::keys::model::VirtualKey,
    cost: f64,
    ts: &str,
    applied: &mut Applied,
) -> StoreResult<()> {
    if let Some(budget) = key.budget
        && cost > 0.0
        && key.spend >= budget - 1e-9
        && key.spend - cost < budget - 1e-9
    {
        let data =
            json!({"keyId": key.id, "keyName": key.name, "budget": budget, "spend": key.spend});
        let event = insert_event(
            conn,
            Some(key.id.clone()),
            None,
            "key.budget.exceeded",
            None,
            &data,
            ts,
        )
        .await?;
        applied.events.push(Arc::new(event));
    }
    applied.key = Some(key);
    Ok(())
}

async fn insert_event(
    conn: &mut SqliteConnection,
    key_id: Option<String>,
    task_id: Option<String>,
    event_type: &str,
    sequence: Option<i64>,
    data: &Value,
    ts: &str,
) -> StoreResult<Event> {
    let id = new_id("evt");
    let data_text = serde_json::to_string(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let position: i64 = sqlx::query(
        "INSERT INTO events (id, key_id, task_id, type, sequence, timestamp, data) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING position",
    )
    .bind(&id)
    .bind(&key_id)
    .bind(&task_id)
    .bind(event_type)
    .bind(sequence)
    .bind(ts)
    .bind(data_text)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    Ok(Event {
        position,
        id,
        key_id,
        task_id,
        event_type: event_type.to_string(),
        sequence,
        timestamp: ts.to_string(),
        data: data.clone(),
        body: Default::default(),
    }
    .sealed())
}

fn json_text(value: &Option<impl serde::Serialize>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

async fn write_task(conn: &mut SqliteConnection, task: &Task, insert: bool) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO tasks (id, key_id, type, status, progress, progress_message, request, result, error, model, provider, provider_model, webhook_url, webhook_headers, metadata, user_id, created_at, updated_at, completed_at, last_sequence, version, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE tasks SET key_id = ?2, type = ?3, status = ?4, progress = ?5, progress_message = ?6, request = ?7, result = ?8, error = ?9, model = ?10, provider = ?11, provider_model = ?12, webhook_url = ?13, webhook_headers = ?14, metadata = ?15, user_id = ?16, created_at = ?17, updated_at = ?18, completed_at = ?19, last_sequence = ?20, version = ?21, cost = ?22 WHERE id = ?1"
    };
    sqlx::query(sql)
        .bind(&task.id)
        .bind(&task.key_id)
        .bind(task.task_type.as_str())
        .bind(task.status.as_str())
        .bind(task.progress as i64)
        .bind(&task.progress_message)
        .bind(task.request.to_string())
        .bind(json_text(&task.result))
        .bind(json_text(&task.error))
        .bind(&task.model)
        .bind(&task.provider)
        .bind(&task.provider_model)
        .bind(&task.webhook_url)
        .bind(json_text(&task.webhook_headers))
        .bind(json_text(&task.metadata))
        .bind(&task.user_id)
        .bind(&task.created_at)
        .bind(&task.updated_at)
        .bind(&task.completed_at)
        .bind(task.last_sequence)
        .bind(task.version)
        .bind(task.cost)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn write_key(conn: &mut SqliteConnection, key: &VirtualKey) -> StoreResult<()> {
    let (previous, previous_until) = match &key.previous_webhook_secret {
        Some((secret, until)) => (Some(secret.clone()), Some(format_time(*until))),
        None => (None, None),
    };
    sqlx::query(
        "INSERT INTO keys (id, name, key_hash, key_prefix, enabled, disabled_reason, expires_at, allowed_models, rate_limit_rpm, rate_limit_rpd, budget, spend, metadata, webhook_secret, previous_webhook_secret, previous_secret_expires, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, disabled_reason = excluded.disabled_reason,
           expires_at = excluded.expires_at, allowed_models = excluded.allowed_models, rate_limit_rpm = excluded.rate_limit_rpm,
           rate_limit_rpd = excluded.rate_limit_rpd, budget = excluded.budget, metadata = excluded.metadata,
           webhook_secret = excluded.webhook_secret, previous_webhook_secret = excluded.previous_webhook_secret,
           previous_secret_expires = excluded.previous_secret_expires, updated_at = excluded.updated_at",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(key.key_hash.as_slice())
    .bind(&key.key_prefix)
    .bind(key.enabled)
    .bind(&key.disabled_reason)
    .bind(key.expires_at.map(format_time))
    .bind(serde_json::to_string(&key.allowed_models).unwrap_or_else(|_| "[]".into()))
    .bind(key.rate_limit_rpm.map(i64::from))
    .bind(key.rate_limit_rpd.map(i64::from))
    .bind(key.budget)
    .bind(key.spend)
    .bind(serde_json::to_string(&key.metadata).unwrap_or_else(|_| "{}".into()))
    .bind(&key.webhook_secret)
    .bind(previous)
    .bind(previous_until)
    .bind(format_time(key.created_at))
    .bind(format_time(key.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
