//! The Kafka listener's security with librdkafka (confluent-kafka) over TLS, on a broker
//! that requires authentication and checks ACLs: SASL/SCRAM-SHA-512, SCRAM-SHA-256 and
//! PLAIN with users' stored credentials, OAUTHBEARER with a bearer token as gRPC takes it;
//! a wrong password or token is an authentication error, a topic outside the principal's
//! ACLs is TOPIC_AUTHORIZATION_FAILED, an unauthenticated client is refused; and ACLs
//! created through a Kafka admin client are the ones `shale acl list` shows.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;
use std::time::Duration;

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const CAROL_TOKEN: &str = "carol-token-0123456789abcdef";
const WITHIN: Duration = Duration::from_secs(90);

/// A TLS broker requiring authentication, on its own thread; its Kafka address and gRPC
/// address, and the CA file its certificate chains to.
fn secure_broker(dir: &Path) -> (String, String, std::path::PathBuf) {
    let tokens = format!("User:admin {ADMIN_TOKEN}\nUser:carol {CAROL_TOKEN}\n");
    let (mut settings, ca_file) = pki::secure_settings(dir, &tokens);
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let server = common::start(settings).await;
            tx.send((server.kafka_addr().unwrap().to_string(), server.addr().to_string())).unwrap();
            std::future::pending::<()>().await;
            drop(server);
        });
    });
    let (kafka, grpc) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    (kafka, grpc, ca_file)
}

fn outcome(python: &Path, args: &[&str]) -> String {
    let run = kafka::run(kafka::python_script(python, "secure_client.py", args), WITHIN);
    let json = run.assert_ok(&format!("secure client {args:?}"));
    let outcome = json["outcome"].as_str().unwrap().to_string();
    if outcome != "ok" {
        eprintln!("{args:?}: {json}");
    }
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_over_tls_authenticates_users_and_tokens_and_acls_apply() {
    let Some(python) = kafka::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, grpc, ca_file) = secure_broker(dir.path());
    let ca = ca_file.to_str().unwrap().to_string();
    let tls = shale::client::tls::TlsOptions {
        ca_pem: Some(std::fs::read(&ca_file).unwrap()),
        ..Default::default()
    };
    let admin_client =
        shale::client::Client::builder(&grpc).tls(tls).token(ADMIN_TOKEN).unwrap().build().unwrap();
    let admin = admin_client.admin();
    for topic in ["sec-allowed", "sec-denied"] {
        admin.create_topic(topic, 1, 1, Default::default()).await.unwrap();
    }
    admin.set_user_credential("alice", "alice-pw", vec![], 4096).await.unwrap();
    admin.set_user_credential("admin", "admin-pw", vec![], 4096).await.unwrap();
    let users = admin.list_users().await.unwrap();
    assert_eq!(users.iter().filter(|u| u.user == "alice").count(), 2, "{users:?}");

    // ACLs through a Kafka admin client, authenticated as the super user.
    let acls = python_acls(&python, &bootstrap, &ca);
    assert_eq!(acls["created"], 6, "{acls}");
    let listed = admin.describe_acls(Default::default()).await.unwrap();
    for principal in ["User:alice", "User:carol"] {
        assert!(
            listed.iter().any(|b| b.principal == principal
                && b.resource_name == "sec-allowed"
                && b.operation == "all"
                && b.permission == "allow"),
            "{principal}'s ACL in Shale's list: {listed:?}"
        );
    }

    let (py, boot, ca_path) = (python.clone(), bootstrap.clone(), ca.clone());
    let results = tokio::task::spawn_blocking(move || {
        let (python, bootstrap, ca) = (py, boot, ca_path);
        let run = |mech: &str, user: &str, secret: &str, topic: &str| {
            outcome(&python, &[&bootstrap, &ca, mech, user, secret, topic])
        };
        [
            run("SCRAM-SHA-512", "alice", "alice-pw", "sec-allowed"),
            run("SCRAM-SHA-256", "alice", "alice-pw", "sec-allowed"),
            run("PLAIN", "alice", "alice-pw", "sec-allowed"),
            run("OAUTHBEARER", "", CAROL_TOKEN, "sec-allowed"),
            run("SCRAM-SHA-512", "alice", "wrong-pw", "sec-allowed"),
            run("PLAIN", "alice", "wrong-pw", "sec-allowed"),
            run("OAUTHBEARER", "", "carol-token-0123456789abcdeX", "sec-allowed"),
            run("SCRAM-SHA-512", "alice", "alice-pw", "sec-denied"),
            run("NONE", "", "", "sec-allowed"),
        ]
    })
    .await
    .unwrap();
    let want = [
        "ok",
        "ok",
        "ok",
        "ok",
        "authentication",
        "authentication",
        "authentication",
        "authorization",
        "error",
    ];
    assert_eq!(results.as_slice(), want.as_slice());

    // Transactions: Write on the transactional id, and on each topic written.
    let (py, boot, ca_path) = (python.clone(), bootstrap.clone(), ca.clone());
    let txns = tokio::task::spawn_blocking(move || {
        let run = |topic: &str, id: &str| {
            outcome(&py, &[&boot, &ca_path, "SCRAM-SHA-256", "alice", "alice-pw", topic, id])
        };
        [
            run("sec-allowed", "sec-txn"),
            run("sec-allowed", "other-txn"),
            run("sec-denied", "sec-txn"),
        ]
    })
    .await
    .unwrap();
    assert_eq!(txns, ["ok", "txn-authorization", "authorization"]);
    let denied = admin.describe_topic("sec-denied").await.unwrap();
    assert_eq!(denied.partitions[0].high_watermark, 0, "nothing written where alice may not");

    // Deleting one mechanism's credential ends logins with it, and only with it.
    admin.delete_user_credential("alice", vec!["SCRAM-SHA-512".into()]).await.unwrap();
    let users = admin.list_users().await.unwrap();
    assert_eq!(users.iter().filter(|u| u.user == "alice").count(), 1, "{users:?}");
    let (py, boot, ca_path) = (python.clone(), bootstrap.clone(), ca.clone());
    let after = tokio::task::spawn_blocking(move || {
        ["SCRAM-SHA-512", "SCRAM-SHA-256"]
            .map(|mech| outcome(&py, &[&boot, &ca_path, mech, "alice", "alice-pw", "sec-allowed"]))
    })
    .await
    .unwrap();
    assert_eq!(after, ["authentication", "ok"]);

    // kcat on Debian's librdkafka 2.0.2, which logs in at all only once the broker lists
    // SaslHandshake v0 among its versions. (Its SCRAM repeats the client nonce in its final
    // message, which Shale refuses as Kafka does since CVE-2024-56128: librdkafka 2.6.1
    // fixed it. PLAIN then.)
    let Some(kcat) = kafka::kcat() else { return };
    let list = move |password: &str| {
        let mut cmd = std::process::Command::new(&kcat);
        cmd.args(["-L", "-m", "5", "-t", "sec-allowed", "-b", &bootstrap])
            .args(["-X", "security.protocol=SASL_SSL", "-X", &format!("ssl.ca.location={ca}")])
            .args(["-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=alice"])
            .args(["-X", &format!("sasl.password={password}")]);
        kafka::run(cmd, WITHIN)
    };
    let (good, bad) =
        tokio::task::spawn_blocking(move || (list("alice-pw"), list("nope"))).await.unwrap();
    assert!(good.ok && good.stdout.contains("topic \"sec-allowed\""), "kcat: {good:?}");
    assert!(
        !bad.ok && bad.stderr.contains("authentication with PLAIN failed"),
        "kcat, wrong password: {bad:?}"
    );
}

/// Creates alice's and carol's ACLs on topic `sec-allowed` and group `secure-client` with confluent-kafka's AdminClient
/// as `admin` over SASL/SCRAM-SHA-512.
fn python_acls(python: &Path, bootstrap: &str, ca: &str) -> serde_json::Value {
    let script = r#"
import json, sys
from confluent_kafka.admin import (AdminClient, AclBinding, ResourceType, ResourcePatternType,
    AclOperation, AclPermissionType)
a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_SSL",
    "ssl.ca.location": sys.argv[2], "sasl.mechanisms": "SCRAM-SHA-512",
    "sasl.username": "admin", "sasl.password": "admin-pw"})
bindings = [AclBinding(kind, name, ResourcePatternType.LITERAL, p, "*", op, AclPermissionType.ALLOW)
    for p in ("User:alice", "User:carol")
    for (kind, name, op) in ((ResourceType.TOPIC, "sec-allowed", AclOperation.ALL),
                             (ResourceType.GROUP, "secure-client", AclOperation.READ),
                             (ResourceType.TRANSACTIONAL_ID, "sec-txn", AclOperation.WRITE))]
for f in a.create_acls(bindings, request_timeout=30).values():
    f.result()
print(json.dumps({"created": len(bindings)}))
"#;
    let mut cmd = std::process::Command::new(python);
    cmd.arg("-c").arg(script).arg(bootstrap).arg(ca);
    kafka::run(cmd, WITHIN).assert_ok("creating ACLs through a Kafka admin client")
}
