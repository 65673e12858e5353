//! The `conduit` command: `serve`, and `keys create|list|disable`.

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use conduit::config::Config;
use conduit::keys::model::bounds;
use conduit::keys::secrets;
use conduit::store::sqlite::SqliteStore;
use conduit::store::{Applied, Change, CommitSink, Store};

#[derive(Parser)]
#[command(
    name = "conduit",
    version,
    about = "Gateway for asynchronous AI media jobs: webhooks, SignalR and polling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gateway (configuration: conduit.toml and CONDUIT_* variables).
    Serve,
    /// Manages virtual keys in the data directory (works while the gateway runs).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Creates a key and prints its value and webhook secret once.
    Create {
        /// 1–128 characters.
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// Budget in USD.
        #[arg(long, value_parser = parse_budget)]
        budget: Option<f64>,
        /// Requests per minute.
        #[arg(long, value_parser = clap::value_parser!(u32).range(*bounds::RPM.start()..=*bounds::RPM.end()))]
        rpm: Option<u32>,
    },
    /// Lists keys (never their values).
    List,
    /// Disables a key by id or name.
    Disable { key: String },
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Raises the soft limit on open files to the hard limit, as a server that holds one
/// descriptor per client connection should: the usual soft default (1024) would cap
/// the SignalR hubs at about a thousand clients. Returns the soft limit now in force.
#[cfg(unix)]
fn raise_open_file_limit() -> u64 {
    // SAFETY: plain system calls on a stack value.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        // `rlim_t` is not `u64` on every platform.
        #[allow(clippy::unnecessary_cast)]
        let current = limit.rlim_cur as u64;
        current
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A refusal (bad settings, a data directory in use) is one line, not a
    // backtrace, whatever RUST_BACKTRACE says.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("conduit: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    #[cfg(unix)]
    let open_files = raise_open_file_limit();
    let cli = Cli::parse();
    let config = Config::load()?;
    init_logging(&config);
    #[cfg(unix)]
    tracing::debug!(open_files, "open-file limit");
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Keys { command } => keys(config, command).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = conduit::server::start(config).await?;
    if let Some(first) = &server.first_start {
        // Shown once, on standard output only: never through the log.
        println!();
        println!("Conduit first start: keep these values, they are not shown again.");
        if let Some(master) = &first.master_key {
            println!("  master key (admin API):      {master}");
        }
        println!("  virtual key `default`:       {}", first.default_key);
        println!(
            "  its webhook signing secret:  {}",
            first.default_webhook_secret
        );
        println!();
    }
    let app = server.app.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        app.shutdown.cancel();
    });
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A key name as the admin API accepts it.
fn parse_name(text: &str) -> Result<String, String> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > bounds::NAME_CHARS {
        return Err(format!("a name has 1 to {} characters", bounds::NAME_CHARS));
    }
    Ok(text.to_string())
}

/// A budget as the admin API accepts it: a finite, non-negative amount.
fn parse_budget(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if bounds::BUDGET.contains(&v) => Ok(v),
        _ => Err(format!(
            "a budget is an amount in USD from {} to {}",
            bounds::BUDGET.start(),
            bounds::BUDGET.end()
        )),
    }
}

/// The command line changes keys straight in the store; a running gateway picks
/// the change up within two seconds (and publishes a `key.disabled` written
/// here to its hubs and event streams).
struct NoSink;

impl CommitSink for NoSink {
    fn committed(&self, _: &Applied) {}
}

async fn keys(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    let store = SqliteStore::open(&config.data_dir, Arc::new(NoSink)).await?;
    // The key's webhook endpoints get their deliveries of a `key.disabled`
    // written in the same transaction, as in the gateway.
    let endpoints = conduit::webhooks::EndpointDirectory::load(store.endpoints().await?);
    store.set_planner(Arc::new(conduit::webhooks::planner::Planner {
        endpoints: Arc::new(endpoints),
        gate: Arc::new(conduit::webhooks::gate::Gate::new()),
    }));
    match command {
        KeysCommand::Create { name, budget, rpm } => {
            let value = secrets::generate_key();
            let mut key = conduit::server::new_key(&name, &value);
            key.budget = budget;
            key.rate_limit_rpm = rpm;
            let secret = key.webhook_secret.clone();
            let id = key.id.clone();
            store
                .apply(Change::PutKey {
                    key: Box::new(key),
                    event: None,
                })
                .await?;
            println!("id:             {id}");
            println!("key:            {value}");
            println!("webhook_secret: {secret}");
        }
        KeysCommand::List => {
            for key in store.keys().await? {
                println!(
                    "{}  {:<20} {}  {}  spend ${:.4}",
                    key.id,
                    key.name,
                    key.key_prefix,
                    if key.enabled { "enabled " } else { "disabled" },
                    key.spend
                );
            }
        }
        KeysCommand::Disable { key } => {
            let matching: Vec<_> = store
                .keys()
                .await?
                .into_iter()
                .filter(|k| k.id == key || k.name == key)
                .collect();
            let mut found = match matching.len() {
                0 => anyhow::bail!("no key with id or name `{key}`"),
                1 => matching.into_iter().next().context("one key")?,
                n => anyhow::bail!(
                    "{n} keys are named `{key}`; disable one by its id (see `conduit keys list`)"
                ),
            };
            found.enabled = false;
            found.disabled_reason = Some("manual".into());
            found.updated_at = conduit::ids::now();
            let data =
                serde_json::json!({"keyId": found.id, "keyName": found.name, "reason": "manual"});
            let id = found.id.clone();
            store
                .apply(Change::PutKey {
                    key: Box::new(found),
                    event: Some(("key.disabled".into(), data)),
                })
                .await?;
            println!("disabled {id}");
        }
    }
    Ok(())
}
