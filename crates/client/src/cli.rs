//! What Shale's command-line tools (`shale`, `shale-bench`) share: the broker and output
//! flags, value parsers, tracing setup and the one-line error exit. Behind the `cli`
//! feature, so embedding the client does not pull in clap or a tracing subscriber.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use clap::Args;
use shale_core::acks::Acks;
use shale_core::error::Error;
use shale_core::record::Compression;
use tracing_subscriber::EnvFilter;

use crate::Client;

/// Default broker address for client commands.
pub const DEFAULT_BROKER: &str = "127.0.0.1:9292";

/// Where client commands connect.
#[derive(Debug, Clone, Args)]
pub struct BrokerArg {
    /// Broker(s) to bootstrap from: host:port, or several separated by commas.
    #[arg(long, env = "SHALE_BROKER", default_value = DEFAULT_BROKER)]
    pub broker: String,
    /// Connect over TLS (implied by the other --tls flags); without --tls-ca the brokers
    /// are verified against the system's CA roots.
    #[arg(long, env = "SHALE_TLS")]
    pub tls: bool,
    /// PEM CA bundle the brokers' certificates must chain to.
    #[arg(long, env = "SHALE_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate to present (mTLS); needs --tls-key.
    #[arg(long, env = "SHALE_TLS_CERT")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SHALE_TLS_KEY")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Bearer token sent with every call (prefer SHALE_TOKEN or --token-file: a flag shows
    /// in the process list).
    #[arg(long, env = "SHALE_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "SHALE_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

impl BrokerArg {
    /// A client for this broker.
    pub fn client(&self) -> Result<Client, Error> {
        let mut builder = Client::builder(&self.broker);
        if let Some(token) = &self.token {
            builder = builder.token(token)?;
        }
        if let Some(path) = &self.token_file {
            builder = builder.token_file(path)?;
        }
        let tls = self.tls || self.tls_ca.is_some() || self.tls_cert.is_some();
        if !tls && self.tls_key.is_none() {
            return builder.build();
        }
        let options = crate::tls::TlsOptions::from_files(
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
        )?;
        builder.tls(options).build()
    }
}

/// Output format of describe, consume and benchmark summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON document (describe) or one JSON object per line (consume).
    Json,
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses `0`, `1`, `all` (also `-1`).
pub fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "0" | "none" => Ok(Acks::None),
        "1" | "leader" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        other => Err(format!("invalid acks {other:?}: expected 0, 1 or all")),
    }
}

/// Parses a codec name.
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    Compression::parse(s).map_err(|e| e.to_string())
}

/// Installs the global tracing subscriber: text, or one JSON object per line with `json`,
/// filtered by `SHALE_LOG` (or `RUST_LOG`, default `info`), on standard error.
pub fn init_tracing(json: bool) {
    let filter = std::env::var("SHALE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        // Colour only on a terminal: a log redirected to a file or a collector stays plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    // A subscriber installed already (tests) is fine.
    drop(result);
}

/// Output piped into a reader that stopped early (`shale cluster describe | head`, `grep -q`)
/// ends the tool quietly with status 141, as SIGPIPE would end a C tool, instead of a panic
/// and its backtrace: Rust ignores SIGPIPE, so `println!` panics on the broken pipe.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The body of a tool's `main`: sets up tracing, runs `command` on a multi-threaded runtime
/// whose threads are called `thread_name`, and prints a failure as one line, `error: ...`
/// (with `anyhow`, its causes joined by `: `), never a backtrace.
pub fn main<E: Display>(
    thread_name: &str,
    log_json: bool,
    command: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    init_tracing(log_json);
    quiet_on_broken_pipe();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name(thread_name).build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(command).map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("cannot start the async runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
