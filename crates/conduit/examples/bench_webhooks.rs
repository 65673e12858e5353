//! Webhook delivery benchmark: the gateway in-process on the embedded SQLite
//! store, a loopback receiver with 200 endpoint URLs (`/r/0` … `/r/199`).
//!
//! Three phases, each with its own key and endpoints:
//! 1. throughput: one key with 200 endpoints; events are committed as fast as
//!    the store takes them, each fanning out to all 200; reports durable
//!    deliveries per second (until the outbox is empty: every delivery recorded
//!    as succeeded in the database);
//! 2. latency: 500 events a second, each to one of 200 endpoints; reports the
//!    time from just before the event's commit to the receiver's receipt, and
//!    from the moment the commit returned to the receipt;
//! 3. the same at 500 events a second while 50 of the 200 endpoints never answer
//!    (timeouts): reports the latency of the 150 healthy endpoints.
//!
//! Run: `cargo run --release -p conduit --example bench_webhooks`
//! (`BENCH_SECONDS=10` sets the length of phases 2 and 3).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use conduit::config::{Config, RawConfig};
use conduit::store::Change;
use serde_json::{Value, json};

const MASTER: &str = "condt_master_bench_webhooks";
const ENDPOINTS: usize = 200;
const DEAD: usize = 50;
const RATE: u64 = 500;

/// Nanoseconds since the benchmark started: one clock for sender and receiver.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What the receiver saw: per request, (endpoint index, send stamp, receipt stamp).
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    samples: Mutex<Vec<(usize, u64, u64, u64)>>,
}

async fn receive(State(seen): State<Arc<Seen>>, Path(n): Path<usize>, body: Bytes) -> &'static str {
    let at = clock();
    seen.count.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = serde_json::from_slice::<Value>(&body)
        && let Some(t) = v["data"]["t"].as_u64()
    {
        let seq = v["data"]["i"].as_u64().unwrap_or(0);
        seen.samples.lock().unwrap().push((n, t, at, seq));
    }
    "ok"
}

/// A receiver that never answers (until the gateway's timeout gives up).
async fn black_hole() -> &'static str {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "late"
}

/// Starts the receiver on its own single-threaded runtime.
fn start_receiver(seen: Arc<Seen>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/r/{n}", axum::routing::post(receive))
                .route("/dead/{n}", axum::routing::post(black_hole))
                .with_state(seen);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// p50 / p99 / max in milliseconds of signed microsecond samples.
fn percentiles(mut micros: Vec<i64>) -> String {
    if micros.is_empty() {
        return "no samples".into();
    }
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (n = {})",
        at(0.5),
        at(0.99),
        at(1.0),
        micros.len()
    )
}

struct Bench {
    app: Arc<conduit::app::App>,
    http: reqwest::Client,
    base: String,
    receiver: String,
    seen: Arc<Seen>,
}

impl Bench {
    /// A new key; returns (value, id).
    async fn key(&self, name: &str) -> (String, String) {
        let res = self
            .http
            .post(format!("{}/admin/v1/keys", self.base))
            .bearer_auth(MASTER)
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        let v: Value = res.json().await.unwrap();
        (
            v["key"].as_str().unwrap().into(),
            v["id"].as_str().unwrap().into(),
        )
    }

    async fn endpoint(&self, key: &str, url: String, events: Value) {
        // A key created a moment ago can be briefly unknown (the key directory's
        // periodic reload may race the commit); try again then.
        for _ in 0..50 {
            let body = json!({"url": url, "events": events});
            let res = self
                .http
                .post(format!("{}/v1/webhooks", self.base))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            match res.status().as_u16() {
                201 => return,
                401 => tokio::time::sleep(Duration::from_millis(100)).await,
                other => panic!("{other}: {}", res.text().await.unwrap()),
            }
        }
        panic!("the new key stayed unknown");
    }

    /// Commits one event; returns the commit's duration.
    async fn emit(app: &conduit::app::App, key_id: &str, event_type: String, i: u64) -> (u64, u64) {
        let t = clock();
        let data = json!({"t": t, "i": i});
        app.store
            .apply(Change::Emit {
                key_id: Some(key_id.to_string()),
                event_type,
                data,
            })
            .await
            .expect("commit");
        (t, clock())
    }

    async fn wait_outbox_empty(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let (depth, _) = self.app.store.outbox_depth().await.unwrap();
            if depth == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "outbox still holds {depth} deliveries"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Phase 1: durable deliveries per second with 200 endpoints.
    async fn throughput(&self, events: u64) {
        let (key, key_id) = self.key("throughput").await;
        for n in 0..ENDPOINTS {
            self.endpoint(&key, format!("{}/r/{n}", self.receiver), json!(["key.*"]))
                .await;
        }
        let before = self.seen.count.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut emitters = Vec::new();
        for w in 0..8u64 {
            let app = self.app.clone();
            let key_id = key_id.clone();
            emitters.push(tokio::spawn(async move {
                for i in (w..events).step_by(8) {
                    Self::emit(&app, &key_id, "key.rate_limited".into(), i).await;
                }
            }));
        }
        for e in emitters {
            e.await.unwrap();
        }
        let committed = started.elapsed();
        // Count receipts first (free), then confirm in the database that every
        // delivery was recorded (the outbox count is not free to poll).
        let total = events * ENDPOINTS as u64;
        while self.seen.count.load(Ordering::Relaxed) - before < total {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.wait_outbox_empty(Duration::from_secs(300)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let delivered = self.seen.count.load(Ordering::Relaxed) - before;
        println!("throughput: {events} events x {ENDPOINTS} endpoints = {total} deliveries");
        println!(
            "  events committed in {:.2} s; every delivery recorded succeeded after {elapsed:.2} s",
            committed.as_secs_f64()
        );
        println!(
            "  received {delivered} requests ({} repeats)",
            delivered.saturating_sub(total)
        );
        println!("  durable deliveries/s: {:.0}", total as f64 / elapsed);
        self.seen.samples.lock().unwrap().clear();
    }

    /// Phases 2 and 3: latency at a steady rate; `dead` endpoints never answer.
    /// Each of 200 keys has one endpoint, and event `i` is key `i mod 200`'s, so
    /// every event is one delivery to one endpoint.
    async fn latency(&self, name: &str, dead: usize, seconds: u64) {
        let mut key_ids = Vec::with_capacity(ENDPOINTS);
        for n in 0..ENDPOINTS {
            let (key, key_id) = self.key(&format!("{name}-{n}")).await;
            let url = if n < dead {
                format!("{}/dead/{n}", self.receiver)
            } else {
                format!("{}/r/{n}", self.receiver)
            };
            self.endpoint(&key, url, json!(["key.rate_limited"])).await;
            key_ids.push(key_id);
        }
        self.seen.samples.lock().unwrap().clear();
        let commits = Arc::new(Mutex::new(Vec::new()));
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / RATE));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let total = RATE * seconds;
        for i in 0..total {
            tick.tick().await;
            let app = self.app.clone();
            let key_id = key_ids[i as usize % ENDPOINTS].clone();
            let commits = commits.clone();
            tokio::spawn(async move {
                let (t, done) = Self::emit(&app, &key_id, "key.rate_limited".into(), i).await;
                commits.lock().unwrap().push((i, t, done));
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;

        // Skip the first second (connections being opened), keep healthy endpoints only.
        let warmup = RATE;
        let done_at: std::collections::HashMap<u64, (u64, u64)> = commits
            .lock()
            .unwrap()
            .iter()
            .map(|(i, t, d)| (*i, (*t, *d)))
            .collect();
        let samples: Vec<(usize, u64, u64, u64)> = self.seen.samples.lock().unwrap().clone();
        let healthy: Vec<&(usize, u64, u64, u64)> = samples
            .iter()
            .filter(|(n, _, _, i)| *n >= dead && *i >= warmup)
            .collect();
        let from_start: Vec<i64> = healthy
            .iter()
            .map(|(_, t, at, _)| ((at - t) / 1000) as i64)
            .collect();
        let from_commit: Vec<i64> = healthy
            .iter()
            .filter_map(|(_, _, at, i)| {
                done_at.get(i).map(|(_, d)| (*at as i64 - *d as i64) / 1000)
            })
            .collect();
        let commit_cost: Vec<i64> = done_at
            .values()
            .map(|(t, d)| ((d - t) / 1000) as i64)
            .collect();
        let expected = (total - warmup) * (ENDPOINTS - dead) as u64 / ENDPOINTS as u64;
        println!(
            "{name}: {RATE} events/s for {seconds} s, {dead} of {ENDPOINTS} endpoints never answer"
        );
        println!(
            "  healthy deliveries measured: {} of ~{expected}",
            healthy.len()
        );
        println!("  before commit -> receipt: {}", percentiles(from_start));
        println!("  commit returned -> receipt: {}", percentiles(from_commit));
        println!("  commit itself (apply): {}", percentiles(commit_cost));
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        clock();
        let seconds: u64 = std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let dir = tempfile::tempdir().unwrap();
        let raw = RawConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            master_key: Some(MASTER.into()),
            webhook_allow_cidrs: "127.0.0.0/8".into(),
            log: "warn".into(),
            ..RawConfig::default()
        };
        let server = conduit::server::start(Config::from_raw(raw).unwrap())
            .await
            .unwrap();
        let seen = Arc::new(Seen::default());
        let bench = Bench {
            app: server.app.clone(),
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
            receiver: start_receiver(seen.clone()),
            seen,
        };
        println!(
            "conduit webhooks benchmark ({} cores, SQLite in {})",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            dir.path().display()
        );
        bench.throughput(200).await;
        bench.latency("lat", 0, seconds).await;
        bench.latency("dead", DEAD, seconds + 5).await;
        std::process::exit(0);
    });
}
