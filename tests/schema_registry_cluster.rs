//! The schema registry on a 3-broker cluster on etcd: any broker takes registrations
//! (forwarding them to the writer, the leader of `_schemas`/0) and answers reads from its
//! own copy; and Confluent's failover test as a checker — registrations from several
//! clients while the writer's broker is SIGKILLed and SIGSTOPped again and again: every
//! acknowledged registration is fetchable by its ID from every broker afterwards, no ID
//! names two schemas, each subject's versions are contiguous, and a schema registered
//! twice (a client's retry of a registration whose answer it lost) is one version.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A request to a broker's registry; a broker that is down answers status 0.
async fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let text = body.map(|b| b.to_string());
    match common::try_http_request(addr, method, path, text.as_deref(), &[]).await {
        Ok((status, body)) => (status, serde_json::from_str(&body).unwrap_or(Value::String(body))),
        Err(e) => (0, Value::String(e)),
    }
}

/// Schema `n`: one field of its own, with a default, so every evolution of a subject is
/// compatible at the default level.
fn schema(n: usize) -> Value {
    json!({"type": "record", "name": "R", "fields": [{"name": format!("f{n}"), "type": "long", "default": 0}]})
}

async fn fetched(url: &str, path: &str) -> Value {
    common::wait_for(
        Duration::from_secs(30),
        "an answer from the broker's own copy",
        || async move {
            let (status, body) = call(url, "GET", path, None).await;
            if status == 200 { Ok(body) } else { Err(format!("{status} {body}")) }
        },
    )
    .await
}

/// Three brokers on etcd: registrations sent to each in turn all succeed (two of the three
/// forward them to the writer), IDs are unique and contiguous, and every broker then
/// answers every ID from its own copy.
#[tokio::test]
async fn any_broker_of_a_cluster_takes_registrations_and_answers_reads() {
    let c = cluster::Cluster::start(3, "sr", &[]);
    let urls: Vec<String> = (0..3).map(|i| c.registry(i)).collect();
    let mut ids = Vec::new();
    for i in 0..30 {
        let url = &urls[i % 3];
        let body = json!({"schema": schema(i).to_string()});
        let path = format!("/subjects/c{}-value/versions", i % 5);
        // The first write creates the log; until its partition has a leader everywhere a
        // write may be refused as retriable.
        let reply = common::wait_for(Duration::from_secs(30), "a registration accepted", || {
            let (body, path) = (body.clone(), path.clone());
            async move {
                let (status, reply) = call(url, "POST", &path, Some(body)).await;
                if status == 200 { Ok(reply) } else { Err(format!("{status} {reply}")) }
            }
        })
        .await;
        ids.push(reply["id"].as_i64().unwrap());
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=30).collect::<Vec<i64>>(), "IDs unique and contiguous: {ids:?}");
    for url in &urls {
        for (i, id) in ids.iter().enumerate() {
            let body = fetched(url, &format!("/schemas/ids/{id}")).await;
            let text: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
            assert_eq!(text, schema(i), "schema {id} on {url}");
        }
        let versions = fetched(url, "/subjects/c0-value/versions").await;
        assert_eq!(versions, json!([1, 2, 3, 4, 5, 6]), "on {url}");
    }
}

/// The broker (index) leading `_schemas`/0, as the brokers' metadata says.
async fn writer(c: &cluster::Cluster) -> Option<usize> {
    let md = c.client().admin().metadata(&["_schemas".to_string()]).await.ok()?;
    let leader = md.topics.first()?.partitions.first()?.leader_id;
    (leader > 0).then(|| leader as usize - 1)
}

const SCHEMAS: usize = 1000;
const CLIENTS: usize = 4;
const SUBJECTS: usize = 10;

#[tokio::test]
async fn registrations_through_writer_kills_and_pauses_lose_nothing_and_never_share_an_id() {
    let mut c = cluster::Cluster::start(3, "srfail", &[]);
    let urls: Arc<Vec<String>> = Arc::new((0..3).map(|i| c.registry(i)).collect());
    // Acknowledged registrations: schema number -> ID; and every attempt, answered or not.
    let acked: Arc<Mutex<BTreeMap<usize, i64>>> = Arc::default();
    let started = Instant::now();
    let mut clients = Vec::new();
    for k in 0..CLIENTS {
        let (urls, acked) = (urls.clone(), acked.clone());
        clients.push(tokio::spawn(async move {
            let mut retries = 0u64;
            for n in (k..SCHEMAS).step_by(CLIENTS) {
                let body = json!({"schema": schema(n).to_string()});
                let path = format!("/subjects/s{}-value/versions", n % SUBJECTS);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut attempt = n;
                loop {
                    // Any broker: a client with a list of URLs tries the next on failure.
                    let url = &urls[attempt % urls.len()];
                    let answer = tokio::time::timeout(
                        Duration::from_secs(5),
                        call(url, "POST", &path, Some(body.clone())),
                    )
                    .await;
                    if let Ok((200, reply)) = answer {
                        acked.lock().unwrap().insert(n, reply["id"].as_i64().unwrap());
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "schema {n} not registered in 60 s: {answer:?}"
                    );
                    retries += 1;
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            retries
        }));
    }
    // Faults: the writer's broker killed, or frozen past its heartbeat timeout, in turn,
    // while the clients register.
    let mut faults = Vec::new();
    for round in 0..6 {
        let progress = acked.lock().unwrap().len();
        common::wait_until(
            Duration::from_secs(60),
            "registrations going on between faults",
            || {
                let acked = acked.clone();
                async move {
                    acked.lock().unwrap().len() >= progress + 60
                        || acked.lock().unwrap().len() == SCHEMAS
                }
            },
        )
        .await;
        if acked.lock().unwrap().len() == SCHEMAS {
            break;
        }
        let Some(w) = writer(&c).await else { continue };
        if round % 2 == 0 {
            c.kill(w);
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.restart(w);
            faults.push(format!("SIGKILL broker {}", w + 1));
        } else {
            let b = c.brokers[w].as_ref().unwrap();
            b.signal("STOP");
            tokio::time::sleep(Duration::from_millis(1500)).await;
            b.signal("CONT");
            faults.push(format!("SIGSTOP broker {} for 1.5 s", w + 1));
        }
    }
    let mut retries = 0;
    for client in clients {
        retries += client.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), SCHEMAS);
    println!(
        "{SCHEMAS} registrations from {CLIENTS} clients in {:.1} s, {retries} retried, through: {}",
        started.elapsed().as_secs_f64(),
        faults.join(", ")
    );
    // No ID names two schemas.
    let mut by_id: HashMap<i64, usize> = HashMap::new();
    for (n, id) in &acked {
        if let Some(other) = by_id.insert(*id, *n) {
            panic!("ID {id} was acknowledged for schemas {other} and {n}");
        }
    }
    // Every broker answers every acknowledged ID with its schema, and each subject's
    // versions are 1..=k with one version per schema.
    for url in urls.iter() {
        for (n, id) in &acked {
            let body = fetched(url, &format!("/schemas/ids/{id}")).await;
            let text: Value = serde_json::from_str(body["schema"].as_str().unwrap()).unwrap();
            assert_eq!(text, schema(*n), "ID {id} on {url}");
        }
        for s in 0..SUBJECTS {
            let versions = fetched(url, &format!("/subjects/s{s}-value/versions")).await;
            let want: Vec<i64> = (1..=(SCHEMAS / SUBJECTS) as i64).collect();
            assert_eq!(
                versions,
                json!(want),
                "subject s{s}-value on {url}: one version per schema, contiguous"
            );
        }
    }
}

/// A value in Confluent's wire format: magic byte 0, the schema ID, then the data.
fn wire(id: i64, data: &[u8]) -> bytes::Bytes {
    let mut v = vec![0];
    v.extend_from_slice(&(id as i32).to_be_bytes());
    v.extend_from_slice(data);
    v.into()
}

async fn produce(
    log: &mut shale::proto::pb::log_client::LogClient<shale::client::Transport>,
    (topic, partition): (&str, u32),
    value: bytes::Bytes,
) -> Result<i64, tonic::Status> {
    use shale::proto::pb;
    let record =
        pb::Record { key: Some(b"k".to_vec().into()), value: Some(value), ..Default::default() };
    let records = pb::Records { records: vec![record], ..Default::default() };
    let request = pb::ProduceRequest {
        topic: topic.to_string(),
        partition,
        acks: pb::Acks::All as i32,
        payload: Some(pb::produce_request::Payload::Records(records)),
        ..Default::default()
    };
    log.produce(request).await.map(|r| r.into_inner().base_offset)
}

/// A broker that holds no replica of `_schemas` (the log was made while it was away)
/// follows the log from its leader: it validates the schema IDs of records produced to
/// the partitions it leads against that copy — one registered on the other broker a
/// moment before included — and answers reads from it.
#[tokio::test]
async fn a_broker_without_a_replica_of_the_log_follows_it_and_validates_against_it() {
    let mut c = cluster::Cluster::prepare(2, "srv", &[]);
    c.restart(0);
    let (first, second) = (c.registry(0), c.registry(1));
    let register = |url: String, n: usize| async move {
        let body = json!({"schema": schema(n).to_string()});
        let reply = common::wait_for(Duration::from_secs(30), "a registration accepted", || {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let (status, reply) =
                    call(&url, "POST", "/subjects/typed-value/versions", Some(body)).await;
                if status == 200 { Ok(reply) } else { Err(format!("{status} {reply}")) }
            }
        })
        .await;
        reply["id"].as_i64().unwrap()
    };
    let id = register(first.clone(), 1).await;
    c.restart(1);
    let client = c.client();
    cluster::wait_for_brokers(&client, &[1, 2]).await;
    let md = client.admin().metadata(&["_schemas".to_string()]).await.unwrap();
    assert_eq!(md.topics[0].partitions[0].replicas, [1], "the log was made on broker 1 alone");

    let on = [("confluent.value.schema.validation".to_string(), "true".to_string())];
    client.admin().create_topic("typed", 4, 1, on.into()).await.unwrap();
    let mut led = None;
    for p in 0..4 {
        if cluster::leader_of(&client, "typed", p).await == 2 {
            led = Some(p);
        }
    }
    let partition = led.expect("broker 2 leads a partition of typed");
    let mut log = client.log_rpc(&c.addr(1)).unwrap();
    // Broker 2 reads the log from broker 1 once it starts: until then, retriable refusals.
    let at = ("typed", partition);
    common::wait_for(Duration::from_secs(30), "a valid record accepted by broker 2", || {
        let mut log = log.clone();
        async move { produce(&mut log, at, wire(id, b"a")).await.map_err(|s| format!("{s:?}")) }
    })
    .await;
    let s = produce(&mut log, at, bytes::Bytes::from_static(b"plain")).await.unwrap_err();
    assert!(s.message().contains("value: first byte 0x70"), "{s:?}");
    // Registered on broker 1 just now; broker 2's copy catches up before it decides.
    let newer = register(first, 2).await;
    assert!(newer > id);
    produce(&mut log, at, wire(newer, b"b")).await.unwrap();
    let (status, body) = call(&second, "GET", &format!("/schemas/ids/{newer}"), None).await;
    assert_eq!(status, 200, "{body}");
}
