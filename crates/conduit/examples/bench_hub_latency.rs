//! SignalR per-key event latency: the gateway in-process on the embedded SQLite
//! store, 1,000 virtual keys, one `/hubs/tasks` WebSocket connection per key,
//! and task events at a steady 1,000 events/s spread round-robin over the keys,
//! so that each event goes to exactly one connection (its key's).
//!
//! Each key owns one image task, created and started up front and never given
//! to the runner; the benchmark then drives the tasks' state machines itself
//! with `store.apply(Change::Transition { Progress })` (progress may repeat while
//! a task is processing), which is what the runner does for a real task. Each
//! commit is timed on the producer side: just before `apply` (includes the group
//! commit and its fsync) and when `apply` returned (the transaction committed
//! and the event was published on the bus: the commit sink runs before `apply`
//! returns). The clients, on their own single-threaded runtime, stamp each
//! `TaskProgress` on receipt and match it to the commit by its `eventId`.
//! Nothing is added to the wire format.
//!
//! Run: `cargo run --release -p conduit --example bench_hub_latency`
//! (`BENCH_SECONDS=20` sets the measured time after a 3 s warm-up;
//! `BENCH_KEYS=1000` the number of keys = connections; `BENCH_RATE=1000` the
//! events per second.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use conduit::config::{Config, RawConfig};
use conduit::keys::secrets;
use conduit::store::{Change, Transition};
use conduit::tasks::model::{Task, TaskStatus, TaskType};
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::Message;

const WARMUP_SECS: u64 = 3;

/// Nanoseconds since the benchmark started: one clock for producer and clients.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) in nanoseconds of the process or the calling thread.
fn cpu_ns(who: libc::c_int) -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn raise_nofile(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// p50 / p90 / p99 / max in milliseconds of signed nanosecond samples.
fn percentiles(mut ns: Vec<i64>) -> String {
    if ns.is_empty() {
        return "no samples".into();
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e6;
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3} ms  (n = {})",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        ns.len()
    )
}

/// One receipt: (connection index, event id, receipt stamp).
type Receipts = Arc<Mutex<Vec<(usize, String, u64)>>>;

/// One commit: event id → (task index, before apply, apply returned).
type Commits = Arc<Mutex<HashMap<String, (usize, u64, u64)>>>;

/// The event ids of the `TaskProgress` invocations in one text frame.
fn progress_event_ids(text: &str) -> Vec<String> {
    text.split('\u{1e}')
        .filter(|r| !r.is_empty())
        .filter_map(|r| serde_json::from_str::<Value>(r).ok())
        .filter(|m| m["type"] == 1 && m["target"] == "TaskProgress")
        .filter_map(|m| m["arguments"][0]["eventId"].as_str().map(str::to_string))
        .collect()
}

/// One client connection: handshake, then stamps receipts; a ping every 15 s
/// (as the official clients do) keeps the server's 30 s client timeout away.
async fn client(addr: std::net::SocketAddr, key: String, index: usize, receipts: Receipts) {
    let url = format!("ws://{addr}/hubs/tasks?access_token={key}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connect");
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await
        .unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str() == "{}\u{1e}" => {}
        other => panic!("handshake answer: {other:?}"),
    }
    let first = Duration::from_millis(1000 + (index as u64 * 15) % 15_000);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + first, Duration::from_secs(15));
    loop {
        tokio::select! {
            next = ws.next() => match next {
                Some(Ok(Message::Text(t))) => {
                    let at = clock();
                    let ids = progress_event_ids(t.as_str());
                    if !ids.is_empty() {
                        let mut r = receipts.lock().unwrap();
                        for id in ids {
                            r.push((index, id, at));
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("connection {index}: {e}"),
                None => panic!("connection {index} closed by the server"),
            },
            _ = ping.tick() => {
                ws.send(Message::text("{\"type\":6}\u{1e}")).await.unwrap();
            }
        }
    }
}

fn new_task(key_id: &str) -> Task {
    let created = conduit::ids::format_time(conduit::ids::now());
    Task {
        id: conduit::ids::new_id("task"),
        key_id: key_id.to_string(),
        task_type: TaskType::Image,
        status: TaskStatus::Pending,
        progress: 0,
        progress_message: Some("queued".into()),
        request: serde_json::json!({"prompt": "x", "n": 1, "size": "256x256"}),
        result: None,
        error: None,
        model: "dall-e-2".into(),
        provider: "local".into(),
        provider_model: "local".into(),
        webhook_url: None,
        webhook_headers: None,
        metadata: None,
        user_id: None,
        created_at: created.clone(),
        updated_at: created,
        completed_at: None,
        last_sequence: 0,
        version: 1,
        cost: 0.0,
    }
}

fn main() {
    clock();
    raise_nofile(20_000);
    let keys_n = env("BENCH_KEYS", 1000) as usize;
    let rate = env("BENCH_RATE", 1000);
    let seconds = env("BENCH_SECONDS", 20);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(async {
        let raw = RawConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            master_key: Some("condt_master_bench_hub_latency".into()),
            local_work_ms: 10,
            max_concurrent_tasks: 4096,
            log: "warn".into(),
            ..RawConfig::default()
        };
        conduit::server::start(Config::from_raw(raw).unwrap())
            .await
            .unwrap()
    });
    let app = server.app.clone();
    let addr = server.addr;
    println!(
        "conduit hub latency benchmark: {keys_n} keys x 1 connection (/hubs/tasks), \
         {rate} events/s, {WARMUP_SECS} s warm-up + {seconds} s; {} cores; SQLite in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir.path().display()
    );

    // Keys and one started task per key, committed concurrently (group commits).
    let (values, task_ids): (Vec<String>, Vec<String>) = rt.block_on(async {
        let mut jobs = Vec::new();
        for i in 0..keys_n {
            let app = app.clone();
            jobs.push(tokio::spawn(async move {
                let value = secrets::generate_key();
                let key = conduit::server::new_key(&format!("bench-{i}"), &value);
                let key_id = key.id.clone();
                app.store
                    .apply(Change::PutKey {
                        key: Box::new(key),
                        event: None,
                    })
                    .await
                    .expect("put key");
                let task = new_task(&key_id);
                let task_id = task.id.clone();
                let started = conduit::tasks::events::started(&task);
                app.store
                    .apply(Change::CreateTask(Box::new(task)))
                    .await
                    .expect("create task");
                app.store
                    .apply(Change::Transition {
                        task_id: task_id.clone(),
                        transition: Transition::Start { data: started },
                    })
                    .await
                    .expect("start task");
                (value, task_id)
            }));
        }
        let mut out = Vec::new();
        for j in jobs {
            out.push(j.await.unwrap());
        }
        out.into_iter().unzip()
    });
    println!("  {keys_n} keys and {keys_n} processing tasks committed");

    // The clients: their own single-threaded runtime on their own thread.
    let receipts: Receipts = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (cpu_tx, cpu_rx) = std::sync::mpsc::channel::<u64>();
    let (ask_tx, ask_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let receipts = receipts.clone();
        std::thread::spawn(move || {
            let crt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            crt.block_on(async move {
                let mut opening = Vec::new();
                for (index, key) in values.into_iter().enumerate() {
                    let receipts = receipts.clone();
                    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                    tokio::spawn(async move {
                        // Connected once the first poll of the stream is under way.
                        let _ = tx.send(());
                        client(addr, key, index, receipts).await;
                    });
                    opening.push(rx);
                }
                for rx in opening {
                    rx.await.unwrap();
                }
                ready_tx.send(()).unwrap();
                // Answers CPU-time queries for this thread (all client work).
                let mut ask_rx = ask_rx;
                while ask_rx.recv().await.is_some() {
                    cpu_tx.send(cpu_ns(libc::RUSAGE_THREAD)).unwrap();
                }
            });
        });
    }
    ready_rx.recv().unwrap();
    // Wait until every connection has joined its groups on the server.
    let hubs = conduit::hubs::of(&app).expect("hubs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while hubs.tasks.connection_count() < keys_n {
        assert!(
            Instant::now() < deadline,
            "only {} of {keys_n} connections",
            hubs.tasks.connection_count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    println!("  {keys_n} connections open and handshaken");

    // A thread of its own blocked on the event bus stamps each event when the
    // writer publishes it (right after its transaction committed).
    let published: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    {
        let published = published.clone();
        let mut bus = app.bus.subscribe();
        std::thread::spawn(move || {
            loop {
                match bus.blocking_recv() {
                    Ok(event) => {
                        let at = clock();
                        if event.event_type == "image.progress" {
                            published.lock().unwrap().insert(event.id.clone(), at);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }

    // The load: `rate` commits a second, round-robin over the tasks.
    let commits: Commits = Arc::default();
    let total = rate * (WARMUP_SECS + seconds);
    let warmup_events = rate * WARMUP_SECS;
    let ask_cpu = || {
        ask_tx.send(()).unwrap();
        cpu_rx.recv().unwrap()
    };
    let mut cpu_start = (0, 0, (0, 0));
    let mut wall_start = 0u64;
    let mut wall_end = 0u64;
    let mut cpu_end = cpu_start;
    let mut load_start = String::new();
    let mut late_ticks = 0u64;
    let task_ids = Arc::new(task_ids);
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inflight = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = tick.tick().await;
            if tokio::time::Instant::now() - scheduled > Duration::from_millis(2) {
                late_ticks += 1;
            }
            if i == warmup_events {
                load_start = loadavg();
                cpu_start = (cpu_ns(libc::RUSAGE_SELF), ask_cpu(), machine_jiffies());
                wall_start = clock();
            }
            let app = app.clone();
            let commits = commits.clone();
            let task_ids = task_ids.clone();
            inflight.push(tokio::spawn(async move {
                let index = i as usize % task_ids.len();
                let round = i / task_ids.len() as u64;
                let progress = (round % 100) as u8;
                let mut data = Map::new();
                data.insert("taskId".into(), task_ids[index].clone().into());
                data.insert("progress".into(), progress.into());
                data.insert("message".into(), "rendering".into());
                let before = clock();
                let applied = app
                    .store
                    .apply(Change::Transition {
                        task_id: task_ids[index].clone(),
                        transition: Transition::Progress {
                            progress,
                            message: "rendering".into(),
                            data: Value::Object(data),
                        },
                    })
                    .await
                    .expect("progress commit");
                let returned = clock();
                if i >= warmup_events {
                    let id = applied.events[0].id.clone();
                    commits
                        .lock()
                        .unwrap()
                        .insert(id, (index, before, returned));
                }
            }));
        }
        cpu_end = (cpu_ns(libc::RUSAGE_SELF), ask_cpu(), machine_jiffies());
        wall_end = clock();
        for f in inflight {
            f.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    });
    let load_end = loadavg();

    // Match receipts to commits.
    let commits = commits.lock().unwrap().clone();
    let receipts = receipts.lock().unwrap().clone();
    let published = published.lock().unwrap().clone();
    let mut from_published = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut from_before = Vec::new();
    let mut from_returned = Vec::new();
    let mut wrong_connection = 0;
    for (conn, id, at) in &receipts {
        let Some((task, before, returned)) = commits.get(id) else {
            continue; // a warm-up event
        };
        *seen.entry(id.as_str()).or_default() += 1;
        if conn != task {
            wrong_connection += 1;
        }
        from_before.push(*at as i64 - *before as i64);
        from_returned.push(*at as i64 - *returned as i64);
        if let Some(p) = published.get(id) {
            from_published.push(*at as i64 - *p as i64);
        }
    }
    let commit_cost: Vec<i64> = commits
        .values()
        .map(|(_, b, r)| *r as i64 - *b as i64)
        .collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let missing = commits.len() - seen.len();

    let wall = (wall_end - wall_start) as f64;
    let process = (cpu_end.0 - cpu_start.0) as f64;
    let client = (cpu_end.1 - cpu_start.1) as f64;
    let (busy0, total0) = cpu_start.2;
    let (busy1, total1) = cpu_end.2;
    let ticks = libc_clk_tck();
    let machine_busy = (busy1 - busy0) as f64 / ticks * 1e9;
    let machine_cores = (total1 - total0) as f64 / ticks * 1e9 / wall;
    println!(
        "measured: {} events committed in {seconds} s after warm-up ({late_ticks} ticks > 2 ms late; {:.0} events/s)",
        commits.len(),
        commits.len() as f64 / wall * 1e9
    );
    println!(
        "  received {} of {} (missing {missing}, duplicates {duplicates}, to a wrong connection {wrong_connection}); {} receipts in all",
        seen.len(),
        commits.len(),
        receipts.len()
    );
    println!(
        "  (a) commit returned -> receipt: {}",
        percentiles(from_returned)
    );
    println!(
        "  (c) bus publish (seen by a thread) -> receipt: {}",
        percentiles(from_published)
    );
    println!(
        "  (b) before commit   -> receipt: {}",
        percentiles(from_before)
    );
    println!(
        "  commit itself (apply):          {}",
        percentiles(commit_cost)
    );
    println!(
        "  CPU over the measured {seconds} s: process {:.1} % of a core (server + producer {:.1} %, clients {:.1} %); \
         whole machine busy {:.1} % of a core ({machine_cores:.2} cores seen), others ~{:.1} %",
        process / wall * 100.0,
        (process - client) / wall * 100.0,
        client / wall * 100.0,
        machine_busy / wall * 100.0,
        (machine_busy - process).max(0.0) / wall * 100.0
    );
    println!("  load average: {load_start} at start, {load_end} at end");
    std::process::exit(0);
}

fn libc_clk_tck() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}
