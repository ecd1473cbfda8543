//! TLS on the gRPC listener and between brokers: who can connect (trusting the right CA,
//! presenting a certificate when mTLS is required), certificates rotated on disk without a
//! restart, and plaintext refused off loopback unless the operator allows it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/pki.rs"]
mod pki;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use shale::client::tls::TlsOptions;
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::server::RunningServer;
use shale::settings::Settings;
use shale::tls::ClientAuth;

use common::wait_until;
use pki::{Ca, Files};

/// Settings of a TLS broker serving `files`, verifying clients against `ca`.
fn tls_settings(dir: &Path, files: &Files, ca: &Path, auth: ClientAuth) -> Settings {
    let mut s = common::settings(dir);
    s.tls.cert_file = Some(files.cert.clone());
    s.tls.key_file = Some(files.key.clone());
    s.tls.ca_file = Some(ca.to_path_buf());
    s.tls.client_auth = auth;
    s.tls.reload_interval_ms = 100;
    s
}

/// A client of `server` over TLS trusting `ca`, presenting `identity` if given.
fn tls_client(addr: &str, ca: &Path, identity: Option<&Files>) -> Client {
    let options = TlsOptions::from_files(
        Some(ca),
        identity.map(|f| f.cert.as_path()),
        identity.map(|f| f.key.as_path()),
    )
    .unwrap();
    Client::builder(addr).tls(options).build().unwrap()
}

/// Whether `client` can run an admin call (listing topics) against its broker.
async fn can_talk(client: &Client) -> Result<(), String> {
    client.admin().metadata(&[]).await.map(|_| ()).map_err(|e| e.to_string())
}

/// Creates a topic, produces `n` records and reads them back, all through `client`.
async fn round_trip(client: &Client, topic: &str, replication: u32, n: usize) {
    client.admin().create_topic(topic, 1, replication, BTreeMap::new()).await.unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("v{i}")).partition(0);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let records = common::read_all(client, topic).await.remove(&0).unwrap();
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    assert_eq!(values, want, "records read back over TLS");
}

async fn start_tls(settings: Settings) -> RunningServer {
    common::start(settings).await
}

#[tokio::test]
async fn a_tls_listener_serves_only_clients_that_trust_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("shale test CA");
    let other = Ca::new("someone else's CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let other_file = other.write(&pki_dir.path().join("other.crt"));
    let broker = ca.write_leaf(pki_dir.path(), "broker", "broker-1");
    let server = start_tls(tls_settings(dir.path(), &broker, &ca_file, ClientAuth::None)).await;
    let addr = server.addr().to_string();

    let plaintext = Client::new(&addr).unwrap();
    let e =
        can_talk(&plaintext).await.expect_err("a plaintext client was served by a TLS listener");
    println!("plaintext client: {e}");
    let untrusting = tls_client(&addr, &other_file, None);
    let e = can_talk(&untrusting).await.expect_err("a client trusting another CA connected");
    println!("client trusting another CA: {e}");

    let client = tls_client(&addr, &ca_file, None);
    round_trip(&client, "t", 1, 200).await;
    server.close().await.unwrap();
}

#[tokio::test]
async fn required_mtls_serves_only_clients_with_a_certificate_from_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("shale test CA");
    let other = Ca::new("someone else's CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let broker = ca.write_leaf(pki_dir.path(), "broker", "broker-1");
    let server = start_tls(tls_settings(dir.path(), &broker, &ca_file, ClientAuth::Required)).await;
    let addr = server.addr().to_string();

    let anonymous = tls_client(&addr, &ca_file, None);
    let e = can_talk(&anonymous).await.expect_err("a client without a certificate was served");
    println!("client without a certificate: {e}");
    let forged = other.write_leaf(pki_dir.path(), "forged", "client-1");
    let e = can_talk(&tls_client(&addr, &ca_file, Some(&forged)))
        .await
        .expect_err("a client with a certificate from another CA was served");
    println!("client with another CA's certificate: {e}");

    let alice = ca.write_leaf(pki_dir.path(), "alice", "alice");
    round_trip(&tls_client(&addr, &ca_file, Some(&alice)), "t", 1, 200).await;
    server.close().await.unwrap();
}

#[tokio::test]
async fn rotated_certificates_are_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let old_ca_file = old_ca.write(&pki_dir.path().join("old-ca.crt"));
    let new_ca_file = new_ca.write(&pki_dir.path().join("new-ca.crt"));
    let broker = old_ca.write_leaf(pki_dir.path(), "broker", "broker-1");
    // Clients need no certificate here; the CA file only matters for mTLS.
    let server = start_tls(tls_settings(dir.path(), &broker, &old_ca_file, ClientAuth::None)).await;
    let addr = server.addr().to_string();
    let before = tls_client(&addr, &old_ca_file, None);
    round_trip(&before, "t", 1, 50).await;
    can_talk(&tls_client(&addr, &new_ca_file, None))
        .await
        .expect_err("the new CA verified the old certificate");

    // Rotate in place, as cert-manager does; the broker reads the files every 100 ms.
    new_ca.write_leaf(pki_dir.path(), "broker", "broker-1");
    wait_until(Duration::from_secs(10), "the rotated certificate served to new clients", || {
        let client = tls_client(&addr, &new_ca_file, None);
        async move { can_talk(&client).await.is_ok() }
    })
    .await;
    can_talk(&tls_client(&addr, &old_ca_file, None))
        .await
        .expect_err("new connections still got the old certificate after the rotation");
    // The connection made before the rotation keeps working.
    can_talk(&before).await.expect("a connection from before the rotation broke");
    server.close().await.unwrap();
}

#[tokio::test]
async fn plaintext_off_loopback_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.broker.listen = "0.0.0.0:0".parse().unwrap();
    let clock = shale::clock::system();
    let meta = shale::server::embedded_meta(&settings, clock.clone()).unwrap();
    let e = shale::server::start(settings.clone(), meta.clone(), clock.clone())
        .await
        .expect_err("plaintext on 0.0.0.0 started");
    assert!(e.message.contains("refusing to serve plaintext gRPC on 0.0.0.0:0"), "{e}");
    assert!(e.message.contains("--allow-plaintext"), "the error says how to allow it: {e}");

    settings.tls.allow_plaintext = true;
    let server = shale::server::start(settings, meta, clock).await.expect("allowed plaintext");
    server.close().await.unwrap();
}

#[test]
fn the_cli_refuses_plaintext_off_loopback_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shale"))
        .args([
            "standalone",
            "--kafka-listen",
            "none",
            "--schema-registry-listen",
            "none",
            "--console-listen",
            "none",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SHALE_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to serve plaintext gRPC on 0.0.0.0:0"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

/// Three brokers on etcd, each serving TLS with mTLS required: replication (a follower's
/// fetches), forwarding and liveness watches all go broker to broker over TLS, presenting
/// the broker's certificate, so an acks=all round trip at RF 3 proves them.
#[tokio::test]
async fn a_cluster_replicates_over_mutual_tls() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let broker = ca.write_leaf(pki_dir.path(), "broker", "broker");
    let (cert, key, ca_path) = (
        broker.cert.to_string_lossy().to_string(),
        broker.key.to_string_lossy().to_string(),
        ca_file.to_string_lossy().to_string(),
    );
    let c = cluster::Cluster::start(
        3,
        "tls",
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca_path,
            "--tls-client-auth",
            "required",
        ],
    );
    let alice = ca.write_leaf(pki_dir.path(), "alice", "alice");
    let all: Vec<String> = (0..3).map(|i| c.addr(i)).collect();
    let client = tls_client(&all.join(","), &ca_file, Some(&alice));
    wait_until(Duration::from_secs(30), "three live brokers over TLS", || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    let producer_config = ProducerConfig { acks: shale::acks::Acks::All, ..Default::default() };
    // Every replica must be in sync for a write to be acknowledged: followers that cannot
    // fetch over TLS would leave the ISR, and the writes would fail.
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "3".to_string())]);
    client.admin().create_topic("r", 1, 3, configs).await.unwrap();
    wait_until(Duration::from_secs(30), "all three replicas in sync over TLS", || {
        let client = client.clone();
        async move {
            let Ok(md) = client.admin().metadata(&["r".to_string()]).await else { return false };
            md.topics[0].partitions.iter().any(|p| p.isr.len() == 3 && p.leader_id > 0)
        }
    })
    .await;
    let producer = Producer::new(client.clone(), producer_config);
    let mut deliveries = Vec::new();
    for i in 0..300 {
        deliveries.push(
            producer.send(ProducerRecord::new("r", format!("v{i}")).partition(0)).await.unwrap(),
        );
    }
    for d in deliveries {
        d.await.expect("an acks=all write over TLS was not acknowledged");
    }
    let records = common::read_all(&client, "r").await.remove(&0).unwrap();
    assert_eq!(records.len(), 300, "records read back from the TLS cluster");
    let e = can_talk(&Client::new(&c.addr(0)).unwrap())
        .await
        .expect_err("a plaintext client was served by a TLS cluster");
    println!("plaintext client of the cluster: {e}");

    // The schema registry over the same mutual TLS: a registration sent to any broker is
    // forwarded to the writer (the leader of `_schemas`) over HTTPS, presenting the
    // broker's certificate; each answers `shale schema` presenting alice's.
    // IDs are unique and increasing, not consecutive: an attempt that failed after it
    // raised the ID watermark (a metadata store timeout, say) leaves its ID unused.
    let mut last_id = 0;
    for (i, field) in ["a", "b", "c"].iter().enumerate() {
        let schema = format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"{field}","type":"long","default":0}}]}}"#
        );
        let url = format!("https://{}", c.registry(i));
        let what = format!("a registration through broker {} over mutual TLS", i + 1);
        let args: Vec<String> = vec![
            "schema".into(),
            "register".into(),
            "tls-value".into(),
            "--file".into(),
            "-".into(),
            "--registry".into(),
            url,
            "--tls-ca".into(),
            ca_path.clone(),
            "--tls-cert".into(),
            alice.cert.to_string_lossy().into(),
            "--tls-key".into(),
            alice.key.to_string_lossy().into(),
        ];
        let id = common::wait_for(Duration::from_secs(30), &what, || {
            let (args, schema) = (args.clone(), schema.clone());
            async move {
                tokio::task::spawn_blocking(move || shale_with_stdin(&args, &schema)).await.unwrap()
            }
        })
        .await;
        let id: i32 = id.parse().unwrap_or_else(|_| panic!("{what}: answered {id:?}, not an ID"));
        assert!(id > last_id, "{what}: ID {id} after ID {last_id}");
        last_id = id;
    }
}

/// Runs the `shale` binary with `stdin`; its stdout, or its stderr when it fails.
fn shale_with_stdin(args: &[String], stdin: &str) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
}

/// etcd serving TLS and requiring client certificates: the store connects with the CA and
/// a client certificate, and not without them; a broker runs on it.
#[tokio::test]
async fn the_metadata_store_is_reached_over_mutual_tls() {
    use shale::meta::{EtcdOptions, EtcdStore, EtcdTls, MetaStore};
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("etcd CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let server_files = ca.write_leaf(pki_dir.path(), "etcd", "etcd");
    let client_files = ca.write_leaf(pki_dir.path(), "shale", "shale");
    let etcd =
        cluster::etcd::EtcdServer::start_tls(&ca_file, &server_files.cert, &server_files.key);
    let endpoints = etcd.endpoints();
    assert!(endpoints[0].starts_with("https://"), "{endpoints:?}");
    let read = |p: &Path| std::fs::read(p).unwrap();
    let with_tls = |identity: bool| EtcdOptions {
        tls: Some(EtcdTls {
            ca_pem: read(&ca_file),
            identity: identity.then(|| (read(&client_files.cert), read(&client_files.key))),
        }),
        ..cluster::etcd::test_options()
    };

    let store = EtcdStore::connect(&endpoints, with_tls(true)).await.expect("mTLS to etcd");
    store.put("/tls-test/k", b"v".to_vec().into(), None).await.unwrap();
    assert_eq!(store.get("/tls-test/k").await.unwrap().unwrap().value.as_ref(), b"v");
    let e = EtcdStore::connect(&endpoints, with_tls(false))
        .await
        .expect_err("etcd served a client without a certificate");
    println!("without a client certificate: {e}");
    let plain = vec![endpoints[0].replace("https://", "http://")];
    let e = EtcdStore::connect(&plain, cluster::etcd::test_options())
        .await
        .expect_err("etcd served plaintext");
    println!("plaintext: {e}");

    // A broker on it, configured by settings.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.broker.id = Some(1);
    settings.cluster.name = "tlsmeta".into();
    settings.cluster.etcd_endpoints = endpoints.clone();
    settings.cluster.etcd_tls_ca_file = Some(ca_file.clone());
    settings.cluster.etcd_tls_cert_file = Some(client_files.cert.clone());
    settings.cluster.etcd_tls_key_file = Some(client_files.key.clone());
    let clock = shale::clock::system();
    let meta = shale::server::meta_store(&settings, clock.clone()).await.unwrap();
    let server = shale::server::start(settings, meta, clock).await.unwrap();
    let client = Client::new(&server.addr().to_string()).unwrap();
    round_trip(&client, "m", 1, 50).await;
    server.close().await.unwrap();
}

/// Certificates rotated on disk under acks=all load: a 3-broker mTLS cluster whose brokers
/// trust both the old and the new CA (a bundle, as a CA rotation stages it) gets new
/// broker certificates from the new CA while an idempotent producer writes with every
/// replica required in sync. Clients trusting only the new CA get through within the
/// reload interval (plus the time to notice), no write fails, and every record is read
/// back once.
#[tokio::test]
async fn certificates_rotate_under_acks_all_load_without_a_failed_write() {
    let pki_dir = tempfile::tempdir().unwrap();
    let dir = pki_dir.path();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let new_ca_file = new_ca.write(&dir.join("new-ca.crt"));
    let bundle = dir.join("bundle.crt");
    std::fs::write(&bundle, format!("{}{}", old_ca.pem, new_ca.pem)).unwrap();
    let broker = old_ca.write_leaf(dir, "broker", "broker");
    let config = dir.join("shale.toml");
    std::fs::write(&config, "[tls]\nreload_interval_ms = 200\n").unwrap();
    let p = |p: &Path| p.to_string_lossy().to_string();
    let (config_arg, cert, key, ca) = (p(&config), p(&broker.cert), p(&broker.key), p(&bundle));
    let c = cluster::Cluster::start(
        3,
        "rotate",
        &[
            "--config",
            &config_arg,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-ca",
            &ca,
            "--tls-client-auth",
            "required",
        ],
    );
    let alice = old_ca.write_leaf(dir, "alice", "alice");
    let all: Vec<String> = (0..3).map(|i| c.addr(i)).collect();
    let client = tls_client(&all.join(","), &bundle, Some(&alice));
    wait_until(Duration::from_secs(30), "three live brokers over TLS", || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == 3) }
    })
    .await;
    let configs = BTreeMap::from([("min.insync.replicas".to_string(), "3".to_string())]);
    client.admin().create_topic("rot", 1, 3, configs).await.unwrap();
    wait_until(Duration::from_secs(30), "all three replicas in sync", || {
        let client = client.clone();
        async move {
            let Ok(md) = client.admin().metadata(&["rot".to_string()]).await else { return false };
            md.topics[0].partitions.iter().any(|p| p.isr.len() == 3 && p.leader_id > 0)
        }
    })
    .await;

    // Load: records sent one after another until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = ProducerConfig { acks: shale::acks::Acks::All, ..Default::default() };
    let producer = Producer::new(client.clone(), config);
    let (load_stop, load_producer) = (stop.clone(), producer.clone());
    let load = tokio::spawn(async move {
        let mut deliveries = Vec::new();
        let mut i = 0u64;
        while !load_stop.load(std::sync::atomic::Ordering::Relaxed) || i < 500 {
            let record = ProducerRecord::new("rot", format!("v{i}")).partition(0);
            deliveries.push(load_producer.send(record).await.unwrap());
            i += 1;
            if i.is_multiple_of(50) {
                tokio::task::yield_now().await;
            }
        }
        let mut failed = Vec::new();
        for d in deliveries {
            if let Err(e) = d.await {
                failed.push(e.to_string());
            }
        }
        (i, failed)
    });

    // Rotate every broker's certificate to one from the new CA, as cert-manager would.
    let new_only =
        tls_client(&all.join(","), &new_ca_file, Some(&new_ca.write_leaf(dir, "bob", "bob")));
    can_talk(&new_only).await.expect_err("the new CA verified an old certificate");
    let rotated_at = shale::clock::monotonic_now();
    new_ca.write_leaf(dir, "broker", "broker");
    for i in 0..3 {
        let one = tls_client(&c.addr(i), &new_ca_file, Some(&new_ca.write_leaf(dir, "bob", "bob")));
        wait_until(Duration::from_secs(10), "broker serving its rotated certificate", || {
            let one = one.clone();
            async move { can_talk(&one).await.is_ok() }
        })
        .await;
    }
    println!(
        "new certificates served by all three brokers {:?} after the rotation",
        rotated_at.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = load.await.unwrap();
    println!("{sent} records sent at acks=all across the rotation, {} failed", failed.len());
    assert!(failed.is_empty(), "writes failed across the rotation: {failed:?}");
    let records = common::read_all(&client, "rot").await.remove(&0).unwrap();
    let values: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(records.len() as u64, sent, "records read back (duplicates count)");
    assert_eq!(values.len() as u64, sent, "distinct records read back");
}
