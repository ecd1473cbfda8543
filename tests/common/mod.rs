//! Test harness: brokers in-process (port 0) or as `shale` processes, and a checker for
//! acknowledged records.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shale::client::{Client, Consumer, ConsumerConfig, ConsumerRecord, StartAt};
use shale::server::RunningServer;
use shale::settings::Settings;

include!("ports.rs");

/// Settings for a test broker on an ephemeral port.
pub(crate) fn settings(dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.broker.data_dir = dir.to_path_buf();
    s.broker.listen = "127.0.0.1:0".parse().unwrap();
    s
}

/// Starts a broker in this process.
pub(crate) async fn start(settings: Settings) -> RunningServer {
    let clock = shale::clock::system();
    let meta = shale::server::embedded_meta(&settings, clock.clone()).expect("open embedded meta");
    shale::server::start(settings, meta, clock).await.expect("start broker")
}

/// A client for an in-process server.
pub(crate) fn client(server: &RunningServer) -> Client {
    Client::new(&server.addr().to_string()).unwrap()
}

/// A `shale standalone` child process; killed (SIGKILL) on drop if still running.
pub(crate) struct BrokerProcess {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Stdout lines after the first (read by a thread until the process exits).
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The first line: `shale broker N listening on ADDR (...)`.
    first_line: String,
}

impl BrokerProcess {
    /// Starts `shale standalone` on an ephemeral port and waits until it serves.
    pub(crate) fn start(data_dir: &Path) -> BrokerProcess {
        Self::start_with(data_dir, &[])
    }

    /// Same, with extra arguments.
    pub(crate) fn start_with(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Same, with extra environment variables (e.g. `SHALE_FAILPOINTS`).
    pub(crate) fn start_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> BrokerProcess {
        Self::start_on(data_dir, "127.0.0.1:0", extra, env)
    }

    /// Starts `shale standalone` listening on `listen` (a fixed port survives restarts).
    pub(crate) fn start_on(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> BrokerProcess {
        Self::standalone(data_dir, listen, extra, env, None)
    }

    /// As [`start_on`](Self::start_on), logging at info to the file `log` (for tests that
    /// assert what the broker logged).
    pub(crate) fn start_logged(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> BrokerProcess {
        Self::standalone(data_dir, listen, extra, env, Some(log))
    }

    fn standalone(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> BrokerProcess {
        let mut args = vec!["standalone", "--listen", listen, "--data-dir"];
        let dir = data_dir.to_string_lossy().to_string();
        args.push(&dir);
        // Standalone serves Kafka on 9092 by default; tests run brokers side by side.
        if !extra.contains(&"--kafka-listen") {
            args.extend_from_slice(&["--kafka-listen", "none"]);
        }
        // And the schema registry on 8081.
        if !extra.contains(&"--schema-registry-listen") {
            args.extend_from_slice(&["--schema-registry-listen", "none"]);
        }
        // And the console on 8080.
        if !extra.contains(&"--console-listen") {
            args.extend_from_slice(&["--console-listen", "none"]);
        }
        args.extend_from_slice(extra);
        Self::spawn(data_dir, &args, env, log)
    }

    /// Starts `shale serve` with `args` (plus an ephemeral listen port and `data_dir`) and
    /// waits until it serves.
    pub(crate) fn serve(data_dir: &Path, args: &[&str]) -> BrokerProcess {
        Self::serve_on(data_dir, "127.0.0.1:0", args)
    }

    /// Same, listening on `listen` (a fixed port survives restarts).
    pub(crate) fn serve_on(data_dir: &Path, listen: &str, args: &[&str]) -> BrokerProcess {
        Self::serve_on_with_env(data_dir, listen, args, &[])
    }

    /// Same, with extra environment variables (e.g. `SHALE_FAILPOINTS_DIR`).
    pub(crate) fn serve_on_with_env(
        data_dir: &Path,
        listen: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> BrokerProcess {
        let dir = data_dir.to_string_lossy().to_string();
        let mut all = vec!["serve", "--listen", listen, "--data-dir", &dir];
        all.extend_from_slice(args);
        Self::spawn(data_dir, &all, env, None)
    }

    /// Starts `shale ARGS` and waits for its first line; its stderr goes to `log` (at
    /// info) when given, else to the test's stderr (at `TEST_BROKER_LOG`, default warn).
    fn spawn(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> BrokerProcess {
        let (level, stderr) = match log {
            Some(path) => ("info".to_string(), Stdio::from(std::fs::File::create(path).unwrap())),
            None => (
                std::env::var("TEST_BROKER_LOG").unwrap_or_else(|_| "warn".into()),
                Stdio::inherit(),
            ),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_shale"))
            .args(args)
            .envs(env.iter().copied())
            .env("SHALE_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn shale");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let later = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = later.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep reading so the child never blocks on a full pipe.
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                // Closed stdout or silence: say whether it exited (its stderr shows why).
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("shale {args:?} exited ({status}) before printing its address");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                panic!("shale {args:?} did not print its address within 60s")
            }
        };
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line from shale: {line:?}"))
            .to_string();
        BrokerProcess {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            stdout: later,
            first_line: line,
        }
    }

    /// The Kafka listener's address, as its first line printed it (`Kafka on ADDR,`).
    pub(crate) fn kafka_addr(&self) -> Option<String> {
        self.first_line.split("Kafka on ").nth(1)?.split(',').next().map(str::to_string)
    }

    /// The schema registry's address, as its first line printed it (`schema registry
    /// http://ADDR,`).
    pub(crate) fn registry_addr(&self) -> Option<String> {
        let rest = self.first_line.split("schema registry http://").nth(1)?;
        rest.split(',').next().map(str::to_string)
    }

    /// What the process printed on stdout after its first line.
    pub(crate) fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, ...) to the process.
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([format!("-{sig}"), self.pid().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{sig} {} failed", self.pid());
    }

    /// The line the broker printed when it began to serve.
    #[allow(dead_code)]
    pub(crate) fn first_line(&self) -> &str {
        &self.first_line
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client for this broker.
    pub(crate) fn client(&self) -> Client {
        Client::new(&self.addr).unwrap()
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait (bounded) for a clean exit; returns whether it exited 0.
    pub(crate) fn terminate(&mut self) -> bool {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    /// Resident memory (KiB) and open file descriptors of the process.
    pub(crate) fn resources(&self) -> (u64, usize) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count();
        (rss, fds)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Topic configs from `key, value` pairs.
pub(crate) fn configs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Reads every partition of `topic` from the beginning to the high watermark.
pub(crate) async fn read_all(client: &Client, topic: &str) -> BTreeMap<u32, Vec<ConsumerRecord>> {
    try_read_all(client, topic).await.unwrap()
}

/// [`read_all`], answering the consumer's error instead of panicking on it (a read that
/// retention overtakes fails with `OffsetOutOfRange`).
pub(crate) async fn try_read_all(
    client: &Client,
    topic: &str,
) -> Result<BTreeMap<u32, Vec<ConsumerRecord>>, shale::error::Error> {
    let partitions = client.partition_count(topic).await?;
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() },
    );
    for p in 0..partitions {
        consumer.assign(topic, p, StartAt::Earliest).await?;
    }
    let mut out: BTreeMap<u32, Vec<ConsumerRecord>> =
        (0..partitions).map(|p| (p, vec![])).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let polled = tokio::time::timeout_at(deadline.into(), consumer.poll())
            .await
            .expect("reading the topic back took over 120s");
        match polled? {
            Some(records) => {
                for r in records {
                    out.get_mut(&r.partition).unwrap().push(r);
                }
            }
            None => return Ok(out),
        }
    }
}

/// What a checker found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CheckReport {
    pub acknowledged: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    /// Offsets that are not strictly increasing within a partition.
    pub offset_errors: usize,
    /// The first few duplicated values with every offset each was read at.
    pub duplicates: Vec<(String, Vec<i64>)>,
    /// The first and last lost values, to tell a lost tail from a hole.
    pub lost_range: Option<(String, String)>,
}

impl CheckReport {
    /// Asserts nothing acknowledged was lost, duplicated or reordered, and offsets grew.
    pub(crate) fn assert_kept(&self) {
        assert_eq!(self.lost, 0, "acknowledged records lost: {self:?}");
        assert_eq!(self.duplicated, 0, "acknowledged records duplicated: {self:?}");
        assert_eq!(self.reordered, 0, "acknowledged records reordered: {self:?}");
        assert_eq!(self.offset_errors, 0, "{self:?}");
    }
}

/// Compares acknowledged values (in ack order, per partition) with what the log holds.
pub(crate) fn check(
    acked: &BTreeMap<u32, Vec<String>>,
    read: &BTreeMap<u32, Vec<ConsumerRecord>>,
) -> CheckReport {
    let mut report = CheckReport::default();
    for (p, values) in acked {
        report.acknowledged += values.len();
        let records = read.get(p).map(|v| v.as_slice()).unwrap_or(&[]);
        for w in records.windows(2) {
            if w[1].offset <= w[0].offset {
                report.offset_errors += 1;
            }
        }
        let mut positions: HashMap<&[u8], Vec<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(v) = &r.value {
                positions.entry(v.as_ref()).or_default().push(i);
            }
        }
        let mut last_pos: Option<usize> = None;
        for v in values {
            match positions.get(v.as_bytes()) {
                None => {
                    report.lost += 1;
                    let first = report.lost_range.take().map_or(v.clone(), |(first, _)| first);
                    report.lost_range = Some((first, v.clone()));
                }
                Some(pos) => {
                    if pos.len() > 1 {
                        report.duplicated += 1;
                        if report.duplicates.len() < 10 {
                            let offsets = pos.iter().map(|&i| records[i].offset).collect();
                            report.duplicates.push((v.clone(), offsets));
                        }
                    }
                    if last_pos.is_some_and(|l| pos[0] < l) {
                        report.reordered += 1;
                    }
                    last_pos = Some(pos[0]);
                }
            }
        }
    }
    report
}

/// A one-record batch with `value`.
pub(crate) fn one_record_batch(value: &str) -> bytes::Bytes {
    let mut b = shale::record::BatchBuilder::new(shale::record::Compression::None);
    b.push(shale::record::Record {
        key: None,
        value: Some(bytes::Bytes::from(value.to_string())),
        headers: vec![],
        timestamp_ms: 1,
    });
    b.build()
}

/// An acks=all produce request of one record.
pub(crate) fn produce_req(
    topic: &str,
    partition: u32,
    value: &str,
) -> shale::proto::pb::ProduceRequest {
    use shale::proto::pb;
    pb::ProduceRequest {
        topic: topic.into(),
        partition,
        acks: pb::Acks::All as i32,
        payload: Some(pb::produce_request::Payload::Batches(one_record_batch(value))),
        correlation_id: 0,
        timeout_ms: 0,
        transactional_id: String::new(),
    }
}

/// Waits until the cluster reports `n` live brokers.
pub(crate) async fn wait_for_broker_count(client: &Client, n: usize) {
    wait_until(Duration::from_secs(30), &format!("{n} brokers registered"), || {
        let client = client.clone();
        async move { client.admin().metadata(&[]).await.is_ok_and(|m| m.brokers.len() == n) }
    })
    .await;
}

/// The acknowledgements of [`send_directly`]: (sent at, answered at, leader epoch).
pub(crate) type DirectAcks = std::sync::Arc<std::sync::Mutex<Vec<(Instant, Instant, i32)>>>;

/// Sends one-record produces straight to one broker every 50 ms, each as its own call (so
/// calls queue up while the broker is frozen), until `stop`; records every acknowledgement.
pub(crate) fn send_directly(
    log: shale::proto::pb::log_client::LogClient<shale::client::Transport>,
    topic: &str,
    partition: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (DirectAcks, tokio::task::JoinHandle<()>) {
    let acks: DirectAcks = Default::default();
    let topic = topic.to_string();
    let task = {
        let acks = acks.clone();
        tokio::spawn(async move {
            let mut calls = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (acks, mut log, topic) = (acks.clone(), log.clone(), topic.clone());
                i += 1;
                calls.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let call = log.produce(produce_req(&topic, partition, &format!("v{i}")));
                    if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(60), call).await {
                        let epoch = r.into_inner().leader_epoch;
                        acks.lock().unwrap().push((sent, Instant::now(), epoch));
                    }
                }));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for c in calls {
                let _ = c.await;
            }
        })
    };
    (acks, task)
}

/// The segment files (`*.log`) of a partition directory, oldest first.
pub(crate) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
}

/// Seeds from the comma-separated list in `var`, or `default`.
pub(crate) fn seeds_from_env(var: &str, default: &str) -> Vec<u64> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| {
            s.trim().parse().unwrap_or_else(|_| panic!("{var}: comma-separated u64, not {s:?}"))
        })
        .collect()
}

/// Polls `probe` until it returns `Ok`, or `timeout`; then panics naming `what` and the last
/// thing `probe` saw (its `Err`), so a timeout tells how far the wait got.
pub(crate) async fn wait_for<F, Fut, T>(timeout: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    wait_for_explained(timeout, what, probe, async || String::new()).await
}

/// [`wait_for`], and on a timeout also what `explain` finds then (state too costly to
/// gather at every poll: other services' views, a child's stderr).
pub(crate) async fn wait_for_explained<F, Fut, T>(
    timeout: Duration,
    what: &str,
    mut probe: F,
    explain: impl AsyncFnOnce() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe().await {
            Ok(done) => return done,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            let more = explain().await;
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}{more}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `cond` until true or `timeout`, then panics with `what`.
pub(crate) async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET path` over HTTP/1.0 from `addr` (the admin listener): status and body.
pub(crate) async fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, None).await
}

/// `method path` over HTTP/1.0 to `addr`, with a JSON `body`: status and body.
pub(crate) async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    http_request_with(addr, method, path, body, &[]).await
}

/// [`http_request`] with extra `headers`.
pub(crate) async fn http_request_with(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    try_http_request(addr, method, path, body, headers)
        .await
        .unwrap_or_else(|e| panic!("connecting to the HTTP listener {addr}: {e}"))
}

/// [`http_request_with`], a refused connection an error rather than a panic (a broker a
/// fault test killed).
pub(crate) async fn try_http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    // A server may answer (and close) before it reads a body it refuses.
    let _ = conn.write_all(body.as_bytes()).await;
    let mut response = Vec::new();
    let _ = conn.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, body.to_string()))
}

/// The value of the series `series` (name with labels, as exposed) in a `/metrics` body.
pub(crate) fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `shale ARGS` against `broker` (`SHALE_BROKER`); its stdout. Fails the test if the
/// command fails.
pub(crate) fn shale_cli(broker: &str, args: &[&str]) -> String {
    shale_cli_with(broker, args, None)
}

/// The same, with `stdin` fed to the command.
pub(crate) fn shale_cli_with(broker: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shale"))
        .args(args)
        .env("SHALE_BROKER", broker)
        .env("SHALE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(data) = stdin {
            input.write_all(data).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "shale {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every file under `dir`.
pub(crate) fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Produces `n` records (values `v0`, `v1`, ...) to `topic`; the acked (topic, partition, offset) of each.
pub(crate) async fn produce(
    client: &Client,
    topic: &str,
    n: u64,
) -> std::collections::BTreeSet<(String, u32, i64)> {
    let producer =
        shale::client::Producer::new(client.clone(), shale::client::ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..n {
        let record =
            shale::client::ProducerRecord::new(topic, format!("v{i}")).key(format!("k{i}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut acked = std::collections::BTreeSet::new();
    for d in deliveries {
        let md = d.await.unwrap();
        acked.insert((topic.to_string(), md.partition, md.offset));
    }
    acked
}
