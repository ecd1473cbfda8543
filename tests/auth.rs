//! Authentication: bearer tokens from the token file and client certificates through the
//! mapping rules name principals (`WhoAmI` says which); a wrong token is refused even
//! where anonymous callers are allowed; `auth.require` refuses anonymous callers but keeps
//! health checks open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod common;
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
