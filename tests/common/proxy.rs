//! A user-space TCP proxy for fault injection, since `tc netem` is not available here:
//! put it between a client (or a peer broker) and a broker, then delay, blackhole or reset
//! the connections through it at run time.
//!
//! ```ignore
//! let proxy = Proxy::start(broker.addr.parse().unwrap());
//! let client = Client::new(&proxy.addr().to_string()).unwrap();
//! proxy.set(Mode::Blackhole);            // requests now time out
//! proxy.set(Mode::Pass);                 // held bytes flow again
//! proxy.set_reset_probability(0.01);     // 1% of chunks reset their connection
//! ```
//!
//! **Threading.** Each proxy runs on its own OS thread with a current-thread tokio runtime,
//! not in the test's runtime, so it keeps forwarding while the test blocks its thread (e.g.
//! `BrokerProcess::start` waits synchronously for the broker), works the same from `#[test]`
//! and from `#[tokio::test]` of either flavor, and ignores `tokio::time::pause`. Every method
//! takes `&self` and may be called from any thread. Dropping the proxy closes the listener,
//! drops every connection (plain close) and joins the thread (bounded: no task blocks).
//!
//! **Modes** (see [`Mode`]) apply to every connection, open or new, from the moment they are
//! set. Data is forwarded in chunks of whatever one `read` returned (at most 64 KiB).
//! - `Delay`: a chunk read at `t` is written at `t + uniform(min..=max)`, but never before an
//!   earlier chunk of the same direction, so a chunk can wait longer behind a slower one.
//! - `Blackhole`: bytes are **held, not dropped**, like a partition during which TCP keeps
//!   retransmitting: up to [`QUEUE_CHUNKS`] chunks per direction are read and held, then
//!   reading stops and the sender's socket buffers fill. Switching to another mode delivers
//!   what was held (late: the peer may have timed out meanwhile). A FIN is held too. New
//!   connections are accepted (the kernel completes the handshake anyway) and held.
//! - `Reset`: open connections are reset on both sides (`SO_LINGER` 0, so each peer sees
//!   `ECONNRESET`), and new ones are reset right after `accept`.
//! - `reset_probability` (independent of the mode): each chunk read resets its connection
//!   with that probability, instead of being forwarded.
//!
//! An I/O error on one side resets the other (a reset propagates); a clean EOF is forwarded
//! as a FIN after the queued chunks. If the upstream refuses the connection, the client's
//! connection is reset, like a connection refused.
//!
//! **Seeds.** Random choices come from `StdRng`s seeded per direction of each connection from
//! the proxy's seed, printed at start. The seed is `PROXY_SEED` (or a random one) plus the
//! number of proxies this thread started before, so `PROXY_SEED=<base>` replays every proxy of
//! a single test. Replays are best effort: chunk boundaries depend on the kernel.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Chunks held per direction before the proxy stops reading (backpressure to the sender).
pub(crate) const QUEUE_CHUNKS: usize = 256;

/// Largest chunk read at once.
const CHUNK_BYTES: usize = 64 * 1024;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forward everything at once.
    Pass,
    /// Forward each chunk after a random delay in `[min, max]`, keeping order per direction.
    Delay { min: Duration, max: Duration },
    /// Forward nothing; hold the bytes until the mode changes.
    Blackhole,
    /// Reset every open connection and each new one.
    Reset,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ProxyStats {
    /// Connections accepted from clients.
    pub accepted: u64,
    /// Connections currently open through the proxy.
    pub active: u64,
    /// Bytes written to the upstream (client → upstream).
    pub bytes_up: u64,
    /// Bytes written to clients (upstream → client).
    pub bytes_down: u64,
    /// Connections reset by the proxy's faults (mode, probability or `reset_connections`).
    pub resets: u64,
}

/// A running proxy from `addr()` to an upstream; stops on drop.
pub(crate) struct Proxy {
    addr: SocketAddr,
    seed: u64,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// State shared by the handle and the proxy's tasks.
struct Shared {
    upstream: Mutex<SocketAddr>,
    seed: u64,
    faults: watch::Sender<Faults>,
    /// `f64` bits.
    reset_probability: AtomicU64,
    next_connection: AtomicU64,
    accepted: AtomicU64,
    active: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    resets: AtomicU64,
}

/// What connections watch: the mode, and a counter bumped by `reset_connections`.
#[derive(Debug, Clone, Copy)]
struct Faults {
    mode: Mode,
    reset_generation: u64,
}

/// Why a connection ended early.
enum End {
    /// A fault of the proxy: reset both sides and count it.
    Injected,
    /// A peer failed (reset, broken pipe): reset the other side so the failure propagates.
    Io,
}

thread_local! {
    /// (base seed, proxies started by this thread).
    static SEEDS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// The next seed for a proxy started by this thread, and the base to replay it with.
fn next_seed() -> (u64, u64) {
    SEEDS.with(|s| {
        let (base, n) = s.get().unwrap_or_else(|| {
            let base = match std::env::var("PROXY_SEED") {
                Ok(v) => {
                    v.trim().parse().unwrap_or_else(|_| panic!("PROXY_SEED={v:?} is not a u64"))
                }
                Err(_) => rand::rng().random(),
            };
            (base, 0)
        });
        s.set(Some((base, n + 1)));
        (base.wrapping_add(n), base)
    })
}

impl Proxy {
    /// Starts a proxy to `upstream` with a seed from `PROXY_SEED` or a random one (printed).
    pub(crate) fn start(upstream: SocketAddr) -> Proxy {
        let (seed, base) = next_seed();
        Self::spawn(upstream, seed, &format!("replay with PROXY_SEED={base}"))
    }

    /// Starts a proxy to `upstream` with a given seed.
    pub(crate) fn start_with_seed(upstream: SocketAddr, seed: u64) -> Proxy {
        Self::spawn(upstream, seed, "explicit")
    }

    fn spawn(upstream: SocketAddr, seed: u64, origin: &str) -> Proxy {
        // Bound here, synchronously, so the address is known (and a failure is reported)
        // before `start` returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        listener.set_nonblocking(true).expect("make the proxy listener non-blocking");
        let addr = listener.local_addr().expect("proxy listener address");
        let (faults, _) = watch::channel(Faults { mode: Mode::Pass, reset_generation: 0 });
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            seed,
            faults,
            reset_probability: AtomicU64::new(0f64.to_bits()),
            next_connection: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            active: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let tasks = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the proxy's runtime");
                rt.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("register the proxy listener");
                    tokio::select! {
                        _ = accept_loop(listener, tasks) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection task, closing its sockets.
                drop(rt);
            })
            .expect("spawn the proxy thread");
        println!("proxy {addr} -> {upstream}: seed {seed} ({origin})");
        Proxy { addr, seed, shared, stop: Some(stop), thread: Some(thread) }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded.
    pub(crate) fn upstream(&self) -> SocketAddr {
        *self.shared.upstream.lock().expect("upstream lock")
    }

    /// Forwards new connections to `upstream` (open ones stay): for a broker restarted on
    /// another port, or one started with `--advertise` set to this proxy's address.
    pub(crate) fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().expect("upstream lock") = upstream;
    }

    /// The seed of this proxy's random choices.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// Switches every connection, open or new, to `mode`.
    pub(crate) fn set(&self, mode: Mode) {
        if let Mode::Delay { min, max } = mode {
            assert!(min <= max, "Mode::Delay needs min <= max, got {min:?} > {max:?}");
        }
        self.shared.faults.send_modify(|f| f.mode = mode);
    }

    /// The current mode.
    pub(crate) fn mode(&self) -> Mode {
        self.shared.faults.borrow().mode
    }

    /// Makes each chunk reset its connection with probability `p` (0 turns it off).
    pub(crate) fn set_reset_probability(&self, p: f64) {
        assert!((0.0..=1.0).contains(&p), "reset probability must be in [0, 1], got {p}");
        self.shared.reset_probability.store(p.to_bits(), Ordering::Relaxed);
    }

    /// Resets every open connection once, keeping the mode (new connections are unaffected).
    pub(crate) fn reset_connections(&self) {
        self.shared.faults.send_modify(|f| f.reset_generation += 1);
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> ProxyStats {
        let s = &self.shared;
        ProxyStats {
            accepted: s.accepted.load(Ordering::Relaxed),
            active: s.active.load(Ordering::Relaxed),
            bytes_up: s.bytes_up.load(Ordering::Relaxed),
            bytes_down: s.bytes_down.load(Ordering::Relaxed),
            resets: s.resets.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Quick: the thread only drops its runtime, and no task blocks.
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream())
            .field("seed", &self.seed)
            .field("mode", &self.mode())
            .field("stats", &self.stats())
            .finish()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(stream, id, shared.clone()));
            }
            // E.g. out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Resets `stream`: with `SO_LINGER` 0 the close sends RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Decrements the active count when a connection task ends, however it ends.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(mut client: TcpStream, id: u64, shared: Arc<Shared>) {
    shared.active.fetch_add(1, Ordering::Relaxed);
    let _active = Active(shared.clone());
    let mut faults = shared.faults.subscribe();
    let generation = faults.borrow().reset_generation;
    if faults.borrow().mode == Mode::Reset {
        shared.resets.fetch_add(1, Ordering::Relaxed);
        return reset(client);
    }
    let upstream_addr = *shared.upstream.lock().expect("upstream lock");
    let connected = tokio::select! {
        c = TcpStream::connect(upstream_addr) => c,
        _ = reset_requested(&mut faults, generation) => {
            shared.resets.fetch_add(1, Ordering::Relaxed);
            return reset(client);
        }
    };
    let Ok(mut upstream) = connected else { return reset(client) };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);

    let outcome = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        // Each direction's rng is its own, so its choices do not depend on the other's timing.
        let seed = shared.seed.wrapping_add(id.wrapping_mul(2));
        let up = direction(client_read, upstream_write, &shared, seed, &shared.bytes_up);
        let down = direction(
            upstream_read,
            client_write,
            &shared,
            seed.wrapping_add(1),
            &shared.bytes_down,
        );
        tokio::select! {
            r = async { tokio::try_join!(up, down) } => r.map(|_| ()),
            _ = reset_requested(&mut faults, generation) => Err(End::Injected),
        }
    };
    match outcome {
        // Both directions saw EOF and forwarded it: a plain close.
        Ok(()) => {}
        Err(End::Injected) => {
            shared.resets.fetch_add(1, Ordering::Relaxed);
            reset(client);
            reset(upstream);
        }
        Err(End::Io) => {
            reset(client);
            reset(upstream);
        }
    }
}

/// Resolves once the mode is `Reset` or `reset_connections` was called after `generation`.
async fn reset_requested(faults: &mut watch::Receiver<Faults>, generation: u64) {
    let wanted = faults.wait_for(|f| f.mode == Mode::Reset || f.reset_generation != generation);
    if wanted.await.is_err() {
        // The sender lives in `Shared`, which outlives this task: never reached, but pend
        // rather than reset if it were.
        std::future::pending::<()>().await;
    }
}

/// A chunk and when it may be written.
struct Chunk {
    data: Bytes,
    due: Instant,
}

/// One direction: a reader that decides each chunk's fate, and a writer that delivers it.
async fn direction(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    shared: &Shared,
    seed: u64,
    forwarded: &AtomicU64,
) -> Result<(), End> {
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUE_CHUNKS);
    let read = async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(CHUNK_BYTES);
            let n = from.read_buf(&mut buf).await.map_err(|_| End::Io)?;
            if n == 0 {
                // Dropping `tx` lets the writer forward the EOF after what is queued.
                return Ok(());
            }
            let p = f64::from_bits(shared.reset_probability.load(Ordering::Relaxed));
            if p > 0.0 && rng.random_bool(p) {
                return Err(End::Injected);
            }
            let delay = match shared.faults.borrow().mode {
                Mode::Delay { min, max } => rng.random_range(min..=max),
                _ => Duration::ZERO,
            };
            let chunk = Chunk { data: buf.split().freeze(), due: Instant::now() + delay };
            // A closed receiver means the writer failed; its error ends the connection.
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    };
    let mut faults = shared.faults.subscribe();
    let write = async move {
        while let Some(chunk) = rx.recv().await {
            // FIFO with per-chunk deadlines: a chunk never overtakes an earlier one.
            tokio::time::sleep_until(chunk.due).await;
            hold_while_blackholed(&mut faults).await;
            to.write_all(&chunk.data).await.map_err(|_| End::Io)?;
            forwarded.fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
        }
        hold_while_blackholed(&mut faults).await;
        to.shutdown().await.map_err(|_| End::Io)
    };
    tokio::try_join!(read, write).map(|_| ())
}

async fn hold_while_blackholed(faults: &mut watch::Receiver<Faults>) {
    if faults.wait_for(|f| f.mode != Mode::Blackhole).await.is_err() {
        std::future::pending::<()>().await;
    }
}
