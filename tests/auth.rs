//! Authentication: bearer tokens from the token file and client certificates through the
//! mapping rules name principals (`WhoAmI` says which); a wrong token is refused even
//! where anonymous callers are allowed; `auth.require` refuses anonymous callers but keeps
//! health checks open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
#[path = "common/jwt.rs"]
mod jwt;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;

use shale::auth::{CertField, TlsRule};
use shale::client::Client;
use shale::client::tls::TlsOptions;
use shale::settings::Settings;
use shale::tls::ClientAuth;

use pki::Ca;

const ALICE_TOKEN: &str = "alice-0123456789abcdef";

fn token_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tokens");
    std::fs::write(&path, format!("# test tokens\nUser:alice {ALICE_TOKEN}\n")).unwrap();
    path
}

/// `(principal, authenticated_by)` as the broker sees `client`, or the error's reason.
async fn who(client: &Client) -> Result<(String, String), String> {
    client
        .admin()
        .who_am_i()
        .await
        .map(|w| (w.principal, w.authenticated_by))
        .map_err(|e| e.reason.as_str().to_string())
}

fn pair(p: &str, by: &str) -> Result<(String, String), String> {
    Ok((p.to_string(), by.to_string()))
}

#[tokio::test]
async fn tokens_name_principals_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.auth.token_file = Some(token_file(dir.path()));
    let server = common::start(settings).await;
    let addr = server.addr().to_string();

    assert_eq!(who(&Client::new(&addr).unwrap()).await, pair("User:ANONYMOUS", "none"));
    let alice = Client::builder(&addr).token(ALICE_TOKEN).unwrap().build().unwrap();
    assert_eq!(who(&alice).await, pair("User:alice", "token"));
    // A wrong token is not "no token": it is refused, on every service.
    let mallory = Client::builder(&addr).token("alice-0123456789abcdeX").unwrap().build().unwrap();
    assert_eq!(who(&mallory).await, Err("UNAUTHENTICATED".to_string()));
    let e = mallory.admin().create_topic("t", 1, 1, Default::default()).await.unwrap_err();
    assert_eq!(e.reason.as_str(), "UNAUTHENTICATED", "{e}");
    server.close().await.unwrap();
}

#[tokio::test]
async fn required_authentication_refuses_anonymous_callers_but_not_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("auth CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let broker = ca.write_leaf(pki_dir.path(), "broker", "broker-1");
    let mut settings: Settings = common::settings(dir.path());
    settings.tls.cert_file = Some(broker.cert.clone());
    settings.tls.key_file = Some(broker.key.clone());
    settings.tls.ca_file = Some(ca_file.clone());
    settings.tls.client_auth = ClientAuth::Optional;
    settings.auth.require = true;
    settings.auth.token_file = Some(token_file(dir.path()));
    settings.auth.broker_principals = vec!["User:broker-1".into()];
    settings.auth.tls_rules = vec![TlsRule {
        field: CertField::SanUri,
        pattern: r"spiffe://shale\.test/sa/([a-z]+)".into(),
        principal: "User:$1".into(),
    }];
    let server = common::start(settings).await;
    let addr = server.addr().to_string();
    let options = |cert: Option<&pki::Files>| {
        TlsOptions::from_files(
            Some(&ca_file),
            cert.map(|c| c.cert.as_path()),
            cert.map(|c| c.key.as_path()),
        )
        .unwrap()
    };

    let anonymous = Client::builder(&addr).tls(options(None)).build().unwrap();
    assert_eq!(who(&anonymous).await, Err("UNAUTHENTICATED".to_string()));
    let e = anonymous.admin().create_topic("t", 1, 1, Default::default()).await.unwrap_err();
    assert_eq!(e.reason.as_str(), "UNAUTHENTICATED", "{e}");

    // Probes need no credentials.
    let channel = anonymous.channel(&addr).unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: "shale.v1.Log".into() })
        .await
        .expect("a health check without credentials was refused");
    assert_eq!(health.into_inner().status, 1, "SERVING");

    let alice =
        Client::builder(&addr).tls(options(None)).token(ALICE_TOKEN).unwrap().build().unwrap();
    assert_eq!(who(&alice).await, pair("User:alice", "token"));

    // Certificates: the common name, or what a rule makes of a SPIFFE ID.
    let carol = ca.write_leaf(pki_dir.path(), "carol", "carol");
    let carol = Client::builder(&addr).tls(options(Some(&carol))).build().unwrap();
    assert_eq!(who(&carol).await, pair("User:carol", "certificate"));
    let spiffe =
        ca.write_leaf_with_uri(pki_dir.path(), "svc", "svc-7f9c", "spiffe://shale.test/sa/ingest");
    let spiffe = Client::builder(&addr).tls(options(Some(&spiffe))).build().unwrap();
    assert_eq!(who(&spiffe).await, pair("User:ingest", "certificate"));

    // The broker's own certificate maps to a broker principal.
    let as_broker = Client::builder(&addr).tls(options(Some(&broker))).build().unwrap();
    let me = as_broker.admin().who_am_i().await.unwrap();
    assert_eq!((me.principal.as_str(), me.broker), ("User:broker-1", true));
    server.close().await.unwrap();
}

/// An OpenID Connect issuer on 127.0.0.1: discovery document and JWKS over HTTP, signing
/// with an ES256 key.
struct Issuer {
    url: String,
    key: jwt::Es256Key,
    /// The JWKS document served; replaced to rotate keys.
    jwks: std::sync::Arc<std::sync::Mutex<String>>,
    /// How many times the JWKS was fetched.
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    async fn start() -> Issuer {
        let (key, jwk) = jwt::es256_key("k1");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let discovery =
            serde_json::json!({ "issuer": url, "jwks_uri": format!("{url}/keys") }).to_string();
        let jwks = std::sync::Arc::new(std::sync::Mutex::new(
            serde_json::json!({ "keys": [jwk] }).to_string(),
        ));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (served, counted) = (jwks.clone(), fetches.clone());
        let json = |body: String| ([(axum::http::header::CONTENT_TYPE, "application/json")], body);
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { json(discovery) }),
            )
            .route(
                "/keys",
                axum::routing::get(move || async move {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    json(served.lock().unwrap().clone())
                }),
            );
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Issuer { url, key, jwks, fetches, _server: server }
    }

    /// A token for `sub`, audience `aud`, expiring `exp_in` seconds from now, signed with
    /// `key` (the issuer's unless given) and naming key id `kid`.
    fn token(
        &self,
        sub: &str,
        aud: &str,
        exp_in: i64,
        kid: &str,
        key: Option<&jwt::Es256Key>,
    ) -> String {
        jwt::token(key.unwrap_or(&self.key), kid, &self.url, aud, sub, exp_in)
    }

    /// A broker in `dir` taking this issuer's tokens for audience `shale`, fetching keys
    /// for unknown key ids at most every `min_refetch_ms`.
    async fn broker(&self, dir: &Path, min_refetch_ms: u64) -> shale::server::RunningServer {
        let mut settings = common::settings(dir);
        settings.auth.jwt = Some(shale::auth::JwtSettings {
            issuer: self.url.clone(),
            audience: "shale".into(),
            min_refetch_ms,
            ..Default::default()
        });
        common::start(settings).await
    }
}

#[tokio::test]
async fn jwts_from_an_oidc_issuer_name_principals_once_verified() {
    let issuer = Issuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = issuer.broker(dir.path(), 10_000).await;
    let addr = server.addr().to_string();
    let with = |token: &str| Client::builder(&addr).token(token).unwrap().build().unwrap();

    let good = issuer.token("svc-ingest", "shale", 300, "k1", None);
    assert_eq!(who(&with(&good)).await, pair("User:svc-ingest", "token"));

    let refused = |why: &str, token: String| {
        let client = with(&token);
        let why = why.to_string();
        async move {
            let e = client.admin().who_am_i().await.expect_err(&why);
            assert_eq!(e.reason.as_str(), "UNAUTHENTICATED", "{why}: {e}");
            println!("refused as it should be: {}", e.message);
        }
    };
    refused("an expired token was accepted", issuer.token("svc", "shale", -120, "k1", None)).await;
    refused(
        "a token for another audience was accepted",
        issuer.token("svc", "kafka", 300, "k1", None),
    )
    .await;
    let (forger, _) = jwt::es256_key("k1");
    refused(
        "a token signed by another key was accepted",
        issuer.token("svc", "shale", 300, "k1", Some(&forger)),
    )
    .await;
    refused(
        "a token naming an unknown key was accepted",
        issuer.token("svc", "shale", 300, "k9", Some(&forger)),
    )
    .await;
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    refused("a tampered token was accepted", parts.join(".")).await;
    server.close().await.unwrap();
}

/// The audit trail: a refused request and each admin mutation become one JSON line on the
/// `shale_audit` target naming who, what, which resource, the decision and the outcome.
#[tokio::test]
async fn refused_requests_and_admin_mutations_are_audited_as_json_lines() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shale.toml");
    std::fs::write(
        &config,
        format!("[auth]\ntoken_file = {:?}\n", token_file(dir.path()).display().to_string()),
    )
    .unwrap();
    let log_path = dir.path().join("broker.log");
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_shale"))
        .args([
            "standalone",
            "--kafka-listen",
            "none",
            "--schema-registry-listen",
            "none",
            "--console-listen",
            "none",
            "--listen",
            &addr,
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("SHALE_LOG", "shale_audit=info")
        .env("SHALE_LOG_JSON", "true")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("listening"), "{first}");

    let alice = Client::builder(&addr).token(ALICE_TOKEN).unwrap().build().unwrap();
    alice.admin().create_topic("audited", 1, 1, Default::default()).await.unwrap();
    alice.admin().delete_topic("audited").await.unwrap();
    let e = alice.admin().delete_topic("audited").await.unwrap_err();
    assert_eq!(e.reason.as_str(), "UNKNOWN_TOPIC");
    let mallory = Client::builder(&addr).token("not-a-token-0123456789").unwrap().build().unwrap();
    mallory.admin().create_topic("evil", 1, 1, Default::default()).await.unwrap_err();
    // Reads are not audited.
    alice.admin().list_topics().await.unwrap();

    let _ = child.kill();
    let _ = child.wait();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&log_path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "shale_audit")
        .collect();
    let summary: Vec<String> = events
        .iter()
        .map(|v| {
            let f = &v["fields"];
            format!(
                "{} {} {} {}:{} {} {}",
                f["principal"].as_str().unwrap_or("?"),
                f["via"].as_str().unwrap_or("?"),
                f["action"].as_str().unwrap_or("?"),
                f["resource_type"].as_str().unwrap_or("?"),
                f["resource"].as_str().unwrap_or("?"),
                f["decision"].as_str().unwrap_or("?"),
                f["outcome"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "User:alice token create_topic topic:audited allow ok",
            "User:alice token delete_topic topic:audited allow ok",
            "User:alice token delete_topic topic:audited allow UNKNOWN_TOPIC",
            "unknown none /shale.v1.Admin/CreateTopic rpc:/shale.v1.Admin/CreateTopic deny UNAUTHENTICATED",
        ],
        "audit events: {events:#?}"
    );
}

/// The issuer rotates its signing key: a token signed with the new key names a key id the
/// broker has not seen, which makes it fetch the keys again (once), and the token is then
/// accepted; the old key, no longer published, stops working after the next fetch.
#[tokio::test]
async fn a_rotated_signing_key_is_fetched_when_a_token_names_it() {
    let issuer = Issuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = issuer.broker(dir.path(), 0).await;
    let addr = server.addr().to_string();
    let with = |token: &str| Client::builder(&addr).token(token).unwrap().build().unwrap();
    let fetches = || issuer.fetches.load(std::sync::atomic::Ordering::SeqCst);
    let old = issuer.token("svc", "shale", 300, "k1", None);
    assert_eq!(who(&with(&old)).await, pair("User:svc", "token"));
    assert_eq!(fetches(), 1, "the keys are read once at start and cached");

    let (new_key, jwk) = jwt::es256_key("k2");
    *issuer.jwks.lock().unwrap() = serde_json::json!({ "keys": [jwk] }).to_string();
    let new = issuer.token("svc", "shale", 300, "k2", Some(&new_key));
    assert_eq!(who(&with(&new)).await, pair("User:svc", "token"));
    assert_eq!(fetches(), 2, "one fetch for the unknown key id");
    assert_eq!(who(&with(&new)).await, pair("User:svc", "token"));
    assert_eq!(fetches(), 2, "a known key needs no fetch");
    let e = with(&old).admin().who_am_i().await.expect_err("the retired key still works");
    assert_eq!(e.reason.as_str(), "UNAUTHENTICATED", "{e}");
    server.close().await.unwrap();
}
