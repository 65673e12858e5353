//! A webhook receiver for the tests: a real HTTP server on 127.0.0.1 port 0 that
//! records every request and answers as a test tells it to; plus verification of
//! recorded requests with the `standardwebhooks` npm package (run by node).

#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// The answer's status.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// How to answer: given the request and how many requests with its `webhook-id`
/// came to this path before (0 for the first), the status, extra headers and a delay.
pub type Behaviour = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
    /// Holds the answer back until this turns true.
    pub hold: Option<Arc<AtomicBool>>,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            delay: Duration::ZERO,
            hold: None,
        }
    }

    pub fn ok() -> Answer {
        Answer::status(200)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    pub fn held_until(mut self, released: Arc<AtomicBool>) -> Answer {
        self.hold = Some(released);
        self
    }
}

struct Shared {
    log: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
}

/// The running receiver.
pub struct Receiver {
    pub base: String,
    shared: Arc<Shared>,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut received = Received {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        status: 0,
    };
    let seen = {
        let log = shared.log.lock().unwrap();
        let id = received.header("webhook-id").to_string();
        log.iter()
            .filter(|r| r.path == received.path && r.header("webhook-id") == id)
            .count()
    };
    let behaviour = shared.behaviour.lock().unwrap().clone();
    let answer = behaviour(&received, seen);
    if let Some(released) = &answer.hold {
        while !released.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    received.status = answer.status;
    shared.log.lock().unwrap().push(received);
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), "ok").into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    /// Starts a receiver that answers 200 to everything.
    pub async fn start() -> Receiver {
        Self::with(|_, _| Answer::ok()).await
    }

    pub async fn with(
        behaviour: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let shared = Arc::new(Shared {
            log: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Arc::new(behaviour)),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base: format!("http://{addr}"),
            shared,
        }
    }

    /// Changes how the receiver answers from now on.
    pub fn set(&self, behaviour: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static) {
        *self.shared.behaviour.lock().unwrap() = Arc::new(behaviour);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request answered so far, in order of answer.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests to one path.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `done` holds for the log; panics with `what` after `limit`.
    pub async fn wait(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.requests();
            if done(&log) {
                return log;
            }
            if Instant::now() > deadline {
                let summary: Vec<String> = log
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.path, r.header("x-conduit-event"), r.status))
                    .collect();
                panic!("timed out waiting for {what}; received: {summary:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// What node and the `standardwebhooks` package said about one request.
#[derive(Debug, Clone)]
pub struct NodeVerdict {
    /// `Webhook(secret).verify(rawBody, headers)` passed (else the error).
    pub standard: Result<(), String>,
    /// `JSON.stringify(JSON.parse(body)) === body`.
    pub round_trips: bool,
    /// The guide's check: HMAC-SHA256 hex of `JSON.stringify(req.body)` with the whole secret.
    pub seed_signature: bool,
}

/// Where the `standardwebhooks` package is installed for the tests; `None`
/// (after printing why) if node or npm is missing.
fn node_modules() -> Option<std::path::PathBuf> {
    static DIR: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let node = Command::new("node").arg("--version").output();
        if node.is_err() {
            eprintln!("SKIPPED: node is not installed, so the standardwebhooks checks cannot run");
            return None;
        }
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("standardwebhooks-js");
        if !dir
            .join("node_modules/standardwebhooks/package.json")
            .exists()
        {
            std::fs::create_dir_all(&dir).unwrap();
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(&dir)
                .arg("standardwebhooks@1.3.0")
                .stdout(Stdio::null())
                .status()
                .expect("npm runs (node is installed, so npm should be too)");
            assert!(status.success(), "npm install standardwebhooks failed");
        }
        Some(dir.join("node_modules"))
    })
    .clone()
}

const VERIFY_JS: &str = r#"
const { Webhook } = require('standardwebhooks');
const crypto = require('crypto');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = input.map((r) => {
  const verdict = {};
  try { new Webhook(r.secret).verify(r.body, r.headers); verdict.standard = 'ok'; }
  catch (e) { verdict.standard = String(e.message); }
  let parsed = null;
  try { parsed = JSON.parse(r.body); } catch { }
  verdict.roundTrips = parsed !== null && JSON.stringify(parsed) === r.body;
  const expected = 'sha256=' + crypto.createHmac('sha256', r.seedSecret).update(JSON.stringify(parsed)).digest('hex');
  verdict.seed = r.headers['x-conduit-signature'] === expected;
  return verdict;
});
process.stdout.write(JSON.stringify(out));
"#;

/// Verifies requests with node: Standard Webhooks with `secret`, and the guide's
/// check with `seed_secret`. `None` if node is missing (the caller skips).
pub fn node_verify(
    requests: &[Received],
    secret: &str,
    seed_secret: &str,
) -> Option<Vec<NodeVerdict>> {
    let modules = node_modules()?;
    let input: Vec<Value> = requests
        .iter()
        .map(|r| json!({"secret": secret, "seedSecret": seed_secret, "headers": r.headers, "body": r.body}))
        .collect();
    let mut child = Command::new("node")
        .args(["-e", VERIFY_JS])
        .env("NODE_PATH", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "node verification script failed");
    let verdicts: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    Some(
        verdicts
            .iter()
            .map(|v| NodeVerdict {
                standard: match v["standard"].as_str() {
                    Some("ok") => Ok(()),
                    other => Err(other.unwrap_or_default().to_string()),
                },
                round_trips: v["roundTrips"].as_bool().unwrap_or(false),
                seed_signature: v["seed"].as_bool().unwrap_or(false),
            })
            .collect(),
    )
}
