-- Keys, tasks, the event log and the webhook outbox.
-- Times are RFC 3339 UTC text with milliseconds (they sort as text).

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE keys (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    key_hash                  BLOB NOT NULL UNIQUE,
    key_prefix                TEXT NOT NULL,
    enabled                   INTEGER NOT NULL,
    disabled_reason           TEXT,
    expires_at                TEXT,
    allowed_models            TEXT NOT NULL,
    rate_limit_rpm            INTEGER,
    rate_limit_rpd            INTEGER,
    budget                    REAL,
    spend                     REAL NOT NULL DEFAULT 0,
    metadata                  TEXT NOT NULL,
    webhook_secret            TEXT NOT NULL,
    previous_webhook_secret   TEXT,
    previous_secret_expires   TEXT,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    key_id           TEXT NOT NULL,
    type             TEXT NOT NULL,
    status           TEXT NOT NULL,
    progress         INTEGER NOT NULL,
    progress_message TEXT,
    request          TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    model            TEXT NOT NULL,
    provider         TEXT NOT NULL,
    provider_model   TEXT NOT NULL,
    webhook_url      TEXT,
    webhook_headers  TEXT,
    metadata         TEXT,
    user_id          TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT,
    last_sequence    INTEGER NOT NULL,
    version          INTEGER NOT NULL,
    cost             REAL NOT NULL
);
CREATE INDEX tasks_by_key ON tasks (key_id, created_at DESC, id DESC);
CREATE INDEX tasks_unfinished ON tasks (status) WHERE status IN ('pending', 'processing');

CREATE TABLE events (
    position  INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    key_id    TEXT,
    task_id   TEXT,
    type      TEXT NOT NULL,
    sequence  INTEGER,
    timestamp TEXT NOT NULL,
    data      TEXT NOT NULL
);
CREATE INDEX events_by_key ON events (key_id, position);
CREATE INDEX events_by_task ON events (task_id, sequence);

CREATE TABLE webhook_endpoints (
    id                  TEXT PRIMARY KEY,
    key_id              TEXT,
    url                 TEXT NOT NULL,
    description         TEXT,
    events              TEXT NOT NULL,
    rate_limit          INTEGER,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_expires    TEXT,
    status              TEXT NOT NULL,
    disabled_reason     TEXT,
    headers             TEXT NOT NULL,
    last_success_at     TEXT,
    failing_since       TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    event_position   INTEGER NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    key_id           TEXT,
    task_id          TEXT,
    endpoint_id      TEXT,
    url              TEXT NOT NULL,
    headers          TEXT,
    lane             TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_status_code INTEGER,
    last_error       TEXT,
    next_attempt_at  TEXT,
    lease_until      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX deliveries_due ON webhook_deliveries (next_attempt_at, event_position) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_lane ON webhook_deliveries (lane, event_position) WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_by_key ON webhook_deliveries (key_id, created_at DESC);
CREATE INDEX deliveries_by_event ON webhook_deliveries (event_id);
CREATE INDEX deliveries_by_endpoint ON webhook_deliveries (endpoint_id) WHERE status IN ('pending', 'failed');

CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       TEXT NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_excerpt TEXT
);
CREATE INDEX attempts_by_delivery ON webhook_attempts (delivery_id, attempt);
