//! The embedded store: one SQLite file in WAL mode, a pool of readers and one
//! group-committing writer (see [`writer`]).

mod claims;
mod outbox;
mod rows;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::{
    Applied, Change, CommitSink, EventQuery, OutboxPlanner, Store, StoreError, StoreResult,
    TaskQuery,
};
use crate::events::Event;
use crate::keys::model::VirtualKey;
use crate::tasks::model::Task;
use crate::webhooks::model::{
    Attempt, AttemptRecord, Delivery, DeliveryQuery, Dispatch, Endpoint, NewDelivery, Owner,
};
use writer::{Op, WriterContext};

/// Requests that may wait for the writer before callers feel back-pressure.
const WRITER_QUEUE: usize = 16_384;

/// SQLite behind the [`Store`] trait.
pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<Op>,
    planner: Arc<OnceLock<Arc<dyn OutboxPlanner>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/conduit.db`, runs migrations and starts the writer.
    pub async fn open(dir: &Path, sink: Arc<dyn CommitSink>) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("conduit.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-32000")
            .pragma("temp_store", "memory")
            .disable_statement_logging();

        // 1. Migrate with the writer's connection before anyone reads.
        let mut conn = options.connect().await?;
        sqlx::migrate!("migrations/sqlite").run(&mut conn).await?;

        // 2. Readers.
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(2)
            .connect_with(options.read_only(true))
            .await?;

        // 3. The writer task.
        let planner: Arc<OnceLock<Arc<dyn OutboxPlanner>>> = Arc::new(OnceLock::new());
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE);
        let ctx = WriterContext {
            sink,
            planner: planner.clone(),
        };
        tokio::spawn(writer::run(conn, receiver, ctx));
        tracing::info!(path = %path.display(), "sqlite store open");
        Ok(SqliteStore {
            readers,
            writer: sender,
            planner,
        })
    }

    /// Installs the webhook planner; called once at start.
    pub fn set_planner(&self, planner: Arc<dyn OutboxPlanner>) {
        let _ = self.planner.set(planner);
    }

    async fn send<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Op,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(op(reply))
            .await
            .map_err(|_| StoreError::Unavailable)?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn apply(&self, change: Change) -> StoreResult<Applied> {
        self.send(|reply| Op::Change(change, reply)).await
    }

    async fn task(&self, id: &str) -> StoreResult<Option<Task>> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(rows::task).transpose()
    }

    async fn tasks(&self, key_id: &str, query: &TaskQuery) -> StoreResult<Vec<Task>> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM tasks WHERE key_id = ");
        sql.push_bind(key_id);
        if let Some(status) = query.status {
            sql.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(task_type) = query.task_type {
            sql.push(" AND type = ").push_bind(task_type.as_str());
        }
        if let Some((created_at, id)) = &query.after {
            sql.push(" AND (created_at < ")
                .push_bind(created_at.clone())
                .push(" OR (created_at = ")
                .push_bind(created_at.clone())
                .push(" AND id < ")
                .push_bind(id.clone())
                .push("))");
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(query.limit as i64);
        let found = sql.build().fetch_all(&self.readers).await?;
        found.iter().map(rows::task).collect()
    }

    async fn unfinished_tasks(&self) -> StoreResult<Vec<Task>> {
        let found = sqlx::query(
            "SELECT * FROM tasks WHERE status IN ('pending', 'processing') ORDER BY created_at",
        )
        .fetch_all(&self.readers)
        .await?;
        found.iter().map(rows::task).collect()
    }

    async fn events(&self, query: &EventQuery) -> StoreResult<Vec<Event>> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM events WHERE position > ");
        sql.push_bind(query.after_position);
        if let Some(key_id) = &query.key_id {
            sql.push(" AND (key_id = ")
                .push_bind(key_id.clone())
                .push(" OR key_id IS NULL)");
        }
        if let Some(task_id) = &query.task_id {
            sql.push(" AND task_id = ").push_bind(task_id.clone());
        }
        if !query.types.is_empty() && !query.types.patterns().iter().any(|p| p == "*") {
            sql.push(" AND (");
            for (i, pattern) in query.types.patterns().iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                match pattern.strip_suffix(".*") {
                    Some(prefix) => {
                        let prefix = format!("{prefix}.");
                        sql.push("substr(type, 1, ")
                            .push_bind(prefix.len() as i64)
                            .push(") = ")
                            .push_bind(prefix);
                    }
                    None => {
                        sql.push("type = ").push_bind(pattern.clone());
                    }
                }
            }
            sql.push(")");
        }
        sql.push(" ORDER BY position LIMIT ")
            .push_bind(query.limit as i64);
        let found = sql.build().fetch_all(&self.readers).await?;
        found.iter().map(rows::event).collect()
    }

    async fn event(&self, id: &str) -> StoreResult<Option<Event>> {
        let row = sqlx::query("SELECT * FROM events WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(rows::event).transpose()
    }

    async fn last_event_position(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.readers)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn keys(&self) -> StoreResult<Vec<VirtualKey>> {
        let found = sqlx::query("SELECT * FROM keys ORDER BY created_at")
            .fetch_all(&self.readers)
            .await?;
        found.iter().map(rows::key).collect()
    }

    async fn key(&self, id: &str) -> StoreResult<Option<VirtualKey>> {
        let row = sqlx::query("SELECT * FROM keys WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(rows::key).transpose()
    }

    async fn setting(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>> {
        let found = sqlx::query("SELECT * FROM webhook_endpoints ORDER BY created_at")
            .fetch_all(&self.readers)
            .await?;
        found.iter().map(rows::endpoint).collect()
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        lease_secs: u64,
        skip_receivers: &[String],
    ) -> StoreResult<Vec<Dispatch>> {
        // 1. Find candidates on a reader, so an empty claim costs the writer nothing.
        let ids = claims::candidates(&self.readers, limit, skip_receivers).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }

        // 2. Lease them in the writer, which checks each again.
        let leased = self
            .send(|reply| Op::Claim {
                ids,
                lease_secs,
                reply,
            })
            .await?;

        // 3. Attach the bodies.
        let positions: Vec<i64> = leased.iter().map(|d| d.event_position).collect();
        let bodies = claims::bodies(&self.readers, &positions).await?;
        let leased_at = std::time::Instant::now();
        leased
            .into_iter()
            .map(|delivery| {
                let body = bodies
                    .get(&delivery.event_position)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("event of {}", delivery.id)))?;
                Ok(Dispatch {
                    delivery,
                    body,
                    leased_at,
                })
            })
            .collect()
    }

    async fn next_due_delivery(&self, skip_receivers: &[String]) -> StoreResult<Option<String>> {
        claims::next_due(&self.readers, skip_receivers).await
    }

    async fn record_attempts(
        &self,
        outcomes: Vec<AttemptRecord>,
    ) -> StoreResult<Vec<Option<Delivery>>> {
        self.send(|reply| Op::Record(outcomes, reply)).await
    }

    async fn release_deliveries(&self, ids: Vec<String>) -> StoreResult<u64> {
        self.send(|reply| Op::Release(ids, reply)).await
    }

    async fn deliveries(&self, query: &DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        let mut sql = QueryBuilder::<Sqlite>::new("SELECT * FROM webhook_deliveries WHERE 1 = 1");
        match &query.owner {
            Owner::Any => {}
            Owner::Key(key_id) => {
                sql.push(" AND key_id = ").push_bind(key_id.clone());
            }
            Owner::System => {
                sql.push(" AND key_id IS NULL");
            }
        }
        for (column, value) in [
            ("status", &query.status),
            ("endpoint_id", &query.endpoint_id),
            ("task_id", &query.task_id),
            ("event_id", &query.event_id),
        ] {
            if let Some(value) = value {
                sql.push(format!(" AND {column} = "))
                    .push_bind(value.clone());
            }
        }
        sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(query.limit as i64);
        let found = sql.build().fetch_all(&self.readers).await?;
        found.iter().map(rows::delivery).collect()
    }

    async fn delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(rows::delivery).transpose()
    }

    async fn attempts(&self, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
        let found =
            sqlx::query("SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt")
                .bind(delivery_id)
                .fetch_all(&self.readers)
                .await?;
        found.iter().map(rows::attempt).collect()
    }

    async fn retry_delivery(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.send(|reply| Op::Retry(id, reply)).await
    }

    async fn insert_deliveries(&self, deliveries: Vec<NewDelivery>) -> StoreResult<usize> {
        self.send(|reply| Op::Insert(deliveries, reply)).await
    }

    async fn cancel_endpoint_deliveries(&self, endpoint_id: &str) -> StoreResult<u64> {
        let id = endpoint_id.to_string();
        self.send(|reply| Op::CancelEndpoint(id, reply)).await
    }

    async fn outbox_depth(&self) -> StoreResult<(i64, f64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), MIN(next_attempt_at) FROM webhook_deliveries WHERE status IN ('pending', 'failed')",
        )
        .fetch_one(&self.readers)
        .await?;
        let count: i64 = row.try_get(0)?;
        let oldest: Option<String> = row.try_get(1)?;
        let age = oldest
            .and_then(|t| crate::ids::parse_time(&t))
            .map(|t| (crate::ids::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok((count, age))
    }
}
