//! Configuration: an optional `conduit.toml`, overridden by `CONDUIT_*` environment
//! variables. Every field has a default that runs the embedded single-process mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Errors found while reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// The raw settings as read from the file and the environment.
///
/// List-valued settings are comma-separated strings so that the same text works in
/// the file and in an environment variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub listen: String,
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub master_key: Option<String>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub media_dir: Option<PathBuf>,
    pub webhook_allow_cidrs: String,
    pub webhook_retry_schedule: String,
    pub webhook_timeout_ms: u64,
    pub webhook_retry_after_cap_secs: u64,
    pub webhook_concurrency: usize,
    pub webhook_disable_after_secs: u64,
    pub webhook_secret_grace_secs: u64,
    pub webhook_https_only: bool,
    pub local_work_ms: u64,
    pub log: String,
    pub log_format: String,
    pub max_concurrent_tasks: usize,
    pub task_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub usage_metrics_interval_ms: u64,
    pub header_read_timeout_ms: u64,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: "127.0.0.1:5000".into(),
            public_url: None,
            data_dir: PathBuf::from("./conduit-data"),
            master_key: None,
            database_url: None,
            redis_url: None,
            redis_prefix: "conduit:".into(),
            media_dir: None,
            webhook_allow_cidrs: String::new(),
            webhook_retry_schedule: "5,30,120,600,1800,3600,10800,21600,43200,86400".into(),
            webhook_timeout_ms: 10_000,
            webhook_retry_after_cap_secs: 3600,
            webhook_concurrency: 256,
            webhook_disable_after_secs: 5 * 24 * 3600,
            webhook_secret_grace_secs: 24 * 3600,
            webhook_https_only: false,
            local_work_ms: 1500,
            log: "info".into(),
            log_format: "text".into(),
            max_concurrent_tasks: 32,
            task_timeout_secs: 600,
            max_body_bytes: 25 * 1024 * 1024,
            usage_metrics_interval_ms: 5000,
            header_read_timeout_ms: 30_000,
        }
    }
}

/// Checked configuration used by the running gateway.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Base of every absolute URL in responses and events, without a trailing slash.
    pub public_url: String,
    pub data_dir: PathBuf,
    pub media_dir: PathBuf,
    /// Admin key given by the operator; generated and stored at first start otherwise.
    pub master_key: Option<String>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// Ranges that webhook URLs may reach despite the SSRF guard.
    pub webhook_allow_cidrs: Vec<IpNet>,
    pub webhook_retry_schedule: Vec<Duration>,
    pub webhook_timeout: Duration,
    pub webhook_retry_after_cap: Duration,
    pub webhook_concurrency: usize,
    /// An endpoint that has not succeeded for this long is disabled.
    pub webhook_disable_after: Duration,
    /// How long a rotated-out webhook secret still signs deliveries.
    pub webhook_secret_grace: Duration,
    pub webhook_https_only: bool,
    /// Simulated work time of the `local` provider (per image, per second of video).
    pub local_work: Duration,
    pub log: String,
    pub log_json: bool,
    pub max_concurrent_tasks: usize,
    pub task_timeout: Duration,
    pub max_body_bytes: usize,
    pub usage_metrics_interval: Duration,
    /// A client must send a request's headers within this time.
    pub header_read_timeout: Duration,
}

impl Config {
    /// Reads `conduit.toml` (or the file named by `CONDUIT_CONFIG`) and the environment.
    pub fn load() -> Result<Config, ConfigError> {
        let file = std::env::var("CONDUIT_CONFIG").unwrap_or_else(|_| "conduit.toml".into());
        let raw: RawConfig = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("CONDUIT_").ignore(&["config"]))
            .extract()
            .map_err(Box::new)?;
        Config::from_raw(raw)
    }

    /// Checks raw settings and derives the dependent defaults.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        let listen: SocketAddr = raw.listen.parse().map_err(|_| ConfigError::Invalid {
            field: "listen",
            message: format!("`{}` is not an address like 127.0.0.1:5000", raw.listen),
        })?;
        let public_url = raw
            .public_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        let media_dir = raw.media_dir.unwrap_or_else(|| raw.data_dir.join("media"));
        // Zero would silently break the gateway: every delivery timing out at
        // once, or no delivery or task ever starting.
        for (field, value) in [
            ("webhook_timeout_ms", raw.webhook_timeout_ms),
            ("webhook_concurrency", raw.webhook_concurrency as u64),
            ("max_concurrent_tasks", raw.max_concurrent_tasks as u64),
            ("task_timeout_secs", raw.task_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(Config {
            listen,
            public_url,
            media_dir,
            data_dir: raw.data_dir,
            master_key: raw.master_key.filter(|k| !k.is_empty()),
            database_url: raw.database_url.filter(|u| !u.is_empty()),
            redis_url: raw.redis_url.filter(|u| !u.is_empty()),
            redis_prefix: raw.redis_prefix,
            webhook_allow_cidrs: parse_cidrs(&raw.webhook_allow_cidrs)?,
            webhook_retry_schedule: parse_schedule(&raw.webhook_retry_schedule)?,
            webhook_timeout: Duration::from_millis(raw.webhook_timeout_ms.max(1)),
            webhook_retry_after_cap: Duration::from_secs(raw.webhook_retry_after_cap_secs),
            webhook_concurrency: raw.webhook_concurrency.max(1),
            webhook_disable_after: Duration::from_secs(raw.webhook_disable_after_secs),
            webhook_secret_grace: Duration::from_secs(raw.webhook_secret_grace_secs),
            webhook_https_only: raw.webhook_https_only,
            local_work: Duration::from_millis(raw.local_work_ms),
            log: raw.log,
            log_json: raw.log_format.eq_ignore_ascii_case("json"),
            max_concurrent_tasks: raw.max_concurrent_tasks.max(1),
            task_timeout: Duration::from_secs(raw.task_timeout_secs.max(1)),
            max_body_bytes: raw.max_body_bytes.max(1024),
            usage_metrics_interval: Duration::from_millis(raw.usage_metrics_interval_ms.max(100)),
            header_read_timeout: Duration::from_millis(raw.header_read_timeout_ms.max(100)),
        })
    }

    /// A configuration for tests: everything under `dir`, listening on port 0.
    pub fn for_dir(dir: impl Into<PathBuf>) -> Config {
        let raw = RawConfig {
            data_dir: dir.into(),
            listen: "127.0.0.1:0".into(),
            ..RawConfig::default()
        };
        Config::from_raw(raw).expect("default configuration is valid")
    }
}

/// Parses `127.0.0.0/8, ::1/128` (a bare address means that one address).
fn parse_cidrs(text: &str) -> Result<Vec<IpNet>, ConfigError> {
    split_list(text)
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| ConfigError::Invalid {
                    field: "webhook_allow_cidrs",
                    message: format!("`{part}` is not a CIDR range like 127.0.0.0/8"),
                })
        })
        .collect()
}

/// Parses `5,30,120` into delays; fractional seconds are allowed for tests.
fn parse_schedule(text: &str) -> Result<Vec<Duration>, ConfigError> {
    split_list(text)
        .map(|part| match part.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(ConfigError::Invalid {
                field: "webhook_retry_schedule",
                message: format!("`{part}` is not a number of seconds"),
            }),
        })
        .collect()
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_embedded_on_port_5000() {
        let config = Config::from_raw(RawConfig::default()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.public_url, "http://127.0.0.1:5000");
        assert_eq!(config.media_dir, PathBuf::from("./conduit-data/media"));
        assert_eq!(config.webhook_retry_schedule.len(), 10);
        assert!(config.webhook_allow_cidrs.is_empty());
    }

    #[test]
    fn lists_parse_and_bad_values_are_named() {
        assert_eq!(parse_cidrs("127.0.0.0/8, ::1").unwrap().len(), 2);
        assert_eq!(
            parse_schedule("0.5,1").unwrap(),
            vec![Duration::from_millis(500), Duration::from_secs(1)]
        );
        let err = parse_cidrs("127.0.0.0/99").unwrap_err().to_string();
        assert!(err.contains("webhook_allow_cidrs"), "{err}");
        assert!(parse_schedule("soon").is_err());
        let raw = RawConfig {
            listen: "nowhere".into(),
            ..RawConfig::default()
        };
        assert!(Config::from_raw(raw).is_err());
        let raw = RawConfig {
            webhook_timeout_ms: 0,
            ..RawConfig::default()
        };
        let err = Config::from_raw(raw).unwrap_err().to_string();
        assert!(err.contains("webhook_timeout_ms"), "{err}");
        let raw = RawConfig {
            webhook_concurrency: 0,
            ..RawConfig::default()
        };
        assert!(Config::from_raw(raw).is_err());
    }
}
