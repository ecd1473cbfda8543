//! The web console (issue 55) in a real browser: Debian's Chromium, headless, driven by
//! Playwright (`scripts/browser.sh install`), against a broker in this process. Each
//! scenario (`tests/console/console.mjs`) acts as a user would, checks what the pages
//! show, and runs axe-core's accessibility rules on every page it visits; screenshots of
//! each page are kept in `target/console-screenshots/SCENARIO/`.
//!
//! Without the browser a test fails when `CI=true`, naming the install command; otherwise
//! it skips after a note.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/pki.rs"]
mod pki;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long a scenario may take (a few seconds here; Chromium's first start is the most).
const WITHIN: Duration = Duration::from_secs(120);

/// What `scripts/browser.sh WHAT` prints, if the browser is installed; else fails under
/// `CI=true`, or notes the skip.
fn browser(what: &str) -> Option<PathBuf> {
    let script = kafka::root().join("scripts/browser.sh");
    let out = Command::new(script).arg(what).output().ok();
    if let Some(out) = out.filter(|o| o.status.success()) {
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    let msg = "the browser is not installed: run `scripts/browser.sh install`";
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("note: skipping: {msg}");
    None
}

/// Runs `scenario` of `console.mjs` with `args` against `url`: its JSON report, checked.
fn scenario(scenario: &str, url: &str, args: &[&str]) -> Option<serde_json::Value> {
    let (node_dir, chromium) = (browser("node-dir")?, browser("chromium")?);
    let shots = kafka::root().join("target/console-screenshots").join(scenario);
    let mut cmd = Command::new("node");
    cmd.arg(kafka::root().join("tests/console/console.mjs"))
        .arg(scenario)
        .arg(url)
        .arg(&shots)
        .args(args)
        .env("SHALE_BROWSER_DIR", node_dir)
        .env("SHALE_CHROMIUM", chromium);
    Some(kafka::run(cmd, WITHIN).assert_ok(&format!("the console's {scenario} scenario")))
}

/// A broker in this process with its console, its settings otherwise `configure`'s.
async fn broker(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut shale::settings::Settings),
) -> shale::server::RunningServer {
    let mut settings = common::settings(dir);
    settings.console.listen = Some("127.0.0.1:0".parse().unwrap());
    configure(&mut settings);
    common::start(settings).await
}

/// Anonymous access: the overview, the empty topic list, a create refused by name and one
/// made through the form, the topic's partitions and configs, search, the keyboard, a
/// forged change refused, and a delete behind its typed confirmation; every page free of
/// accessibility violations.
#[test]
fn a_user_creates_browses_and_deletes_a_topic_in_the_browser() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |_| {}));
    let url = server.console_url().unwrap();
    let Some(report) = scenario("tour", &url, &["orders"]) else { return };
    let pages = report["pages"].as_object().unwrap();
    for page in ["overview", "topics-empty", "topics-refused", "topic", "topic-delete"] {
        assert!(pages.contains_key(page), "{page} was looked at: {report}");
    }
    let left = rt.block_on(server.broker().list_topics()).unwrap();
    assert!(left.iter().all(|t| t.record.name != "orders"), "deleted: {left:?}");
    rt.block_on(server.close()).unwrap();
}

/// Signed in with a token as a user with only Read on one topic: sent to sign in first, a
/// wrong token refused, then that topic alone in the list; the other topic, a create and a
/// delete refused with the broker's reason shown; signing out ends the session.
#[test]
fn a_reader_sees_only_their_topic_and_every_change_is_refused_with_the_reason() {
    const ADMIN: &str = "console-admin-token";
    const READER: &str = "console-reader-token";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Required authentication needs TLS (brokers authenticate to each other with their
    // certificates): the console serves HTTPS, its cookie `Secure`.
    let tokens = format!("User:admin {ADMIN}\nUser:reader {READER}\n");
    let (mut settings, ca_file) = pki::secure_settings(dir.path(), &tokens);
    settings.console.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = rt.block_on(common::start(settings));
    let addr = server.addr().to_string();
    let tls = shale::client::tls::TlsOptions::from_files(Some(&ca_file), None, None).unwrap();
    rt.block_on(async {
        let admin = shale::client::Client::builder(&addr).tls(tls).token(ADMIN).unwrap();
        let admin = admin.build().unwrap();
        admin.admin().create_topic("visible", 2, 1, Default::default()).await.unwrap();
        admin.admin().create_topic("hidden", 1, 1, Default::default()).await.unwrap();
        let read = shale::proto::pb::AclBinding {
            principal: "User:reader".into(),
            resource_type: "topic".into(),
            pattern_type: "literal".into(),
            resource_name: "visible".into(),
            operation: "read".into(),
            permission: "allow".into(),
        };
        admin.admin().create_acls(vec![read]).await.unwrap();
        let producer = shale::client::Producer::new(admin.clone(), Default::default());
        for i in 0..3 {
            let r = shale::client::ProducerRecord::new("visible", format!("r{i}")).partition(0);
            producer.send(r).await.unwrap().await.unwrap();
        }
    });
    let url = server.console_url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let Some(report) = scenario("reader", &url, &[READER, "visible", "hidden"]) else { return };
    assert!(report["pages"].as_object().unwrap().contains_key("reader-delete-refused"));
    // The super user manages ACLs from the same console.
    scenario("acls", &url, &[ADMIN, "User:reader", "visible", "hidden"]);
    let left = rt.block_on(server.broker().list_topics()).unwrap();
    assert_eq!(left.len(), 2, "nothing deleted or created: {left:?}");
    rt.block_on(server.close()).unwrap();
}

/// Records of a topic in the browser: every partition's newest, from an offset and on to
/// the next page, from a time, as JSON and hex, filtered by a header, a key and a
/// substring, downloaded; and a record produced through a second page's form shown live
/// on the first, which follows the partition.
#[test]
fn a_user_browses_filters_downloads_produces_and_follows_records_live() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |_| {}));
    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600_000;
    rt.block_on(async {
        let client = common::client(&server);
        client.admin().create_topic("events", 2, 1, Default::default()).await.unwrap();
        let producer = shale::client::Producer::new(client.clone(), Default::default());
        let mut sent = Vec::new();
        for i in 0..20i64 {
            let source = if i % 2 == 0 { "web" } else { "app" };
            let mut r = shale::client::ProducerRecord::new("events", format!("{{\"n\":{i}}}"))
                .key(format!("order-{i}"))
                .partition(0);
            r.headers.push(shale::record::Header {
                key: "source".into(),
                value: Some(source.to_string().into()),
            });
            r.timestamp_ms = Some(T0 + i * 60_000);
            sent.push(producer.send(r).await.unwrap());
        }
        for i in 0..10 {
            let r = shale::client::ProducerRecord::new("events", format!("hello {i}"))
                .key(format!("user-{i}"))
                .partition(1);
            sent.push(producer.send(r).await.unwrap());
        }
        for delivery in sent {
            delivery.await.unwrap();
        }
    });
    let url = server.console_url().unwrap();
    let Some(report) = scenario("messages", &url, &["events"]) else { return };
    eprintln!(
        "live: the produced record was shown {} ms after its form was sent",
        report["live_ms"]
    );
    rt.block_on(server.close()).unwrap();
}

/// A consumer group in the browser: listed with its lag; its page follows the lag while
/// records are produced from a second page; its offsets reset to the latest, previewed
/// first (the preview changing nothing), then applied.
#[test]
fn a_user_watches_a_groups_lag_change_and_resets_its_offsets() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |_| {}));
    let client = rt.block_on(async {
        let client = common::client(&server);
        client.admin().create_topic("payments", 2, 1, Default::default()).await.unwrap();
        let producer = shale::client::Producer::new(client.clone(), Default::default());
        let mut sent = Vec::new();
        for p in 0..2 {
            for i in 0..10 {
                let r =
                    shale::client::ProducerRecord::new("payments", format!("p{i}")).partition(p);
                sent.push(producer.send(r).await.unwrap());
            }
        }
        for delivery in sent {
            delivery.await.unwrap();
        }
        let commit = |partition, offset| shale::proto::pb::OffsetCommit {
            topic: "payments".into(),
            partition,
            offset,
            metadata: String::new(),
        };
        let groups = shale::client::groups::GroupAdmin::new(client.clone());
        groups.commit("billing", vec![commit(0, 4), commit(1, 6)]).await.unwrap();
        client
    });
    let url = server.console_url().unwrap();
    if scenario("groups", &url, &["billing", "payments"]).is_none() {
        return;
    }
    let committed = rt.block_on(async {
        let groups = shale::client::groups::GroupAdmin::new(client);
        groups.describe("billing").await.unwrap()
    });
    let offsets: Vec<(u32, i64)> =
        committed.partitions.iter().map(|p| (p.partition, p.committed)).collect();
    assert_eq!(offsets, [(0, 15), (1, 10)], "reset to the latest: {committed:?}");
    rt.block_on(server.close()).unwrap();
}

/// A read-only console shows no form that changes anything, and refuses a change sent
/// anyway, saying why.
#[test]
fn a_read_only_console_offers_and_makes_no_change() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |s| s.console.read_only = true));
    rt.block_on(async {
        let client = common::client(&server);
        client.admin().create_topic("kept", 1, 1, Default::default()).await.unwrap();
    });
    let url = server.console_url().unwrap();
    if scenario("readonly", &url, &["kept"]).is_none() {
        return;
    }
    let left = rt.block_on(server.broker().list_topics()).unwrap();
    assert!(left.iter().any(|t| t.record.name == "kept"), "not deleted: {left:?}");
    rt.block_on(server.close()).unwrap();
}

/// Browsing a tiered topic from a time whose records are only in the bucket (the standalone
/// default, a `file://` bucket under the data dir; local copies trimmed to one segment): the
/// page shows the first record at or after that time, which the broker read from the bucket.
#[test]
fn browsing_a_tiered_topic_from_a_time_reads_the_bucket() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let server = rt.block_on(broker(&dir.path().join("data"), |s| {
        s.tier.object_store = bucket;
        // Local retention trims the uploaded segments within a second, not the default 30.
        s.log.retention_check_interval_ms = 1_000;
    }));
    // An hour ago (older records would be past the default retention.ms, 7 days, and
    // deleted from the bucket too); record i is stamped a second after record i - 1.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let t0 = now.as_millis() as i64 - 3_600_000;
    const RECORDS: i64 = 2_000;
    let segment = (128 * 1024).to_string();
    let local_start = rt.block_on(async {
        let client = common::client(&server);
        let configs = common::configs(&[
            ("remote.storage.enable", "true"),
            ("segment.bytes", &segment),
            ("local.retention.bytes", &segment),
        ]);
        client.admin().create_topic("archive", 1, 1, configs).await.unwrap();
        let config = shale::client::ProducerConfig {
            batch_size: 16 * 1024,
            ..shale::client::ProducerConfig::default()
        };
        let producer = shale::client::Producer::new(client.clone(), config);
        let mut sent = Vec::new();
        for i in 0..RECORDS {
            let mut value = format!("{i:012}:").into_bytes();
            value.resize(1000, b'x');
            let mut r = shale::client::ProducerRecord::new("archive", value).partition(0);
            r.timestamp_ms = Some(t0 + i * 1000);
            sent.push(producer.send(r).await.unwrap());
        }
        for delivery in sent {
            delivery.await.unwrap();
        }
        let what = "the oldest 500 records in the bucket only";
        common::wait_until(std::time::Duration::from_secs(60), what, || {
            let client = client.clone();
            async move {
                let p =
                    client.admin().describe_topic("archive").await.unwrap().partitions[0].clone();
                p.local_log_start_offset > 500 && p.remote_log_start_offset == 0
            }
        })
        .await;
        client.admin().describe_topic("archive").await.unwrap().partitions[0].local_log_start_offset
    });
    let url = server.console_url().unwrap();
    let (at, offset) = ((t0 + 100_000).to_string(), "100".to_string());
    let args = ["archive", &at, &offset, &local_start.to_string()];
    if scenario("tiered", &url, &args).is_none() {
        return;
    }
    rt.block_on(server.close()).unwrap();
}

/// The schema registry's subjects in the browser: a subject registered twice through the
/// registry's REST API is listed with its latest version; each version's text is shown.
#[test]
fn a_user_reads_the_registrys_subjects_and_versions() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = rt.block_on(broker(dir.path(), |s| s.schema_registry.listen = registry_listen));
    let registry = server.registry_addr().unwrap().to_string();
    let record = |fields: &str| {
        let schema = format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#);
        serde_json::json!({ "schema": schema }).to_string()
    };
    let v1 = record(r#"{"name":"id","type":"long"}"#);
    let v2 = record(
        r#"{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}"#,
    );
    let v2_id = rt.block_on(async {
        let mut id = 0;
        for body in [v1, v2] {
            let path = "/subjects/orders-value/versions";
            let (status, answer) = common::http_request(&registry, "POST", path, Some(&body)).await;
            assert_eq!(status, 200, "{answer}");
            let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
            id = answer["id"].as_i64().unwrap() as i32;
        }
        // Two records in Confluent's wire format: one of version 2 (id 7 as a zigzag
        // long, the union's string branch, "rush"), one naming a schema that is not there.
        let client = common::client(&server);
        client.admin().create_topic("orders", 1, 1, Default::default()).await.unwrap();
        let producer = shale::client::Producer::new(client, Default::default());
        let avro = [&[0u8][..], &id.to_be_bytes(), &[0x0e, 0x02, 0x08], b"rush"].concat();
        let unknown = [&[0u8][..], &999i32.to_be_bytes(), &[0x0e]].concat();
        for (key, value) in [("order-7", avro), ("order-8", unknown)] {
            let r = shale::client::ProducerRecord::new("orders", value).key(key).partition(0);
            producer.send(r).await.unwrap().await.unwrap();
        }
        id
    });
    let url = server.console_url().unwrap();
    if scenario("schemas", &url, &["orders-value", "orders", &v2_id.to_string()]).is_none() {
        return;
    }
    rt.block_on(server.close()).unwrap();
}

/// Transactions in the browser: an open transaction is listed with its partitions and
/// aborted from the page.
#[test]
fn an_operator_sees_and_aborts_an_open_transaction() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |_| {}));
    let producer = rt.block_on(async {
        let client = common::client(&server);
        client.admin().create_topic("ledger", 2, 1, Default::default()).await.unwrap();
        let config = shale::client::TransactionalConfig::new("ledger-writer");
        let mut producer =
            shale::client::TransactionalProducer::init(client.clone(), config).await.unwrap();
        producer.begin().unwrap();
        for p in 0..2 {
            let r = shale::client::ProducerRecord::new("ledger", "pending").partition(p);
            producer.send(r).await.unwrap().await.unwrap();
        }
        producer
    });
    let url = server.console_url().unwrap();
    if scenario("transactions", &url, &["ledger-writer"]).is_none() {
        return;
    }
    drop(producer);
    rt.block_on(server.close()).unwrap();
}

/// Lists longer than a page: 230 topics and one of 450 partitions, walked page by page in
/// the browser, searched across pages, and a bad page number refused by name.
#[test]
fn long_lists_are_shown_a_page_at_a_time_and_searched_whole() {
    use futures::StreamExt;
    const TOPICS: usize = 230;
    const PARTITIONS: u32 = 450;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path(), |_| {}));
    rt.block_on(async {
        let client = common::client(&server);
        let admin = client.admin();
        admin.create_topic("wide", PARTITIONS, 1, Default::default()).await.unwrap();
        let names: Vec<String> = (0..TOPICS - 1).map(|i| format!("t-{i}")).collect();
        let created = futures::stream::iter(names.iter().map(|name| {
            let admin = admin.clone();
            async move { admin.create_topic(name, 1, 1, Default::default()).await }
        }))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
        assert!(created.iter().all(Result::is_ok), "created: {created:?}");
    });
    let url = server.console_url().unwrap();
    let (topics, partitions) = (TOPICS.to_string(), PARTITIONS.to_string());
    if scenario("paging", &url, &[&topics, "wide", &partitions]).is_none() {
        return;
    }
    rt.block_on(server.close()).unwrap();
}

/// Three brokers, a topic with a partition led by each: one broker's console shows the
/// records of every partition, those led by the others read from their leaders, from the
/// oldest and one partition at a time; it follows one of those live and produces to it.
#[test]
fn one_brokers_console_browses_partitions_led_by_the_others() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster =
        cluster::Cluster::start(3, "console-spread", &["--console-listen", "127.0.0.1:0"]);
    let console = {
        let line = cluster.broker(0).first_line().to_string();
        let url = line.split("console http://").nth(1).and_then(|r| r.split([',', ')']).next());
        url.unwrap_or_else(|| panic!("no console in the startup line: {line}")).to_string()
    };
    let leaders = rt.block_on(async {
        let client = cluster.client();
        cluster::wait_for_brokers(&client, &[1, 2, 3]).await;
        client.admin().create_topic("spread", 3, 1, Default::default()).await.unwrap();
        let producer = shale::client::Producer::new(client.clone(), Default::default());
        for p in 0..3 {
            let r = shale::client::ProducerRecord::new("spread", format!("from-{p}")).partition(p);
            producer.send(r).await.unwrap().await.unwrap();
        }
        let mut leaders = Vec::new();
        for p in 0..3 {
            leaders.push(cluster::leader_of(&client, "spread", p).await);
        }
        leaders
    });
    assert!(
        leaders.iter().any(|l| *l != 1),
        "a partition led elsewhere than broker 1: {leaders:?}"
    );
    rt.block_on(async {
        let (status, all) = common::http_get(&console, "/topics/spread/messages?from=oldest").await;
        assert_eq!(status, 200, "{all}");
        for p in 0..3 {
            assert!(
                all.contains(&format!("from-{p}")),
                "partition {p} (led by {}): {all}",
                leaders[p as usize]
            );
        }
        for p in 0..3u32 {
            let path = format!("/topics/spread/messages?from=oldest&partition={p}");
            let (status, one) = common::http_get(&console, &path).await;
            assert_eq!(status, 200, "{one}");
            assert!(one.contains(&format!("from-{p}")), "partition {p} alone: {one}");
        }
    });
    // In the browser: a partition led by another broker followed live, and a record
    // produced to it through this broker's form.
    let elsewhere = leaders.iter().position(|l| *l != 1).unwrap().to_string();
    scenario("spread", &format!("http://{console}"), &["spread", &elsewhere]);
}
