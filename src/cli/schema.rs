//! `shale schema list|get|register|check|delete|config|mode`: the schema registry every
//! broker serves, through its REST API (Confluent's), as any registry client uses it.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Format;

/// Schema registry commands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// List subjects.
    List(ListArgs),
    /// Print a subject's version (the latest by default) or the schema with an ID.
    #[command(disable_version_flag = true)]
    Get(GetArgs),
    /// Register a schema under a subject; prints its ID.
    Register(RegisterArgs),
    /// Check a schema against a subject's versions at the subject's compatibility level;
    /// exits 1 when it is incompatible, with the reasons.
    #[command(disable_version_flag = true)]
    Check(CheckArgs),
    /// Delete a subject, or one version of it (soft; --permanent after a soft delete).
    #[command(disable_version_flag = true)]
    Delete(DeleteArgs),
    /// Print or set the compatibility level and the normalize setting, of a subject or
    /// the global one.
    Config(ConfigArgs),
    /// Print or set the mode (READWRITE, READONLY, IMPORT), of a subject or the global one.
    Mode(LevelArgs),
}

/// Where the registry is and who asks.
#[derive(Debug, Args)]
pub struct RegistryArg {
    /// The registry's URL (any broker's schema registry listener).
    #[arg(long, env = "SHALE_SCHEMA_REGISTRY", default_value = "http://127.0.0.1:8081")]
    pub registry: String,
    /// HTTP basic authentication as USER:PASSWORD (a SCRAM or PLAIN user of the cluster).
    #[arg(long, env = "SHALE_SCHEMA_REGISTRY_USER", conflicts_with = "token")]
    pub user: Option<String>,
    /// A bearer token.
    #[arg(long, env = "SHALE_TOKEN")]
    pub token: Option<String>,
    /// PEM CA bundle an https:// registry's certificate must chain to (without it, the
    /// system's roots).
    #[arg(long, env = "SHALE_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate to present, where the listener asks for one; needs
    /// --tls-key and --tls-ca.
    #[arg(long, env = "SHALE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SHALE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The rustls client configuration `arg` asks for: `None` for the defaults (the system's
/// roots, no client certificate).
fn tls_config(arg: &RegistryArg) -> anyhow::Result<Option<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(ca) = &arg.tls_ca else {
        anyhow::ensure!(arg.tls_cert.is_none(), "--tls-cert needs --tls-ca");
        return Ok(None);
    };
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let certs = |p: &PathBuf| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_slice_iter(&read(p)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("{} is not a PEM certificate file: {e}", p.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no PEM certificate", p.display());
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca)? {
        roots.add(cert).map_err(|e| {
            anyhow::anyhow!("{} holds a CA certificate rustls rejects: {e}", ca.display())
        })?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(Some(match (&arg.tls_cert, &arg.tls_key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_slice(&read(key)?)
                .map_err(|e| anyhow::anyhow!("{} is not a PEM private key: {e}", key.display()))?;
            builder.with_client_auth_cert(certs(cert)?, key)?
        }
        _ => builder.with_no_client_auth(),
    }))
}

/// `schema list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only subjects starting with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Soft-deleted subjects too.
    #[arg(long)]
    pub deleted: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `schema get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The subject (or --id).
    #[arg(required_unless_present = "id", conflicts_with = "id")]
    pub subject: Option<String>,
    /// The version: a number or `latest`.
    #[arg(long, default_value = "latest")]
    pub version: String,
    /// The schema with this ID, whatever subjects use it.
    #[arg(long)]
    pub id: Option<i32>,
    /// Output format: the schema's text, or the registry's whole answer as JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// A schema given on the command line.
#[derive(Debug, Args)]
pub struct SchemaArg {
    /// The subject.
    pub subject: String,
    /// The schema's text, from this file (`-` for standard input).
    #[arg(long)]
    pub file: PathBuf,
    /// The schema's type.
    #[arg(long = "type", default_value = "AVRO")]
    pub schema_type: String,
    /// A reference, NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference")]
    pub references: Vec<String>,
}

/// `schema register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub schema: SchemaArg,
    /// Normalize the schema before it is compared and stored.
    #[arg(long)]
    pub normalize: bool,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `schema check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub schema: SchemaArg,
    /// The version to check against (`latest`; the level says whether earlier ones too).
    #[arg(long, default_value = "latest")]
    pub version: String,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `schema delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The subject.
    pub subject: String,
    /// Only this version (a number or `latest`).
    #[arg(long)]
    pub version: Option<String>,
    /// Delete for good what a soft delete deleted already.
    #[arg(long)]
    pub permanent: bool,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// `schema config`: the level, and whether schemas are normalized.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub level: LevelArgs,
    /// Normalize the subject's schemas on registration, lookup and check (true or
    /// false), as `normalize=true` does.
    #[arg(long, conflicts_with = "delete")]
    pub normalize: Option<bool>,
}

/// `schema config` and `schema mode`.
#[derive(Debug, Args)]
pub struct LevelArgs {
    /// The subject; the global setting without one.
    pub subject: Option<String>,
    /// Set it to this.
    #[arg(long, conflicts_with = "delete")]
    pub set: Option<String>,
    /// Remove the subject's own setting (it then follows the global one).
    #[arg(long, requires = "subject")]
    pub delete: bool,
    #[command(flatten)]
    pub registry: RegistryArg,
}

/// The registry's REST API as one client.
struct Registry {
    http: reqwest::Client,
    base: reqwest::Url,
    auth: Option<String>,
}

impl Registry {
    fn new(arg: &RegistryArg) -> anyhow::Result<Registry> {
        let base = reqwest::Url::parse(&arg.registry)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                anyhow::anyhow!("--registry {:?} is not an http:// or https:// URL", arg.registry)
            })?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(config) = tls_config(arg)? {
            builder = builder.tls_backend_preconfigured(config);
        }
        let http =
            builder.build().map_err(|e| anyhow::anyhow!("cannot set up an HTTP client: {e}"))?;
        let auth = match (&arg.user, &arg.token) {
            (Some(user), _) => {
                if !user.contains(':') {
                    anyhow::bail!("--user {user:?} is not USER:PASSWORD");
                }
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(user);
                Some(format!("Basic {encoded}"))
            }
            (None, Some(token)) => Some(format!("Bearer {token}")),
            (None, None) => None,
        };
        Ok(Registry { http, base, auth })
    }

    /// `method` on the path of `segments` (each percent-encoded) with `query` and `body`;
    /// the answer's JSON, or the registry's error in one line.
    async fn call(
        &self,
        method: &str,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--registry {} cannot take a path", self.base))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url.clone())
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the schema registry at {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        match (value["error_code"].as_i64(), value["message"].as_str()) {
            (Some(code), Some(message)) => anyhow::bail!("schema registry: {code} {message}"),
            _ => anyhow::bail!("schema registry: HTTP {status} for {url}: {value}"),
        }
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

impl SchemaArg {
    /// The registry's request body for this schema.
    fn body(&self) -> anyhow::Result<Value> {
        let text = if self.file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(&self.file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", self.file.display()))?
        };
        let mut references = Vec::new();
        for r in &self.references {
            let parsed = r.split_once('=').and_then(|(name, at)| {
                let (subject, version) = at.rsplit_once(':')?;
                Some((name, subject, version.parse::<i32>().ok()?))
            });
            let Some((name, subject, version)) = parsed else {
                anyhow::bail!("--reference {r:?} is not NAME=SUBJECT:VERSION");
            };
            references.push(json!({"name": name, "subject": subject, "version": version}));
        }
        let mut body = json!({"schema": text, "schemaType": self.schema_type.to_uppercase()});
        if !references.is_empty() {
            body["references"] = Value::Array(references);
        }
        Ok(body)
    }
}

pub(super) async fn run(cmd: SchemaCommand) -> anyhow::Result<()> {
    match cmd {
        SchemaCommand::List(a) => {
            let r = Registry::new(&a.registry)?;
            let query = [("deleted", bool_str(a.deleted)), ("subjectPrefix", a.prefix.as_str())];
            let subjects = r.call("GET", &["subjects"], &query, None).await?;
            match a.format {
                Format::Json => println!("{subjects}"),
                Format::Text => {
                    for s in subjects.as_array().into_iter().flatten() {
                        println!("{}", s.as_str().unwrap_or_default());
                    }
                }
            }
        }
        SchemaCommand::Get(a) => {
            let r = Registry::new(&a.registry)?;
            let id = a.id.map(|id| id.to_string());
            let path: &[&str] = match (&id, &a.subject) {
                (Some(id), _) => &["schemas", "ids", id],
                (None, Some(s)) => &["subjects", s, "versions", &a.version],
                (None, None) => anyhow::bail!("say which schema: a subject or --id"),
            };
            let answer = r.call("GET", path, &[], None).await?;
            match a.format {
                Format::Json => println!("{answer}"),
                Format::Text => println!("{}", answer["schema"].as_str().unwrap_or_default()),
            }
        }
        SchemaCommand::Register(a) => {
            let r = Registry::new(&a.registry)?;
            let path = ["subjects", a.schema.subject.as_str(), "versions"];
            let query = [("normalize", bool_str(a.normalize))];
            let answer = r.call("POST", &path, &query, Some(a.schema.body()?)).await?;
            println!("{}", answer["id"]);
        }
        SchemaCommand::Check(a) => {
            let r = Registry::new(&a.registry)?;
            let path = ["compatibility", "subjects", &a.schema.subject, "versions", &a.version];
            let query = [("verbose", "true")];
            let answer = r.call("POST", &path, &query, Some(a.schema.body()?)).await?;
            if answer["is_compatible"].as_bool() != Some(true) {
                let reasons: Vec<&str> = answer["messages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                anyhow::bail!("incompatible with {}: {}", a.schema.subject, reasons.join("; "));
            }
            println!("compatible");
        }
        SchemaCommand::Delete(a) => {
            let r = Registry::new(&a.registry)?;
            let mut path = vec!["subjects", a.subject.as_str()];
            if let Some(v) = &a.version {
                path.extend(["versions", v.as_str()]);
            }
            let query = [("permanent", bool_str(a.permanent))];
            let answer = r.call("DELETE", &path, &query, None).await?;
            let what = if a.permanent { "permanently deleted" } else { "deleted" };
            println!("{what} {} version(s) {answer}", a.subject);
        }
        SchemaCommand::Config(a) => {
            level(a.level, a.normalize, "config", "compatibility", "compatibilityLevel").await?
        }
        SchemaCommand::Mode(a) => level(a, None, "mode", "mode", "mode").await?,
    }
    Ok(())
}

/// `config` and `mode`, which differ in their path and field names: reads answer in
/// `read_field`, changes take `set_field` (and `normalize`, for `config`). Prints the
/// value, then `normalize=...` when that is set.
async fn level(
    a: LevelArgs,
    normalize: Option<bool>,
    path: &str,
    set_field: &str,
    read_field: &str,
) -> anyhow::Result<()> {
    let r = Registry::new(&a.registry)?;
    let mut segments = vec![path];
    segments.extend(a.subject.as_deref());
    let answer = match (&a.set, normalize, a.delete) {
        (None, None, true) => r.call("DELETE", &segments, &[], None).await?,
        // A subject without a setting of its own shows the one that applies to it.
        (None, None, false) => {
            r.call("GET", &segments, &[("defaultToGlobal", "true")], None).await?
        }
        (set, normalize, _) => {
            let mut body = serde_json::Map::new();
            if let Some(value) = set {
                body.insert(set_field.into(), json!(value.to_uppercase()));
            }
            if let Some(normalize) = normalize {
                body.insert("normalize".into(), json!(normalize));
            }
            r.call("PUT", &segments, &[], Some(Value::Object(body))).await?
        }
    };
    let value = answer.get(set_field).or_else(|| answer.get(read_field));
    let mut line = value.and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(normalize) = answer.get("normalize").and_then(Value::as_bool) {
        line = format!("{line} normalize={normalize}").trim_start().to_string();
    }
    println!("{line}");
    Ok(())
}
