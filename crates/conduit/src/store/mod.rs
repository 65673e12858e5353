//! Storage: the durable home of keys, tasks, the event log and the webhook outbox.
//!
//! Callers see the [`Store`] trait only. Every write is a [`Change`] applied by
//! [`Store::apply`]; an implementation commits the change, the events it causes
//! and their webhook deliveries in one transaction, then hands the result to the
//! [`CommitSink`] in commit order, before `apply` returns. SQLite is the embedded
//! implementation; another database implements the same trait.

pub mod sqlite;

use std::sync::Arc;

use serde_json::Value;

use crate::events::Event;
use crate::events::filter::TypeFilter;
use crate::keys::model::VirtualKey;
use crate::tasks::model::{Task, TaskError, TaskStatus, TaskType};
use crate::webhooks::model::{Delivery, Dispatch, Endpoint, NewDelivery};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("store is closed")]
    Unavailable,
    #[error("the key's budget does not cover this task")]
    BudgetExceeded,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A move of a task's state machine, with the data of the event it causes.
#[derive(Debug, Clone)]
pub enum Transition {
    /// pending → processing; emits `<prefix>.started`.
    Start { data: Value },
    /// Progress while processing; emits `<prefix>.progress`.
    Progress {
        progress: u8,
        message: String,
        data: Value,
    },
    /// processing → completed; adds `cost` to the key's spend.
    Complete {
        result: Value,
        cost: f64,
        data: Value,
    },
    /// → failed; emits `<prefix>.failed`.
    Fail { error: TaskError, data: Value },
    /// → cancelled; emits `<prefix>.cancelled`.
    Cancel { reason: String },
    /// → timedout; emits `<prefix>.failed` with code `timeout`.
    TimedOut { data: Value },
}

impl Transition {
    /// The status this transition leads to.
    pub fn target(&self) -> TaskStatus {
        match self {
            Transition::Start { .. } | Transition::Progress { .. } => TaskStatus::Processing,
            Transition::Complete { .. } => TaskStatus::Completed,
            Transition::Fail { .. } => TaskStatus::Failed,
            Transition::Cancel { .. } => TaskStatus::Cancelled,
            Transition::TimedOut { .. } => TaskStatus::Timedout,
        }
    }
}

/// One write, applied atomically with the events it causes.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new pending task (no event: the first event is `<prefix>.started`).
    CreateTask(Box<Task>),
    Transition {
        task_id: String,
        transition: Transition,
    },
    /// A key or system event (`key_id: None`) that changes no other record.
    Emit {
        key_id: Option<String>,
        event_type: String,
        data: Value,
    },
    /// Inserts or replaces a key, optionally emitting an event about it.
    PutKey {
        key: Box<VirtualKey>,
        event: Option<(String, Value)>,
    },
    DeleteKey {
        id: String,
    },
    /// Inserts or replaces a webhook endpoint.
    PutEndpoint(Box<Endpoint>),
    DeleteEndpoint {
        id: String,
    },
    /// Stores a setting (such as the master key's hash).
    PutSetting {
        name: String,
        value: String,
    },
}

/// What a committed change produced.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub task: Option<Task>,
    pub key: Option<VirtualKey>,
    pub deleted_key: Option<String>,
    pub endpoint: Option<Endpoint>,
    pub deleted_endpoint: Option<String>,
    pub events: Vec<Arc<Event>>,
    /// Deliveries written to the outbox with the events.
    pub deliveries: usize,
    /// Those of them leased in the same transaction, for the dispatcher to send now.
    pub leased: Vec<Dispatch>,
}

/// Told about every commit, in commit order, before `apply` returns.
pub trait CommitSink: Send + Sync {
    fn committed(&self, applied: &Applied);
}

/// Decides, inside the writing transaction, which webhook deliveries an event needs.
pub trait OutboxPlanner: Send + Sync {
    fn plan(&self, event: &Event, task: Option<&Task>) -> Vec<NewDelivery>;
}

/// Which of a key's tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub status: Option<TaskStatus>,
    pub task_type: Option<TaskType>,
    /// Tasks strictly older than this one (the cursor), newest first.
    pub after: Option<(String, String)>,
    pub limit: u32,
}

/// Which events to read from the log.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// A key's events plus system events; `None` reads every event.
    pub key_id: Option<String>,
    pub task_id: Option<String>,
    pub after_position: i64,
    pub types: TypeFilter,
    pub limit: u32,
}

/// The storage interface every backend implements.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits a change and its events (group-committed with concurrent changes).
    async fn apply(&self, change: Change) -> StoreResult<Applied>;

    async fn task(&self, id: &str) -> StoreResult<Option<Task>>;
    async fn tasks(&self, key_id: &str, query: &TaskQuery) -> StoreResult<Vec<Task>>;
    /// Tasks that were pending or processing: resumed at start.
    async fn unfinished_tasks(&self) -> StoreResult<Vec<Task>>;

    async fn events(&self, query: &EventQuery) -> StoreResult<Vec<Event>>;
    async fn event(&self, id: &str) -> StoreResult<Option<Event>>;
    async fn last_event_position(&self) -> StoreResult<i64>;

    async fn keys(&self) -> StoreResult<Vec<VirtualKey>>;
    async fn key(&self, id: &str) -> StoreResult<Option<VirtualKey>>;
    async fn setting(&self, name: &str) -> StoreResult<Option<String>>;

    async fn endpoints(&self) -> StoreResult<Vec<Endpoint>>;
    /// Up to `limit` deliveries that are due, unleased and first in their lane,
    /// leased for `lease_secs` seconds, with their bodies. Deliveries to
    /// `skip_receivers` (receivers the dispatcher cannot take now) are left alone.
    async fn claim_deliveries(
        &self,
        limit: u32,
        lease_secs: u64,
        skip_receivers: &[String],
    ) -> StoreResult<Vec<Dispatch>>;
    /// When the next delivery not to `skip_receivers` becomes claimable (RFC 3339).
    async fn next_due_delivery(&self, skip_receivers: &[String]) -> StoreResult<Option<String>>;
    /// Records attempts' outcomes and their deliveries' next states, in one
    /// transaction; for each, returns the next delivery of its lane, leased,
    /// when the record asked for it (its body is the caller's to find).
    async fn record_attempts(
        &self,
        outcomes: Vec<crate::webhooks::model::AttemptRecord>,
    ) -> StoreResult<Vec<Option<Delivery>>>;
    /// Gives leases back; an empty list gives back every lease (at start).
    async fn release_deliveries(&self, ids: Vec<String>) -> StoreResult<u64>;
    async fn deliveries(
        &self,
        query: &crate::webhooks::model::DeliveryQuery,
    ) -> StoreResult<Vec<Delivery>>;
    async fn delivery(&self, id: &str) -> StoreResult<Option<Delivery>>;
    async fn attempts(
        &self,
        delivery_id: &str,
    ) -> StoreResult<Vec<crate::webhooks::model::Attempt>>;
    /// Makes a delivery due now again (replay); false if it does not exist or is in flight.
    async fn retry_delivery(&self, id: &str) -> StoreResult<bool>;
    /// Writes fresh deliveries of an existing event (redeliver).
    async fn insert_deliveries(&self, deliveries: Vec<NewDelivery>) -> StoreResult<usize>;
    /// Cancels pending deliveries of an endpoint (deleted or disabled).
    async fn cancel_endpoint_deliveries(&self, endpoint_id: &str) -> StoreResult<u64>;
    /// How many deliveries wait, and the age in seconds of the oldest due one.
    async fn outbox_depth(&self) -> StoreResult<(i64, f64)>;
}
