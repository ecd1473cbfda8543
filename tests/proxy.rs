//! The fault-injection proxy (`common/proxy.rs`): modes and counters against a local echo
//! server, then real gRPC round trips to a `shale` broker through it, and the checker
//! (`common/checker.rs`) on a produce history with injected resets.

// Tests and tools observe the system from outside: they read real time (bounded waits,
// latencies) and randomness directly, not through the injected clock.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/checker.rs"]
mod checker;
mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use checker::ProduceLog;
use common::{BrokerProcess, produce_req, wait_until};
use proxy::{Mode, Proxy};
use shale::client::{Client, Producer, ProducerConfig, ProducerRecord};
use shale::error::{Error, ErrorKind};
use shale::proto::pb;
use shale::proto::status::from_status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on any single wait for something that should happen promptly.
const PROMPT: Duration = Duration::from_secs(5);

/// An echo server in this test's runtime; each connection echoes until EOF, then closes.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `msg` and reads as many bytes back, within `PROMPT`.
async fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut back = vec![0; msg.len()];
    tokio::time::timeout(PROMPT, s.read_exact(&mut back)).await.expect("echo within 5 s")?;
    Ok(back)
}

/// Asserts the connection was reset: a read fails with `ECONNRESET` within `PROMPT`.
async fn assert_reset(s: &mut TcpStream) {
    let mut buf = [0; 16];
    let read = tokio::time::timeout(PROMPT, s.read(&mut buf)).await.expect("reset within 5 s");
    let kind = read.as_ref().map_err(std::io::Error::kind);
    assert_eq!(kind.err(), Some(IoKind::ConnectionReset), "expected a reset, read {read:?}");
}

/// Asserts a new connection is reset right away: the kernel completes the handshake before
/// the proxy accepts, so the reset shows either in `connect` (when it lands first) or on the
/// first read.
async fn assert_new_connection_reset(proxy: &Proxy) {
    match TcpStream::connect(proxy.addr()).await {
        Ok(mut s) => assert_reset(&mut s).await,
        Err(e) => assert_eq!(e.kind(), IoKind::ConnectionReset, "{e}"),
    }
}

async fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(proxy.addr()).await.expect("connect to the proxy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_forwards_both_ways_and_half_closes() {
    let proxy = Proxy::start(echo_server().await);
    let mut s = connect(&proxy).await;
    assert_eq!(round_trip(&mut s, b"hello").await.unwrap(), b"hello");
    // A FIN travels through: the echo server sees EOF, closes, and that EOF comes back.
    s.shutdown().await.unwrap();
    let mut rest = vec![];
    tokio::time::timeout(PROMPT, s.read_to_end(&mut rest)).await.unwrap().unwrap();
    assert!(rest.is_empty());
    wait_until(PROMPT, "the connection to close", || async { proxy.stats().active == 0 }).await;
    let stats = proxy.stats();
    assert_eq!((stats.accepted, stats.bytes_up, stats.bytes_down, stats.resets), (1, 5, 5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_adds_latency_and_keeps_order() {
    let proxy = Proxy::start(echo_server().await);
    let mut s = connect(&proxy).await;
    round_trip(&mut s, b"warm").await.unwrap();
    proxy.set(Mode::Delay { min: Duration::from_millis(30), max: Duration::from_millis(60) });

    // Delayed once each way.
    let started = Instant::now();
    round_trip(&mut s, b"ping").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(60), "took {:?}", started.elapsed());

    // Many small chunks with random delays arrive in the order sent.
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        let mut sent = vec![];
        for i in 0..100u32 {
            let msg = i.to_be_bytes();
            w.write_all(&msg).await.unwrap();
            sent.extend_from_slice(&msg);
            // Gaps make separate chunks, each with its own delay (not synchronisation).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    });
    let mut got = vec![0; 400];
    tokio::time::timeout(PROMPT, r.read_exact(&mut got)).await.unwrap().unwrap();
    assert_eq!(got, writer.await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_holds_bytes_until_pass() {
    let proxy = Proxy::start(echo_server().await);
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"before").await.unwrap();
    proxy.set(Mode::Blackhole);

    open.write_all(b"held").await.unwrap();
    // New connections are accepted but held too.
    let mut new = connect(&proxy).await;
    new.write_all(b"also held").await.unwrap();
    let mut buf = [0; 16];
    let silent = tokio::time::timeout(Duration::from_millis(300), open.read(&mut buf)).await;
    assert!(silent.is_err(), "blackholed connection answered: {silent:?}");
    wait_until(PROMPT, "the new connection to be accepted", || async {
        proxy.stats().accepted == 2
    })
    .await;
    assert_eq!(proxy.stats().bytes_up, 6, "nothing forwarded while blackholed");

    // Held bytes are delivered, not dropped.
    proxy.set(Mode::Pass);
    let mut back = [0; 4];
    tokio::time::timeout(PROMPT, open.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"held");
    let mut back = [0; 9];
    tokio::time::timeout(PROMPT, new.read_exact(&mut back)).await.unwrap().unwrap();
    assert_eq!(&back, b"also held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mode_resets_open_and_new_connections_until_pass() {
    let proxy = Proxy::start(echo_server().await);
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"x").await.unwrap();

    proxy.set(Mode::Reset);
    assert_reset(&mut open).await;
    assert_new_connection_reset(&proxy).await;
    assert_eq!(proxy.stats().resets, 2);

    proxy.set(Mode::Pass);
    let mut again = connect(&proxy).await;
    assert_eq!(round_trip(&mut again, b"back").await.unwrap(), b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_connections_resets_open_ones_once() {
    let proxy = Proxy::start(echo_server().await);
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"x").await.unwrap();
    proxy.reset_connections();
    assert_reset(&mut open).await;
    assert_eq!(proxy.mode(), Mode::Pass);
    let mut new = connect(&proxy).await;
    assert_eq!(round_trip(&mut new, b"fine").await.unwrap(), b"fine");
    assert_eq!(proxy.stats().resets, 1);
}

/// For 32 sequential one-chunk connections: whether each was reset.
async fn reset_pattern(proxy: &Proxy) -> Vec<bool> {
    let mut pattern = vec![];
    for _ in 0..32 {
        let mut s = connect(proxy).await;
        pattern.push(round_trip(&mut s, b"12345678").await.is_err());
    }
    pattern
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_probability_is_random_but_replayable_from_the_seed() {
    let echo = echo_server().await;
    let (a, b) = (Proxy::start_with_seed(echo, 42), Proxy::start_with_seed(echo, 42));
    a.set_reset_probability(0.5);
    b.set_reset_probability(0.5);
    let pattern = reset_pattern(&a).await;
    assert!(pattern.contains(&true) && pattern.contains(&false), "{pattern:?}");
    // Each message and each echo is one chunk, so the same seed makes the same choices.
    assert_eq!(reset_pattern(&b).await, pattern);
    let resets = pattern.iter().filter(|r| **r).count() as u64;
    assert_eq!(a.stats().resets, resets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upstream_resets_the_client_until_set_upstream() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let proxy = Proxy::start(closed);
    assert_new_connection_reset(&proxy).await;
    proxy.set_upstream(echo_server().await);
    let mut s = connect(&proxy).await;
    assert_eq!(round_trip(&mut s, b"found").await.unwrap(), b"found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_closes_the_listener_and_every_connection() {
    let proxy = Proxy::start(echo_server().await);
    let addr = proxy.addr();
    let mut open = connect(&proxy).await;
    round_trip(&mut open, b"x").await.unwrap();
    drop(proxy);
    let mut buf = [0; 1];
    let read = tokio::time::timeout(PROMPT, open.read(&mut buf)).await.expect("closed within 5 s");
    assert!(matches!(read, Ok(0) | Err(_)), "connection still open: {read:?}");
    let refused = TcpStream::connect(addr).await;
    assert_eq!(refused.map_err(|e| e.kind()).err(), Some(IoKind::ConnectionRefused));
}

// ---- gRPC through the proxy ----

/// A broker, and a proxy in front of it with a client that dials the proxy.
struct Proxied {
    proxy: Proxy,
    client: Client,
    broker: BrokerProcess,
    _dir: tempfile::TempDir,
}

impl Proxied {
    fn start() -> Proxied {
        let dir = tempfile::tempdir().unwrap();
        let broker = BrokerProcess::start(dir.path());
        let proxy = Proxy::start(broker.addr.parse().unwrap());
        let client = Client::new(&proxy.addr().to_string()).unwrap();
        Proxied { proxy, client, broker, _dir: dir }
    }

    /// A metadata round trip through the proxy; `DEADLINE_EXCEEDED` after `timeout`.
    async fn metadata_raw(&self, timeout: Duration) -> Result<(), tonic::Status> {
        let mut admin = self.client.admin_rpc().unwrap();
        let call = admin.get_metadata(pb::GetMetadataRequest { topics: vec![] });
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => {
                Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}")))
            }
        }
    }

    /// The same, as the client's public error.
    async fn metadata(&self, timeout: Duration) -> Result<(), Error> {
        self.metadata_raw(timeout).await.map_err(|s| from_status(&s))
    }

    /// A one-record produce through the proxy (not routed by metadata), within 2 s.
    async fn produce(
        &self,
        topic: &str,
        p: u32,
        value: &str,
    ) -> Result<pb::ProduceResponse, Error> {
        let mut log = self.client.log_rpc(&self.proxy.addr().to_string())?;
        let call = log.produce(produce_req(topic, p, value));
        match tokio::time::timeout(Duration::from_secs(2), call).await {
            Ok(r) => r.map(|r| r.into_inner()).map_err(|s| from_status(&s)),
            Err(_) => Err(Error::unavailable("no produce answer within 2 s")),
        }
    }

    async fn wait_until_served(&self, what: &str) {
        wait_until(Duration::from_secs(10), what, || async {
            self.metadata(Duration::from_secs(1)).await.is_ok()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_produce_and_consume_through_an_advertised_proxy() {
    // The broker advertises the proxy, so metadata-routed calls (the consumer's fetches)
    // go through it too. The proxy starts first to know its address; its upstream is set
    // once the broker's port is known.
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start("127.0.0.1:1".parse().unwrap());
    let advertised = proxy.addr().to_string();
    let broker = BrokerProcess::serve(dir.path(), &["--id", "1", "--advertise", &advertised]);
    proxy.set_upstream(broker.addr.parse().unwrap());
    let client = Client::new(&advertised).unwrap();
    client.admin().create_topic("t", 2, 0, BTreeMap::new()).await.unwrap();
    for i in 0..10u32 {
        let (p, v) = (i % 2, format!("v{i}"));
        client
            .on_leader("t", p, |mut log| {
                let req = produce_req("t", p, &v);
                async move { log.produce(req).await }
            })
            .await
            .unwrap();
    }
    let fetched_before = proxy.stats().bytes_down;
    let read = common::read_all(&client, "t").await;
    let values: Vec<usize> = read.values().map(Vec::len).collect();
    assert_eq!(values, [5, 5]);
    assert!(proxy.stats().bytes_down > fetched_before, "fetches bypassed the proxy");
    assert_eq!(proxy.stats().resets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_delay_adds_at_least_the_minimum_each_way() {
    let px = Proxied::start();
    px.metadata(PROMPT).await.unwrap();
    let min = Duration::from_millis(50);
    px.proxy.set(Mode::Delay { min, max: Duration::from_millis(80) });
    for _ in 0..3 {
        let started = Instant::now();
        px.metadata(PROMPT).await.unwrap();
        assert!(started.elapsed() >= 2 * min, "round trip took only {:?}", started.elapsed());
    }
}

/// A connection that goes silent (a frozen broker, a black-holed route) keeps its calls
/// from ending only until the client's HTTP/2 PING goes unanswered: a call with a long
/// deadline fails as a broken connection, well before that deadline, and once the route
/// passes again the client reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_blackhole_breaks_the_connection_by_ping_and_pass_recovers() {
    let px = Proxied::start();
    px.metadata(PROMPT).await.unwrap();
    px.proxy.set(Mode::Blackhole);
    let status = px.metadata_raw(Duration::from_secs(20)).await.unwrap_err();
    assert!(broken_connection(&status), "not given up as a broken connection: {status:?}");
    // Calls made while the route stays silent end too: at their deadline, or when their
    // new connection is given up.
    for _ in 0..2 {
        let status = px.metadata_raw(Duration::from_millis(500)).await.unwrap_err();
        assert!(
            broken_connection(&status) || status.message().contains("no answer within"),
            "{status:?}"
        );
    }
    px.proxy.set(Mode::Pass);
    px.wait_until_served("requests to succeed after the blackhole").await;
}

/// Whether a call failed in the transport (its connection broke) rather than by timing out
/// or by an answer. tonic reports that as `UNAVAILABLE` when the reset hits the connect,
/// `CANCELLED` when the request was queued on a connection that then closed, and `UNKNOWN`
/// "transport error" when it hits an established connection.
fn broken_connection(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reset_fails_requests_promptly_and_pass_recovers() {
    let px = Proxied::start();
    px.metadata(PROMPT).await.unwrap();
    px.proxy.set(Mode::Reset);
    for _ in 0..3 {
        let status = px.metadata_raw(PROMPT).await.unwrap_err();
        assert!(broken_connection(&status), "not a broken connection: {status:?}");
    }
    assert!(px.proxy.stats().resets >= 1);
    px.proxy.set(Mode::Pass);
    px.wait_until_served("requests to succeed after resets").await;
}

/// An idempotent producer whose first send cannot reach the cluster for its producer id
/// (every connection reset) waits for it, as for metadata, within `max_block`: the send
/// succeeds once the network is back, rather than failing after a few quick tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_waits_out_resets_for_its_producer_id() {
    let px = Proxied::start();
    px.broker.client().admin().create_topic("ids", 1, 0, BTreeMap::new()).await.unwrap();
    // Metadata is cached before the resets start, so the producer id is what the send waits
    // for; the records themselves go to the leader's own address, not through the proxy.
    assert_eq!(px.client.partition_count("ids").await.unwrap(), 1);
    px.proxy.set(Mode::Reset);
    let producer = Producer::new(px.client.clone(), ProducerConfig::default());
    let send = tokio::spawn(async move {
        let sent = producer.send(ProducerRecord::new("ids", "v").partition(0)).await;
        (producer, sent)
    });
    let proxy = &px.proxy;
    wait_until(PROMPT, "the send to end or 10 connections to be reset", || {
        let done = send.is_finished() || proxy.stats().resets >= 10;
        async move { done }
    })
    .await;
    let resets = proxy.stats().resets;
    px.proxy.set(Mode::Pass);
    let (_producer, sent) = send.await.unwrap();
    let delivery = sent.unwrap_or_else(|e| panic!("the send failed after {resets} resets: {e}"));
    let md = delivery.await.expect("acknowledged once the network is back");
    assert_eq!((md.partition, md.offset), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reset_of_an_open_connection_is_an_unavailable_kind() {
    let px = Proxied::start();
    px.metadata(PROMPT).await.unwrap();
    // Whether the reset meets a request in flight or is noticed before the next one (and
    // the channel reconnects) is a race; try until a request meets one.
    let mut failure = None;
    for _ in 0..20 {
        px.proxy.reset_connections();
        if let Err(e) = px.metadata(PROMPT).await {
            failure = Some(e);
            break;
        }
    }
    let e = failure.expect("no request met a reset in 20 tries");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e:?}");
    assert!(e.kind.is_retriable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reset_probability_fails_some_requests() {
    let px = Proxied::start();
    px.metadata(PROMPT).await.unwrap();
    px.proxy.set_reset_probability(0.05);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..200 {
        match px.metadata_raw(Duration::from_secs(2)).await {
            Ok(()) => ok += 1,
            Err(status) => {
                // A reset mid-request either breaks the connection at once or, when it hit
                // a half the client was not reading, leaves the call to its deadline.
                let lost =
                    broken_connection(&status) || status.code() == tonic::Code::DeadlineExceeded;
                assert!(lost, "not a lost connection: {status:?}");
                failed += 1;
            }
        }
    }
    let stats = px.proxy.stats();
    println!("200 requests at 5% resets per chunk: {ok} ok, {failed} failed, {stats:?}");
    assert!(stats.resets > 0 && failed > 0 && ok > 0, "{ok} ok, {failed} failed, {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_produces_through_resets_pass_the_checker() {
    let px = Proxied::start();
    let direct = px.broker.client();
    direct.admin().create_topic("c", 2, 0, BTreeMap::new()).await.unwrap();
    px.proxy.set_reset_probability(0.05);
    let log = Arc::new(ProduceLog::new());
    let px = Arc::new(px);
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            let (px, log) = (px.clone(), log.clone());
            tokio::spawn(async move {
                for i in 0..100 {
                    let value = format!("p{p}-{i}");
                    let op = log.invoke(p, value.clone());
                    match px.produce("c", p, &value).await {
                        Ok(resp) => log.ok(op, resp.base_offset),
                        // Through a lossy link any failure may come after the write.
                        Err(_) => log.unknown(op),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let read = checker::from_records(&common::read_all(&direct, "c").await);
    let report = checker::check(&log, &read);
    println!("{report}; proxy {:?}", px.proxy.stats());
    report.assert_clean();
    assert!(report.acknowledged > 0 && px.proxy.stats().resets > 0, "{report}");
}
