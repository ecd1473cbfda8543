//! The schema registry (issue 52) from outside: Confluent's REST API as registry clients
//! use it, over HTTP; confluent-kafka's `SchemaRegistryClient` with its Avro serializer
//! and deserializer producing and consuming through the Kafka listener (a client nobody
//! here wrote, installed by `scripts/kafka-clients.sh install`), and npm's
//! `@kafkajs/confluent-schema-registry` as a second implementation; bad input answered with
//! Confluent's codes while the broker keeps serving; and a SIGKILLed standalone broker
//! that comes back with every schema, config and mode, handing out IDs above every ID it
//! handed out before. Clusters: `schema_registry_cluster.rs`.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/pki.rs"]
mod pki;

use std::time::Duration;

use serde_json::{Value, json};

use common::{http_request, http_request_with};

/// A broker in this process with its Kafka and registry listeners.
async fn broker(dir: &std::path::Path) -> shale::server::RunningServer {
    let mut settings = common::settings(dir);
    settings.kafka.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.schema_registry.listen = Some("127.0.0.1:0".parse().unwrap());
    common::start(settings).await
}

async fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    let (status, body) = http_request(addr, method, path, text.as_deref()).await;
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

fn schema(fields: &[(&str, &str)]) -> String {
    let fields: Vec<Value> = fields.iter().map(|(n, t)| json!({"name": n, "type": t})).collect();
    json!({"type": "record", "name": "R", "fields": fields}).to_string()
}

/// Runs a client program (`command` of the Kafka bootstrap address and the registry's
/// URL) against a broker of its own, within `within`: its JSON report, checked `ok`.
fn client_run(
    what: &str,
    within: Duration,
    command: impl FnOnce(&str, &str) -> std::process::Command,
) -> Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = rt.block_on(broker(dir.path()));
    let bootstrap = server.kafka_addr().unwrap().to_string();
    let url = server.registry_url().unwrap();
    let json = kafka::run(command(&bootstrap, &url), within).assert_ok(what);
    rt.block_on(server.close()).unwrap();
    json
}

#[tokio::test]
async fn the_http_api_answers_as_confluents_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let addr = server.registry_addr().unwrap().to_string();
    let a = addr.as_str();

    assert_eq!(call(a, "GET", "/subjects", None).await, (200, json!([])));
    assert_eq!(
        call(a, "GET", "/schemas/types", None).await,
        (200, json!(["AVRO", "PROTOBUF", "JSON"]))
    );
    let v1 = schema(&[("a", "int")]);
    let (status, body) =
        call(a, "POST", "/subjects/s-value/versions", Some(json!({"schema": v1}))).await;
    assert_eq!((status, body), (200, json!({"id": 1})));
    // Registered again: the same ID, no new version.
    let (_, body) =
        call(a, "POST", "/subjects/s-value/versions", Some(json!({"schema": v1}))).await;
    assert_eq!(body, json!({"id": 1}));
    assert_eq!(call(a, "GET", "/subjects/s-value/versions", None).await, (200, json!([1])));
    let (status, body) = call(a, "GET", "/subjects/s-value/versions/latest", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["subject"].clone(), body["version"].clone(), body["id"].clone()),
        (json!("s-value"), json!(1), json!(1))
    );
    assert_eq!(
        body["schema"],
        json!(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
    );
    assert!(body.get("schemaType").is_none(), "Avro's type is left out: {body}");
    let canonical = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    let (status, body) = call(a, "GET", "/schemas/ids/1", None).await;
    assert_eq!((status, body["schema"].clone()), (200, json!(canonical)));
    let (_, raw) = http_request(a, "GET", "/subjects/s-value/versions/1/schema", None).await;
    assert_eq!(raw, canonical);

    // BACKWARD (the default) refuses a field without a default, with Confluent's reasons.
    let v2_bad = schema(&[("a", "int"), ("b", "string")]);
    let (status, body) =
        call(a, "POST", "/subjects/s-value/versions", Some(json!({"schema": v2_bad}))).await;
    assert_eq!((status, body["error_code"].clone()), (409, json!(409)), "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{body}"
    );
    let (status, body) = call(
        a,
        "POST",
        "/compatibility/subjects/s-value/versions/latest?verbose=true",
        Some(json!({"schema": v2_bad})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["is_compatible"], json!(false));
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.as_str().unwrap().contains("/fields/1")),
        "{body}"
    );
    let (_, body) =
        call(a, "POST", "/compatibility/subjects/s-value/versions", Some(json!({"schema": v1})))
            .await;
    assert_eq!(body, json!({"is_compatible": true}));
    assert_eq!(
        call(a, "PUT", "/config/s-value", Some(json!({"compatibility": "NONE"}))).await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        call(a, "GET", "/config/s-value", None).await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        call(a, "GET", "/config", None).await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let (_, body) =
        call(a, "POST", "/subjects/s-value/versions", Some(json!({"schema": v2_bad}))).await;
    assert_eq!(body, json!({"id": 2}));
    // The same schema under another subject: the same ID.
    let (_, body) =
        call(a, "POST", "/subjects/t-value/versions", Some(json!({"schema": v1}))).await;
    assert_eq!(body, json!({"id": 1}));
    let (_, body) = call(a, "GET", "/schemas/ids/1/versions", None).await;
    assert_eq!(
        body,
        json!([{"subject": "s-value", "version": 1}, {"subject": "t-value", "version": 1}])
    );
    let (_, body) = call(a, "POST", "/subjects/t-value", Some(json!({"schema": v1}))).await;
    assert_eq!((body["version"].clone(), body["id"].clone()), (json!(1), json!(1)));

    // Deletes.
    assert_eq!(
        call(a, "DELETE", "/subjects/s-value/versions/2?permanent=true", None).await.1["error_code"],
        json!(40407)
    );
    assert_eq!(call(a, "DELETE", "/subjects/s-value/versions/2", None).await, (200, json!(2)));
    assert_eq!(
        call(a, "GET", "/subjects/s-value/versions/2", None).await.1["error_code"],
        json!(40402)
    );
    assert_eq!(
        call(a, "GET", "/subjects/s-value/versions?deleted=true", None).await.1,
        json!([1, 2])
    );
    assert_eq!(call(a, "DELETE", "/subjects/s-value", None).await, (200, json!([1])));
    assert_eq!(call(a, "DELETE", "/subjects/s-value", None).await.1["error_code"], json!(40404));
    assert_eq!(call(a, "GET", "/subjects", None).await.1, json!(["t-value"]));
    assert_eq!(
        call(a, "DELETE", "/subjects/s-value?permanent=true", None).await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        call(a, "GET", "/subjects/s-value/versions", None).await.1["error_code"],
        json!(40401)
    );
    // ID 2 is gone for good; the next new schema gets 3, never 2 again.
    assert_eq!(call(a, "GET", "/schemas/ids/2", None).await.1["error_code"], json!(40403));
    let (_, body) =
        call(a, "POST", "/subjects/u-value/versions", Some(json!({"schema": "\"string\""}))).await;
    assert_eq!(body, json!({"id": 3}));

    // Modes.
    assert_eq!(
        call(a, "PUT", "/mode/u-value", Some(json!({"mode": "READONLY"}))).await,
        (200, json!({"mode": "READONLY"}))
    );
    let (_, body) =
        call(a, "POST", "/subjects/u-value/versions", Some(json!({"schema": "\"long\""}))).await;
    assert_eq!(body["error_code"], json!(42205), "{body}");
    assert_eq!(
        call(a, "PUT", "/mode", Some(json!({"mode": "IMPORT"}))).await.1["error_code"],
        json!(42205)
    );
    assert_eq!(
        call(a, "PUT", "/mode/u-value", Some(json!({"mode": "SIDEWAYS"}))).await.1["error_code"],
        json!(42204)
    );
    assert_eq!(call(a, "DELETE", "/mode/u-value", None).await, (200, json!({"mode": "READONLY"})));
    assert_eq!(call(a, "GET", "/mode/u-value", None).await.1["error_code"], json!(40409));
    // IMPORT on an empty subject keeps the given ID and version.
    assert_eq!(call(a, "PUT", "/mode/w-value", Some(json!({"mode": "IMPORT"}))).await.0, 200);
    let (_, body) = call(
        a,
        "POST",
        "/subjects/w-value/versions",
        Some(json!({"schema": "\"bytes\"", "id": 100, "version": 7})),
    )
    .await;
    assert_eq!(body, json!({"id": 100}));
    assert_eq!(call(a, "GET", "/subjects/w-value/versions", None).await.1, json!([7]));
    assert_eq!(call(a, "GET", "/schemas/ids/1?fetchMaxId=true", None).await.1["maxId"], json!(100));
    server.close().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_confluents_codes_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let addr = server.registry_addr().unwrap().to_string();
    let a = addr.as_str();
    let register = |body: &'static str| async move {
        http_request(a, "POST", "/subjects/x-value/versions", Some(body)).await
    };
    let code = |body: String| serde_json::from_str::<Value>(&body).unwrap()["error_code"].clone();

    let (status, body) = register("{not json").await;
    assert_eq!((status, code(body)), (422, json!(42201)));
    let (status, body) = register("[1,2]").await;
    assert_eq!((status, code(body)), (422, json!(42201)));
    let (status, body) = register(r#"{"schema": 5}"#).await;
    assert_eq!((status, code(body)), (422, json!(42201)));
    let (status, body) = register(r#"{"schema": "\"int\"", "schemaType": "XML"}"#).await;
    assert_eq!((status, code(body)), (422, json!(42201)));
    let (status, body) =
        register(r#"{"schema": "{\"type\":\"record\",\"name\":\"1R\",\"fields\":[]}"}"#).await;
    assert_eq!((status, code(body)), (422, json!(42201)), "an invalid name");
    let (status, body) = register(r#"{"schema": "\"int\"", "references": [{"name": "x", "subject": "x-value", "version": 1}]}"#).await;
    assert_eq!((status, code(body)), (422, json!(42201)), "a reference to itself, not registered");
    // Deeply nested: refused, not a crash.
    let deep = format!("{}\"int\"{}", r#"{"type":"array","items":"#.repeat(3000), "}".repeat(3000));
    let body = json!({"schema": deep}).to_string();
    let (status, reply) = http_request(a, "POST", "/subjects/x-value/versions", Some(&body)).await;
    assert_eq!((status, code(reply)), (422, json!(42201)));
    // 10 MB: refused before it is read whole.
    let big = json!({"schema": "x".repeat(10 << 20)}).to_string();
    let (status, reply) = http_request(a, "POST", "/subjects/x-value/versions", Some(&big)).await;
    assert_eq!((status, code(reply)), (422, json!(42209)));
    // Unknown paths and versions.
    assert_eq!(call(a, "GET", "/nothing/here", None).await.0, 404);
    assert_eq!(
        call(a, "GET", "/subjects/x-value/versions/abc", None).await.1["error_code"],
        json!(42202)
    );
    assert_eq!(call(a, "GET", "/schemas/ids/xyz", None).await.1["error_code"], json!(40403));
    // A recursive schema is a valid one.
    let node = json!({"schema": json!({"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"],"default":null}]}).to_string()});
    assert_eq!(
        call(a, "POST", "/subjects/x-value/versions", Some(node)).await,
        (200, json!({"id": 1}))
    );
    // JSON Schema: not a schema, nested too deep, a `$ref` nothing resolves: refused.
    let json_schema = |text: String| json!({"schemaType": "JSON", "schema": text});
    let bad = [
        r#"{"type": "objekt"}"#.to_string(),
        format!("{}{{}}{}", r#"{"properties":{"a":"#.repeat(3000), "}}".repeat(3000)),
        r#"{"$ref": "elsewhere.json"}"#.to_string(),
    ];
    for text in bad {
        let (status, reply) =
            call(a, "POST", "/subjects/j-value/versions", Some(json_schema(text))).await;
        assert_eq!((status, reply["error_code"].clone()), (422, json!(42201)), "{reply}");
    }
    // Self-referencing JSON schemas are valid, and checking one against another ends.
    let tree = |extra: &str| {
        format!(
            r##"{{"type":"object","properties":{{"value":{{"type":"integer"}},"children":{{"type":"array","items":{{"$ref":"#"}}}}{extra}}},"additionalProperties":false}}"##
        )
    };
    let (status, reply) =
        call(a, "POST", "/subjects/j-value/versions", Some(json_schema(tree("")))).await;
    assert_eq!(status, 200, "{reply}");
    let evolved = tree(r#","label":{"type":"string"}"#);
    let (status, reply) =
        call(a, "POST", "/subjects/j-value/versions", Some(json_schema(evolved))).await;
    assert_eq!(status, 200, "an optional property added to a closed recursive object: {reply}");
    // Still serving.
    assert_eq!(call(a, "GET", "/subjects", None).await, (200, json!(["j-value", "x-value"])));
    server.close().await.unwrap();
}

#[test]
fn confluent_kafkas_avro_serializers_round_trip_through_the_kafka_listener() {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("sr");
    let json = client_run(
        "confluent-kafka's registry client",
        Duration::from_secs(90),
        |bootstrap, url| {
            kafka::python_script(&python, "schema_registry.py", &[bootstrap, url, &prefix])
        },
    );
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(200), Some(200)),
        "{json}"
    );
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(json["shared_id"], true, "{json}");
}

/// A value in Confluent's wire format: magic byte 0, the schema ID, then the data.
fn wire(id: i64, data: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(id as i32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn produce_request(topic: &str, values: &[Option<Vec<u8>>]) -> shale::proto::pb::ProduceRequest {
    use shale::record::{BatchBuilder, Compression, Record};
    let mut b = BatchBuilder::new(Compression::Lz4);
    for v in values {
        b.push(Record {
            key: Some(bytes::Bytes::from_static(b"k")),
            value: v.clone().map(bytes::Bytes::from),
            headers: vec![],
            timestamp_ms: 1,
        });
    }
    shale::proto::pb::ProduceRequest {
        topic: topic.to_string(),
        acks: shale::proto::pb::Acks::All as i32,
        payload: Some(shale::proto::pb::produce_request::Payload::Batches(b.build())),
        ..Default::default()
    }
}

/// `confluent.value.schema.validation`: a topic that asks for it refuses, on gRPC and on
/// the Kafka listener alike, a batch with a record whose value does not carry the ID of a
/// schema registered under `<topic>-value`, naming the record; nothing of the batch is
/// stored; valid values and tombstones are accepted; turned off, anything goes again.
#[tokio::test]
async fn a_validating_topic_refuses_records_without_a_registered_schema_id_on_both_apis() {
    use shale::proto::status::from_status;
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let reg = server.registry_addr().unwrap().to_string();
    let topic = "typed";
    let order = json!({"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "id", "type": "long"}, {"name": "item", "type": "string"}]});
    let (status, body) = call(
        &reg,
        "POST",
        &format!("/subjects/{topic}-value/versions"),
        Some(json!({"schema": order.to_string()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_i64().unwrap();
    let (status, body) = call(
        &reg,
        "POST",
        "/subjects/elsewhere-value/versions",
        Some(json!({"schema": schema(&[("other", "string")])})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let other = body["id"].as_i64().unwrap();

    let client = common::client(&server);
    let on = [("confluent.value.schema.validation".to_string(), "true".to_string())];
    client.admin().create_topic(topic, 1, 0, on.into()).await.unwrap();
    let mut log = client.log_rpc(&server.addr().to_string()).unwrap();

    // gRPC: the first refused record is named, and nothing of its batch is stored.
    let refusals = [
        (
            vec![Some(wire(id, b"a")), Some(b"plain".to_vec()), Some(wire(id, b"c"))],
            1,
            "first byte 0x70".to_string(),
        ),
        (
            vec![None, Some(wire(other, b"x"))],
            1,
            format!("schema ID {other} is not registered under subject \"{topic}-value\""),
        ),
        (vec![Some(wire(9_999, b"x"))], 0, "schema ID 9999 is not registered".to_string()),
        (vec![Some(vec![0, 0, 1])], 0, "3 bytes, too short".to_string()),
    ];
    for (values, record, says) in refusals {
        let s = log.produce(produce_request(topic, &values)).await.unwrap_err();
        let e = from_status(&s);
        assert_eq!(
            (s.code(), e.reason.as_ref()),
            (tonic::Code::InvalidArgument, "INVALID_BATCH"),
            "{s:?}"
        );
        assert!(
            s.message().contains(&format!("record {record}: value: {says}")),
            "{}",
            s.message()
        );
        assert_eq!(e.details.get("record_index"), Some(&record.to_string()), "{s:?}");
    }
    let stored = log.produce(produce_request(topic, &[Some(wire(id, b"ok")), None])).await.unwrap();
    assert_eq!(stored.into_inner().base_offset, 0, "every refused batch left nothing behind");

    // The Kafka listener, with confluent-kafka's producer and Avro serializer.
    if let Some(python) = kafka::python() {
        let bootstrap = server.kafka_addr().unwrap().to_string();
        let cmd = kafka::python_script(
            &python,
            "schema_validation.py",
            &[&bootstrap, &format!("http://{reg}"), topic],
        );
        // Off the runtime: the broker serves on it meanwhile.
        let run = move || kafka::run(cmd, Duration::from_secs(90));
        let json = tokio::task::spawn_blocking(run)
            .await
            .unwrap()
            .assert_ok("confluent-kafka producing to a validating topic");
        // librdkafka reports the code; the record it names is in `kafka_wire.rs`.
        assert_eq!(json["refused"]["code"], "INVALID_RECORD", "{json}");
        assert_eq!(json["accepted"], json!([2, 3]), "{json}");
    }

    // Off again: any value is accepted.
    let off = [("confluent.value.schema.validation".to_string(), "false".to_string())];
    client.admin().alter_topic_config(topic, off.into(), vec![]).await.unwrap();
    log.produce(produce_request(topic, &[Some(b"plain".to_vec())])).await.unwrap();
    server.close().await.unwrap();
}

/// TLS on the registry listener, with the broker's certificate (`[tls]`, as the other
/// listeners): confluent-kafka's registry client over HTTPS trusting the cluster's CA, and
/// `shale schema` with `--tls-ca`; a plaintext request gets no answer; and the listener
/// rule of the others: plaintext HTTP off loopback is refused at start.
#[tokio::test]
async fn the_registry_serves_https_and_refuses_plaintext_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("registry CA");
    let ca_file = ca.write(&pki_dir.path().join("ca.crt"));
    let files = ca.write_leaf(pki_dir.path(), "broker", "localhost");
    let mut settings = common::settings(dir.path());
    settings.tls.cert_file = Some(files.cert.clone());
    settings.tls.key_file = Some(files.key.clone());
    settings.tls.ca_file = Some(ca_file.clone());
    settings.tls.client_auth = shale::tls::ClientAuth::Optional;
    settings.schema_registry.listen = Some("127.0.0.1:0".parse().unwrap());
    let server = common::start(settings).await;
    let url = server.registry_url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let addr = server.registry_addr().unwrap().to_string();
    let plain = common::try_http_request(&addr, "GET", "/subjects", None, &[]).await;
    let status = plain.as_ref().map_or(0, |(status, _)| *status);
    assert_eq!(status, 0, "a plaintext request got an HTTP answer over TLS: {plain:?}");

    let https = url.clone();
    if let Some(python) = kafka::python() {
        let ca = ca_file.to_string_lossy().to_string();
        let cmd =
            kafka::python_script(&python, "schema_registry_tls.py", &[&https, &ca, "tls-value"]);
        let run = move || kafka::run(cmd, Duration::from_secs(90));
        let json =
            tokio::task::spawn_blocking(run).await.unwrap().assert_ok("confluent-kafka over HTTPS");
        assert_eq!((json["id"].as_i64(), json["version"].as_i64()), (Some(1), Some(1)), "{json}");
    }
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(["schema", "register", "cli-value", "--file", "-", "--registry", &https, "--tls-ca"])
        .arg(&ca_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let register = move || {
        let mut cli = cli;
        use std::io::Write;
        cli.stdin.take().unwrap().write_all(br#""string""#).unwrap();
        cli.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(register).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "shale schema register over HTTPS: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).trim().is_empty());
    server.close().await.unwrap();

    let mut settings = common::settings(dir.path());
    settings.schema_registry.listen = Some("0.0.0.0:0".parse().unwrap());
    let clock = shale::clock::system();
    let meta = shale::server::embedded_meta(&settings, clock.clone()).unwrap();
    let e = shale::server::start(settings, meta, clock).await.expect_err("plaintext on 0.0.0.0");
    assert!(
        e.message.contains("refusing to serve plaintext HTTP for the schema registry on 0.0.0.0:0"),
        "{e}"
    );
}

/// Confluent's Java serializers (kafka-avro-serializer and kafka-schema-registry-client
/// 7.0.16), a third client implementation: KafkaAvroSerializer registers and produces
/// through the Kafka listener with two schema versions, KafkaAvroDeserializer reads every
/// record back by the ID it carries, and CachedSchemaRegistryClient is refused an
/// incompatible evolution with 409 and sees one ID for one schema under two subjects.
#[test]
fn confluents_java_avro_serializers_round_trip_through_the_kafka_listener() {
    let Some(jars) = kafka::java_jars() else { return };
    let prefix = kafka::unique("srj");
    let json =
        client_run("Confluent's Java serializers", Duration::from_secs(120), |bootstrap, url| {
            kafka::java_program(&jars, "SchemaRegistryAvro.java", &[bootstrap, url, &prefix])
        });
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(200), Some(200)),
        "{json}"
    );
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(
        (json["refused"].as_i64(), json["test_compatible"].as_bool()),
        (Some(409), Some(false)),
        "{json}"
    );
    assert_eq!(json["shared_id"], true, "{json}");
    assert_eq!(
        (json["versions"].clone(), json["latest"].as_i64()),
        (json!([1, 2]), Some(2)),
        "{json}"
    );
}

/// confluent-kafka's JSON Schema serializer and deserializer through the Kafka listener:
/// two schema versions (an optional property added to a closed object), every record read
/// back by the ID it carries, an incompatible evolution refused with 409, an invalid schema
/// with 42201, one ID for one schema under two subjects.
#[test]
fn confluent_kafkas_json_schema_serializers_round_trip_through_the_kafka_listener() {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("srjson");
    let json = client_run(
        "confluent-kafka's JSON Schema serializers",
        Duration::from_secs(90),
        |bootstrap, url| {
            kafka::python_script(&python, "schema_registry_json.py", &[bootstrap, url, &prefix])
        },
    );
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(100), Some(100)),
        "{json}"
    );
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(
        (json["incompatible"].as_i64(), json["invalid"].as_i64()),
        (Some(409), Some(42201)),
        "{json}"
    );
    assert_eq!(json["shared_id"], true, "{json}");
    assert_eq!(json["types"], json!(["AVRO", "PROTOBUF", "JSON"]), "{json}");
}

/// confluent-kafka's Protobuf serializer and deserializer through the Kafka listener: the
/// serializer registers base64 descriptors, the deserializer fetches writers' schemas
/// with `format=serialized`; two versions (a field added), every record read back, an
/// incompatible evolution refused with 409, an invalid .proto with 42201, one ID for one
/// schema under two subjects.
#[test]
fn confluent_kafkas_protobuf_serializers_round_trip_through_the_kafka_listener() {
    let Some(python) = kafka::python() else { return };
    let prefix = kafka::unique("srpb");
    let json = client_run(
        "confluent-kafka's Protobuf serializers",
        Duration::from_secs(90),
        |bootstrap, url| {
            kafka::python_script(&python, "schema_registry_protobuf.py", &[bootstrap, url, &prefix])
        },
    );
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(100), Some(100)),
        "{json}"
    );
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(json["serialized_fields"], json!(["id", "item"]), "{json}");
    assert_eq!(
        (json["incompatible"].as_i64(), json["invalid"].as_i64()),
        (Some(409), Some(42201)),
        "{json}"
    );
    assert_eq!(json["shared_id"], true, "{json}");
}

/// Confluent's Java Protobuf serializer (kafka-protobuf-serializer 7.0.16): the
/// KafkaProtobufSerializer registers the .proto text of DynamicMessages' descriptors and
/// produces two versions through the Kafka listener, KafkaProtobufDeserializer reads every
/// record back by the ID it carries, and an incompatible evolution is refused with 409.
#[test]
fn confluents_java_protobuf_serializers_round_trip_through_the_kafka_listener() {
    let Some(jars) = kafka::java_jars() else { return };
    let prefix = kafka::unique("srjp");
    let json = client_run(
        "Confluent's Java Protobuf serializer",
        Duration::from_secs(120),
        |bootstrap, url| {
            kafka::java_program(&jars, "SchemaRegistryProtobuf.java", &[bootstrap, url, &prefix])
        },
    );
    assert_eq!(
        (json["produced"].as_i64(), json["consumed"].as_i64()),
        (Some(100), Some(100)),
        "{json}"
    );
    assert_eq!(json["mismatched"], 0, "{json}");
    assert_eq!(
        (json["refused"].as_i64(), json["test_compatible"].as_bool()),
        (Some(409), Some(false)),
        "{json}"
    );
    assert_eq!(
        (json["versions"].clone(), json["latest"].as_i64()),
        (json!([1, 2]), Some(2)),
        "{json}"
    );
}

/// Registers `text` of `format` under `subject`: the status.
async fn register_as(a: &str, subject: &str, format: &str, text: &str) -> u16 {
    let body = json!({"schemaType": format, "schema": text});
    call(a, "POST", &format!("/subjects/{subject}/versions"), Some(body)).await.0
}

/// Every compatibility level for each format, over HTTP: at each of the seven levels a
/// change compatible both ways is accepted and one incompatible both ways is refused with
/// 409 (accepted at NONE), by registration and by the compatibility check; then the
/// levels that differ by direction and by transitivity, where a format has such changes:
/// Avro's field without a default (refused BACKWARD, accepted FORWARD, refused FULL) and
/// a default dropped two versions later (accepted BACKWARD, refused BACKWARD_TRANSITIVE);
/// JSON Schema's optional property added to a closed object (accepted BACKWARD, refused
/// FORWARD).
#[tokio::test]
async fn each_level_accepts_and_refuses_evolutions_for_each_format() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let addr = server.registry_addr().unwrap().to_string();
    let a = addr.as_str();
    let avro = |fields: &[(&str, &str, Option<Value>)]| {
        let fields: Vec<Value> = fields
            .iter()
            .map(|(n, t, d)| match d {
                Some(d) => json!({"name": n, "type": t, "default": d}),
                None => json!({"name": n, "type": t}),
            })
            .collect();
        json!({"type": "record", "name": "R", "fields": fields}).to_string()
    };
    let formats = [
        (
            "AVRO",
            avro(&[("a", "int", None)]),
            avro(&[("a", "int", None), ("b", "string", Some(json!("")))]),
            avro(&[("a", "string", None)]),
        ),
        (
            "JSON",
            json!({"type": "object", "properties": {"a": {"type": "string"}}}).to_string(),
            json!({"type": "object", "description": "R", "properties": {"a": {"type": "string"}}})
                .to_string(),
            json!({"type": "object", "properties": {"a": {"type": "integer"}}}).to_string(),
        ),
        (
            "PROTOBUF",
            "syntax = \"proto3\";\nmessage R {\n  string a = 1;\n}\n".to_string(),
            "syntax = \"proto3\";\nmessage R {\n  string a = 1;\n  int32 b = 2;\n}\n".to_string(),
            "syntax = \"proto3\";\nmessage R {\n  int64 a = 1;\n}\n".to_string(),
        ),
    ];
    let levels = [
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ];
    for (format, v1, compatible, incompatible) in &formats {
        for level in levels {
            let subject = format!("{format}-{level}").to_lowercase();
            let put = json!({"compatibility": level});
            assert_eq!(call(a, "PUT", &format!("/config/{subject}"), Some(put)).await.0, 200);
            assert_eq!(register_as(a, &subject, format, v1).await, 200, "{subject}: v1");
            assert_eq!(
                register_as(a, &subject, format, compatible).await,
                200,
                "{subject}: compatible"
            );
            let path = format!("/compatibility/subjects/{subject}/versions/latest");
            let body = json!({"schemaType": format, "schema": incompatible});
            let (_, check) = call(a, "POST", &path, Some(body)).await;
            assert_eq!(check["is_compatible"], json!(level == "NONE"), "{subject}: {check}");
            let want = if level == "NONE" { 200 } else { 409 };
            assert_eq!(
                register_as(a, &subject, format, incompatible).await,
                want,
                "{subject}: incompatible"
            );
        }
    }
    // By direction and transitivity.
    let no_default = avro(&[("a", "int", None), ("c", "int", None)]);
    let closed = |extra: Value| {
        let mut properties = json!({"a": {"type": "string"}});
        if let Value::Object(m) = extra {
            properties.as_object_mut().unwrap().extend(m);
        }
        json!({"type": "object", "properties": properties, "additionalProperties": false})
            .to_string()
    };
    let directional = [
        (
            "AVRO",
            avro(&[("a", "int", None)]),
            no_default,
            [("BACKWARD", 409), ("FORWARD", 200), ("FULL", 409)],
        ),
        (
            "JSON",
            closed(json!({})),
            closed(json!({"b": {"type": "string"}})),
            [("BACKWARD", 200), ("FORWARD", 409), ("FULL", 409)],
        ),
    ];
    for (format, v1, v2, verdicts) in &directional {
        for (level, want) in verdicts {
            let subject = format!("dir-{format}-{level}").to_lowercase();
            let put = json!({"compatibility": level});
            assert_eq!(call(a, "PUT", &format!("/config/{subject}"), Some(put)).await.0, 200);
            assert_eq!(register_as(a, &subject, format, v1).await, 200);
            assert_eq!(register_as(a, &subject, format, v2).await, *want, "{subject}");
        }
    }
    let with_default = avro(&[("a", "int", None), ("b", "string", Some(json!("")))]);
    let dropped = avro(&[("a", "int", None), ("b", "string", None)]);
    for (level, want) in [("BACKWARD", 200), ("BACKWARD_TRANSITIVE", 409)] {
        let subject = format!("transitive-{level}").to_lowercase();
        let put = json!({"compatibility": level});
        assert_eq!(call(a, "PUT", &format!("/config/{subject}"), Some(put)).await.0, 200);
        assert_eq!(register_as(a, &subject, "AVRO", &avro(&[("a", "int", None)])).await, 200);
        assert_eq!(register_as(a, &subject, "AVRO", &with_default).await, 200);
        assert_eq!(register_as(a, &subject, "AVRO", &dropped).await, want, "{subject}");
    }
    server.close().await.unwrap();
}

/// `normalize=true` on registration, lookup and the compatibility check: two JSON schemas
/// that differ only in key order are one schema (one ID, one version) and are stored
/// with sorted keys; without it they are two; Avro's normalized text is its canonical
/// text (Confluent 7.x); two Protobuf schemas that differ in field order and in how
/// they name a type are one, stored as Confluent's normalized text. The `normalize`
/// setting of a subject (or the global one) does what the parameter does.
#[tokio::test]
async fn normalize_makes_equivalent_schemas_one_by_parameter_or_setting() {
    let dir = tempfile::tempdir().unwrap();
    let server = broker(dir.path()).await;
    let addr = server.registry_addr().unwrap().to_string();
    let a = addr.as_str();
    let one = r#"{"type":"object","properties":{"b":{"type":"number","maximum":1.50},"a":{"type":"string"}}}"#;
    let two = r#"{"properties":{"a":{"type":"string"},"b":{"maximum":1.50,"type":"number"}},"type":"object"}"#;
    let body = |text: &str| json!({"schemaType": "JSON", "schema": text});
    let post = |path: &'static str, text: &'static str| async move {
        call(a, "POST", path, Some(json!({"schemaType": "JSON", "schema": text}))).await
    };
    assert_eq!(
        post("/subjects/n-value/versions?normalize=true", one).await,
        (200, json!({"id": 1}))
    );
    assert_eq!(
        post("/subjects/n-value/versions?normalize=true", two).await,
        (200, json!({"id": 1}))
    );
    let (_, stored) = call(a, "GET", "/subjects/n-value/versions/latest", None).await;
    assert_eq!(
        (stored["version"].clone(), stored["schema"].clone()),
        (
            json!(1),
            json!(
                r#"{"properties":{"a":{"type":"string"},"b":{"maximum":1.50,"type":"number"}},"type":"object"}"#
            )
        ),
        "{stored}"
    );
    let (status, found) =
        call(a, "POST", "/subjects/n-value?normalize=true", Some(body(one))).await;
    assert_eq!((status, found["id"].clone()), (200, json!(1)), "{found}");
    let (status, _) = call(a, "POST", "/subjects/n-value", Some(body(one))).await;
    assert_eq!(status, 404, "without normalize, the original key order is another schema");
    let (_, check) = call(
        a,
        "POST",
        "/compatibility/subjects/n-value/versions/latest?normalize=true",
        Some(body(two)),
    )
    .await;
    assert_eq!(check, json!({"is_compatible": true}));
    assert_eq!(post("/subjects/m-value/versions", one).await, (200, json!({"id": 2})));
    assert_eq!(
        post("/subjects/m-value/versions", two).await,
        (200, json!({"id": 1})),
        "the sorted text is schema 1's"
    );

    let avro = json!({"schema": json!({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}).to_string()});
    let (status, reply) =
        call(a, "POST", "/subjects/r-value/versions?normalize=true", Some(avro)).await;
    assert_eq!((status, reply), (200, json!({"id": 3})));
    let proto = |text: &str| json!({"schemaType": "PROTOBUF", "schema": text});
    let p1 = "syntax = \"proto3\";\npackage p;\nmessage M {\n  string b = 2;\n  string a = 1;\n  N n = 3;\n  message N {}\n}\n";
    let p2 = "syntax = \"proto3\";\npackage p;\nmessage M {\n  string a = 1;\n  string b = 2;\n  .p.M.N n = 3;\n  message N {}\n}\n";
    let normalized = "syntax = \"proto3\";\npackage p;\n\nmessage M {\n  string a = 1;\n  string b = 2;\n  .p.M.N n = 3;\n\n  message N {}\n}\n";
    let (status, reply) =
        call(a, "POST", "/subjects/p-value/versions?normalize=true", Some(proto(p1))).await;
    assert_eq!((status, reply), (200, json!({"id": 4})));
    let (status, reply) =
        call(a, "POST", "/subjects/p-value/versions?normalize=true", Some(proto(p2))).await;
    assert_eq!((status, reply), (200, json!({"id": 4})));
    let (_, stored) = call(a, "GET", "/schemas/ids/4", None).await;
    assert_eq!(stored["schema"], json!(normalized), "{stored}");
    let (status, _) = call(a, "POST", "/subjects/p-value", Some(proto(p1))).await;
    assert_eq!(status, 404, "without normalize, the field order is another schema");

    // The setting: on for one subject, its registrations and lookups normalize.
    let (status, reply) = call(a, "PUT", "/config/q-value", Some(json!({"normalize": true}))).await;
    assert_eq!((status, reply), (200, json!({"normalize": true})));
    assert_eq!(call(a, "GET", "/config/q-value", None).await, (200, json!({"normalize": true})));
    assert_eq!(
        call(a, "GET", "/config/q-value?defaultToGlobal=true", None).await,
        (200, json!({"compatibilityLevel": "BACKWARD", "normalize": true}))
    );
    for text in [p1, p2] {
        let (status, reply) =
            call(a, "POST", "/subjects/q-value/versions", Some(proto(text))).await;
        assert_eq!((status, reply), (200, json!({"id": 4})), "{text}");
    }
    let (status, found) = call(a, "POST", "/subjects/q-value", Some(proto(p1))).await;
    assert_eq!((status, found["version"].clone()), (200, json!(1)), "{found}");
    let (status, reply) =
        call(a, "PUT", "/config/q-value", Some(json!({"compatibility": "FULL"}))).await;
    assert_eq!(
        (status, reply),
        (200, json!({"compatibility": "FULL", "normalize": true})),
        "the level changes, normalize stays"
    );
    let (status, reply) =
        call(a, "PUT", "/config/q-value", Some(json!({"normalize": "yes"}))).await;
    assert_eq!((status, reply["error_code"].clone()), (422, json!(42201)), "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("normalize"), "{reply}");
    // Without the setting, the other order is a new version.
    let (status, _) = call(a, "POST", "/subjects/r2-value/versions", Some(proto(p1))).await;
    assert_eq!(status, 200);
    let (status, _) = call(a, "POST", "/subjects/r2-value", Some(proto(p2))).await;
    assert_eq!(status, 404, "r2-value does not normalize");
    server.close().await.unwrap();
}

/// npm's `@kafkajs/confluent-schema-registry`, a second client implementation: registers,
/// encodes and decodes with its own Avro, JSON Schema (ajv) and Protobuf (protobufjs)
/// libraries, evolves, and is refused an incompatible evolution in each format.
#[test]
fn kafkajs_registry_client_registers_encodes_and_decodes() {
    let Some(dir) = kafka::node_dir() else { return };
    let prefix = kafka::unique("srjs");
    let what = "@kafkajs/confluent-schema-registry";
    let json = client_run(what, Duration::from_secs(90), |_, url| {
        kafka::node_script(&dir, "schema_registry_kafkajs.js", &[url, &prefix])
    });
    assert_eq!(
        (json["decoded"].as_i64(), json["refused"].as_i64()),
        (Some(51), Some(409)),
        "{json}"
    );
    for format in ["json", "protobuf"] {
        let schemas = &json[format];
        let seen = (schemas["decoded"].as_i64(), schemas["refused"].as_i64());
        assert_eq!(seen, (Some(20), Some(409)), "{format}: {json}");
    }
}

#[tokio::test]
async fn a_killed_standalone_broker_comes_back_with_every_schema() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--schema-registry-listen", "127.0.0.1:0"];
    let mut broker = common::BrokerProcess::start_with(dir.path(), &extra);
    let addr = broker.registry_addr().expect("the startup line names the registry");
    let mut ids = Vec::new();
    // Each with a default: every evolution is BACKWARD compatible.
    let with_default = |i: usize| json!({"type": "record", "name": "R", "fields": [{"name": format!("f{i}"), "type": "int", "default": 0}]});
    for i in 0..20 {
        let body = json!({"schema": with_default(i).to_string()});
        let (status, reply) =
            call(&addr, "POST", &format!("/subjects/k{}-value/versions", i % 4), Some(body)).await;
        assert_eq!(status, 200, "{reply}");
        ids.push(reply["id"].as_i64().unwrap());
    }
    // Permanently delete the newest: its ID must not come back after the restart.
    call(&addr, "PUT", "/config/k0-value", Some(json!({"compatibility": "FULL"}))).await;
    call(&addr, "PUT", "/mode/k1-value", Some(json!({"mode": "READONLY"}))).await;
    call(&addr, "DELETE", "/subjects/k3-value", None).await;
    call(&addr, "DELETE", "/subjects/k3-value?permanent=true", None).await;
    broker.kill();
    let broker = common::BrokerProcess::start_with(dir.path(), &extra);
    let addr = broker.registry_addr().unwrap();
    common::wait_until(
        Duration::from_secs(30),
        "the registry's state rebuilt from its log",
        || {
            let addr = addr.clone();
            async move {
                call(&addr, "GET", "/subjects", None).await.1
                    == json!(["k0-value", "k1-value", "k2-value"])
            }
        },
    )
    .await;
    for (i, id) in ids.iter().enumerate() {
        if i % 4 == 3 {
            continue;
        }
        let (status, body) = call(&addr, "GET", &format!("/schemas/ids/{id}"), None).await;
        assert_eq!(status, 200, "schema {id}: {body}");
        let text: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
        assert_eq!(text, with_default(i), "schema {id}");
    }
    assert_eq!(
        call(&addr, "GET", "/config/k0-value", None).await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(call(&addr, "GET", "/mode/k1-value", None).await.1, json!({"mode": "READONLY"}));
    let (_, body) =
        call(&addr, "POST", "/subjects/new-value/versions", Some(json!({"schema": "\"string\""})))
            .await;
    let next = body["id"].as_i64().unwrap();
    assert!(
        next > *ids.iter().max().unwrap(),
        "the next ID {next} is above every ID handed out before: {ids:?}"
    );
}

/// Subject ACLs decide who reads, registers and deletes; callers authenticate with a
/// bearer token or HTTP basic (a wrong credential: 401), and an anonymous caller gets what
/// the ACLs give `User:ANONYMOUS` (here nothing). (`auth.require` needs TLS, which the
/// registry listener does not serve yet.)
#[tokio::test]
async fn subject_acls_decide_who_reads_registers_and_deletes() {
    use shale::api::{AclBinding, Operation, PatternType, Permission, ResourceType};
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "User:alice alice-token-0123456789\nUser:bob bob-token-0123456789\nUser:admin admin-token-0123456789\n").unwrap();
    let mut settings = common::settings(dir.path());
    settings.schema_registry.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.auth.token_file = Some(tokens);
    settings.acl.enabled = Some(true);
    settings.acl.super_users = vec!["User:admin".into()];
    let server = common::start(settings).await;
    let addr = server.registry_addr().unwrap().to_string();
    let a = addr.as_str();
    let as_user = |token: &'static str| {
        async move |method: &'static str, path: String, body: Option<Value>| {
            let auth = format!("Bearer {token}");
            let text = body.map(|b| b.to_string());
            let (status, body) =
                http_request_with(a, method, &path, text.as_deref(), &[("Authorization", &auth)])
                    .await;
            (status, serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body)))
        }
    };
    let alice = as_user("alice-token-0123456789");
    let bob = as_user("bob-token-0123456789");
    let admin = as_user("admin-token-0123456789");
    let v1 = json!({"schema": schema(&[("a", "int")])});

    // Anonymous: granted nothing. A wrong token: 401.
    assert_eq!(
        call(a, "GET", "/subjects/a-value/versions", None).await.1["error_code"],
        json!(40301)
    );
    let (status, _) = http_request_with(
        a,
        "GET",
        "/subjects",
        None,
        &[("Authorization", "Bearer wrong-token-000000")],
    )
    .await;
    assert_eq!(status, 401);
    // Nothing granted yet: refused and audited, 403.
    let (status, body) = alice("POST", "/subjects/a-value/versions".into(), Some(v1.clone())).await;
    assert_eq!((status, body["error_code"].clone()), (403, json!(40301)), "{body}");

    let grant = |op| AclBinding {
        principal: "User:alice".into(),
        resource_type: ResourceType::Subject,
        pattern_type: PatternType::Prefixed,
        resource_name: "a-".into(),
        operation: op,
        permission: Permission::Allow,
    };
    server.broker().acl().create(&[grant(Operation::Write), grant(Operation::Read)]).await.unwrap();
    common::wait_until(Duration::from_secs(10), "alice's subject ACLs in force", || async {
        alice("POST", "/subjects/a-value/versions".into(), Some(v1.clone())).await
            == (200, json!({"id": 1}))
    })
    .await;
    assert_eq!(
        alice("POST", "/subjects/b-value/versions".into(), Some(v1.clone())).await.1["error_code"],
        json!(40301)
    );
    assert_eq!(alice("GET", "/subjects/a-value/versions".into(), None).await, (200, json!([1])));
    assert_eq!(alice("GET", "/schemas/ids/1".into(), None).await.0, 200);
    assert_eq!(
        alice("DELETE", "/subjects/a-value".into(), None).await.1["error_code"],
        json!(40301),
        "no delete granted"
    );
    assert_eq!(
        alice("PUT", "/config".into(), Some(json!({"compatibility": "NONE"}))).await.1["error_code"],
        json!(40301)
    );
    // Bob sees nothing of it.
    assert_eq!(
        bob("GET", "/subjects/a-value/versions".into(), None).await.1["error_code"],
        json!(40301)
    );
    assert_eq!(bob("GET", "/schemas/ids/1".into(), None).await.1["error_code"], json!(40301));
    assert_eq!(bob("GET", "/subjects".into(), None).await, (200, json!([])));
    assert_eq!(admin("GET", "/subjects".into(), None).await, (200, json!(["a-value"])));
    assert_eq!(admin("DELETE", "/subjects/a-value".into(), None).await, (200, json!([1])));
    // HTTP basic takes a user's password; this one has none.
    let basic = "Basic YWxpY2U6bm90LWEtcGFzc3dvcmQ="; // alice:not-a-password
    let (status, _) =
        http_request_with(a, "GET", "/subjects", None, &[("Authorization", basic)]).await;
    assert_eq!(status, 401);
    server.close().await.unwrap();
}
