//! Mapping between SQLite rows and the domain records.

use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::events::Event;
use crate::ids::parse_time;
use crate::keys::model::VirtualKey;
use crate::store::{StoreError, StoreResult};
use crate::tasks::model::{Task, TaskError, TaskStatus, TaskType};
use crate::webhooks::model::{Attempt, Delivery, Endpoint};

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn json_of(text: Option<String>) -> StoreResult<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt("json column")))
        .transpose()
}

fn object_of(text: Option<String>) -> StoreResult<Option<Map<String, Value>>> {
    Ok(json_of(text)?.and_then(|v| match v {
        Value::Object(map) => Some(map),
        _ => None,
    }))
}

pub fn task(row: &SqliteRow) -> StoreResult<Task> {
    let task_type: String = row.try_get("type")?;
    let status: String = row.try_get("status")?;
    let error: Option<TaskError> = json_of(row.try_get("error")?)?
        .map(|v| serde_json::from_value(v).map_err(|_| corrupt("task error")))
        .transpose()?;
    Ok(Task {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        task_type: TaskType::parse(&task_type).ok_or_else(|| corrupt("task type"))?,
        status: TaskStatus::parse(&status).ok_or_else(|| corrupt("task status"))?,
        progress: row.try_get::<i64, _>("progress")?.clamp(0, 100) as u8,
        progress_message: row.try_get("progress_message")?,
        request: json_of(row.try_get("request")?)?.unwrap_or(Value::Null),
        result: json_of(row.try_get("result")?)?,
        error,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        provider_model: row.try_get("provider_model")?,
        webhook_url: row.try_get("webhook_url")?,
        webhook_headers: object_of(row.try_get("webhook_headers")?)?,
        metadata: object_of(row.try_get("metadata")?)?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
        last_sequence: row.try_get("last_sequence")?,
        version: row.try_get("version")?,
        cost: row.try_get("cost")?,
    })
}

pub fn event(row: &SqliteRow) -> StoreResult<Event> {
    let data: String = row.try_get("data")?;
    Ok(Event {
        position: row.try_get("position")?,
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        task_id: row.try_get("task_id")?,
        event_type: row.try_get("type")?,
        sequence: row.try_get("sequence")?,
        timestamp: row.try_get("timestamp")?,
        data: serde_json::from_str(&data).map_err(|_| corrupt("event data"))?,
        body: Default::default(),
    }
    .sealed())
}

pub fn key(row: &SqliteRow) -> StoreResult<VirtualKey> {
    let hash: Vec<u8> = row.try_get("key_hash")?;
    let allowed: String = row.try_get("allowed_models")?;
    let time = |name: &str| -> StoreResult<_> {
        let text: String = row.try_get(name)?;
        parse_time(&text).ok_or_else(|| corrupt("key time"))
    };
    let previous = match (
        row.try_get::<Option<String>, _>("previous_webhook_secret")?,
        row.try_get::<Option<String>, _>("previous_secret_expires")?,
    ) {
        (Some(secret), Some(until)) => parse_time(&until).map(|t| (secret, t)),
        _ => None,
    };
    Ok(VirtualKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        key_hash: hash.try_into().map_err(|_| corrupt("key hash"))?,
        key_prefix: row.try_get("key_prefix")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        expires_at: row
            .try_get::<Option<String>, _>("expires_at")?
            .and_then(|t| parse_time(&t)),
        allowed_models: serde_json::from_str(&allowed).map_err(|_| corrupt("allowed models"))?,
        rate_limit_rpm: row
            .try_get::<Option<i64>, _>("rate_limit_rpm")?
            .map(|v| v as u32),
        rate_limit_rpd: row
            .try_get::<Option<i64>, _>("rate_limit_rpd")?
            .map(|v| v as u32),
        budget: row.try_get("budget")?,
        spend: row.try_get("spend")?,
        metadata: object_of(row.try_get("metadata")?)?.unwrap_or_default(),
        webhook_secret: row.try_get("webhook_secret")?,
        previous_webhook_secret: previous,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

pub fn endpoint(row: &SqliteRow) -> StoreResult<Endpoint> {
    let events: String = row.try_get("events")?;
    let previous = match (
        row.try_get::<Option<String>, _>("previous_secret")?,
        row.try_get::<Option<String>, _>("previous_expires")?,
    ) {
        (Some(secret), Some(until)) => Some((secret, until)),
        _ => None,
    };
    Ok(Endpoint {
        id: row.try_get("id")?,
        key_id: row.try_get("key_id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        events: serde_json::from_str(&events).map_err(|_| corrupt("endpoint events"))?,
        rate_limit: row
            .try_get::<Option<i64>, _>("rate_limit")?
            .map(|v| v as u32),
        secret: row.try_get("secret")?,
        previous_secret: previous,
        status: row.try_get("status")?,
        disabled_reason: row.try_get("disabled_reason")?,
        headers: object_of(row.try_get("headers")?)?.unwrap_or_default(),
        last_success_at: row.try_get("last_success_at")?,
        failing_since: row.try_get("failing_since")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub fn delivery(row: &SqliteRow) -> StoreResult<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        event_position: row.try_get("event_position")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        key_id: row.try_get("key_id")?,
        task_id: row.try_get("task_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        url: row.try_get("url")?,
        headers: object_of(row.try_get("headers")?)?,
        lane: row.try_get("lane")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_status_code: row.try_get("last_status_code")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub fn attempt(row: &SqliteRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        id: row.try_get("id")?,
        delivery_id: row.try_get("delivery_id")?,
        attempt: row.try_get("attempt")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        status_code: row.try_get("status_code")?,
        error: row.try_get("error")?,
        response_excerpt: row.try_get("response_excerpt")?,
    })
}
