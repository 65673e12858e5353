//! Shared by the integration tests: a real gateway on 127.0.0.1 port 0, either
//! in this process or as a child process of the built binary (for kill -9).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use conduit::config::{Config, RawConfig};
use conduit::server::RunningServer;
use serde_json::{Value, json};

pub const MASTER_KEY: &str = "condt_master_integration_tests";

/// A gateway running inside the test process.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub base: String,
    pub key: String,
    pub webhook_secret: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// Settings the tests start from: fast local work, loopback webhooks allowed.
pub fn raw_config(dir: &Path) -> RawConfig {
    RawConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        master_key: Some(MASTER_KEY.into()),
        local_work_ms: 50,
        webhook_allow_cidrs: "127.0.0.0/8".into(),
        webhook_retry_schedule: "0.2,0.4,0.8".into(),
        ..RawConfig::default()
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with settings changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut RawConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut raw = raw_config(dir.path());
        adjust(&mut raw);
        let config = Config::from_raw(raw).expect("config");
        let server = conduit::server::start(config).await.expect("server starts");
        let first = server
            .first_start
            .clone()
            .expect("first start creates the default key");
        TestServer {
            base: format!("http://{}", server.addr),
            server: Some(server),
            key: first.default_key,
            webhook_secret: first.default_webhook_secret,
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// Disables a key through the admin API.
    pub async fn disable_key(&self, key_id: &str) {
        let res = self
            .http
            .patch(self.url(&format!("/admin/v1/keys/{key_id}")))
            .bearer_auth(MASTER_KEY)
            .json(&serde_json::json!({"enabled": false}))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
    }

    /// Creates another virtual key through the admin API; returns (value, id, webhook secret).
    pub async fn create_key(&self, body: Value) -> (String, String, String) {
        let res = self.post("/admin/v1/keys", MASTER_KEY, body).await;
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.unwrap();
        (
            v["key"].as_str().unwrap().to_string(),
            v["id"].as_str().unwrap().to_string(),
            v["webhook_secret"].as_str().unwrap().to_string(),
        )
    }

    /// Submits an async image task and returns its id.
    pub async fn submit_image(&self, key: &str, extra: Value) -> String {
        let mut body = json!({"prompt": "a lighthouse", "async": true});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        let res = self.post("/v1/images/generations", key, body).await;
        let status = res.status();
        let v: Value = res.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        v["task_id"].as_str().unwrap().to_string()
    }

    /// Long-polls until the task has finished; returns it.
    pub async fn wait_done(&self, key: &str, task_id: &str) -> Value {
        for _ in 0..100 {
            let v: Value = self
                .get(&format!("/v1/tasks/{task_id}?wait=5"), key)
                .await
                .json()
                .await
                .unwrap();
            let status = v["status"].as_str().unwrap_or_default();
            if !matches!(status, "pending" | "processing") {
                return v;
            }
        }
        panic!("task {task_id} did not finish");
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

/// The gateway as a child process, so a test can kill it with SIGKILL.
pub struct ChildServer {
    pub child: Child,
    pub base: String,
    pub dir: PathBuf,
    pub stdout_log: PathBuf,
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ChildServer {
    /// Starts `conduit serve` on `dir` with extra environment; waits until healthy.
    pub async fn start(dir: &Path, port: u16, env: &[(&str, &str)]) -> ChildServer {
        let log = dir.join(format!("stdout-{port}-{}.log", std::process::id()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conduit"));
        cmd.arg("serve")
            .env("CONDUIT_DATA_DIR", dir)
            .env("CONDUIT_LISTEN", format!("127.0.0.1:{port}"))
            .env("CONDUIT_MASTER_KEY", MASTER_KEY)
            .env("CONDUIT_WEBHOOK_ALLOW_CIDRS", "127.0.0.0/8")
            .env("CONDUIT_LOG", "warn")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn conduit");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return ChildServer {
                    child,
                    base,
                    dir: dir.to_path_buf(),
                    stdout_log: log,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "conduit did not become healthy; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// The `default` key and its webhook secret, printed at first start.
    pub fn first_start_credentials(&self) -> (String, String) {
        let text = std::fs::read_to_string(&self.stdout_log).unwrap_or_default();
        let find = |label: &str| {
            text.lines()
                .find(|l| l.contains(label))
                .and_then(|l| l.split_whitespace().last())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("no `{label}` line in: {text}"))
        };
        (
            find("virtual key `default`"),
            find("webhook signing secret"),
        )
    }

    /// SIGKILL: no graceful anything.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill");
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
