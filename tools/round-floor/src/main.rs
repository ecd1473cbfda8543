//! The floor under `scripts/bench-cpu.sh`'s broker figures (issue 54): the least a server
//! shaped like Shale's journal can spend per record on this machine. It receives 1 KiB
//! records over TCP, appends them to an open round in memory, writes each round with one
//! write and one fdatasync at most every `--interval-us` (the journal's pacing), and
//! answers each read's records once their round is synced — and does nothing else: no
//! partitions, no segment files, no validation, no protocol beyond fixed-size frames.
//!
//! Two ways to run the rounds:
//! - `thread`: a writer thread, as Shale's journal does (a condition variable to wait for
//!   frames and to pace, a blocking `write` and `fdatasync`, then a watch that wakes the
//!   runtime's waiting tasks);
//! - `uring`: a task of the runtime, the round's write and fdatasync submitted to
//!   io_uring and reaped through an eventfd the runtime polls, pacing on the runtime's
//!   timer (1 ms ticks: an interval of 1 ms paces at about 2 ms).
//!
//!   round-floor server --mode thread --listen 127.0.0.1:9000 --file /data/journal
//!   round-floor client --connect 127.0.0.1:9000 --rate 20000 --seconds 8
// A tool outside the broker: it reads the real clock and spawns threads directly.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A record's size, and the frame of every request.
const RECORD: usize = 1024;
/// The journal file's size; rounds wrap around it.
const FILE_BYTES: u64 = 256 << 20;

#[derive(Parser)]
#[command(about = "The least CPU a journal round costs: a floor for scripts/bench-cpu.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: append what arrives, sync it in rounds, answer.
    Server {
        #[arg(long, value_enum)]
        mode: Mode,
        #[arg(long)]
        listen: String,
        /// The journal file (created, 256 MiB, overwritten in a ring).
        #[arg(long)]
        file: std::path::PathBuf,
        /// Least time between the starts of two rounds (Shale's
        /// `log.journal_round_interval_us`).
        #[arg(long, default_value_t = 1000)]
        interval_us: u64,
    },
    /// Send 1 KiB records at a fixed rate (open loop), print the latency of their answers.
    Client {
        #[arg(long)]
        connect: String,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Records per second, over all connections.
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 8)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Thread,
    Uring,
}

/// The open round and the synced position.
struct Journal {
    open: Mutex<Open>,
    /// Wakes the writer thread (`thread` mode) while it waits for frames.
    work: Condvar,
    idle: AtomicBool,
    /// Wakes the writer task (`uring` mode).
    kick: tokio::sync::Notify,
    mode: Mode,
    interval: Duration,
    /// Bytes synced so far: what answers wait on.
    synced: tokio::sync::watch::Sender<u64>,
    rounds: AtomicU64,
}

struct Open {
    bytes: Vec<u8>,
    /// Bytes appended so far (the end of `bytes`).
    end: u64,
}

impl Journal {
    /// Appends `bytes` to the open round; the position the answer waits for.
    fn push(&self, bytes: &[u8]) -> u64 {
        let mut open = self.open.lock().unwrap();
        open.bytes.extend_from_slice(bytes);
        open.end += bytes.len() as u64;
        open.end
    }

    /// Wakes the writer if it waits for frames (as Shale's `Journal::kick`).
    fn kick(&self) {
        match self.mode {
            Mode::Uring => self.kick.notify_one(),
            Mode::Thread if self.idle.load(Ordering::Acquire) => self.work.notify_one(),
            Mode::Thread => {}
        }
    }

    /// Takes the open round (its bytes, its end), leaving `spare` in its place.
    fn take(open: &mut Open, spare: Vec<u8>) -> (Vec<u8>, u64) {
        (std::mem::replace(&mut open.bytes, spare), open.end)
    }

    fn synced(&self, end: u64) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.synced.send_replace(end);
    }
}

/// Where a round ending at `end` of `len` bytes goes in the file.
fn offset(end: u64, len: usize) -> u64 {
    (end - len as u64) % (FILE_BYTES - (8 << 20))
}

/// `thread` mode: Shale's journal writer, reduced to its round.
fn write_rounds_on_a_thread(j: Arc<Journal>, file: std::fs::File) {
    use std::os::unix::fs::FileExt;
    let mut last: Option<Instant> = None;
    let mut spare = Vec::with_capacity(1 << 20);
    loop {
        let (round, end) = {
            let mut open = j.open.lock().unwrap();
            loop {
                while open.bytes.is_empty() {
                    j.idle.store(true, Ordering::Release);
                    open = j.work.wait(open).unwrap();
                }
                j.idle.store(false, Ordering::Release);
                let wait = last.map(|t| (t + j.interval).saturating_duration_since(Instant::now()));
                match wait.filter(|w| !w.is_zero()) {
                    Some(wait) => open = j.work.wait_timeout(open, wait).unwrap().0,
                    None => break,
                }
            }
            last = Some(Instant::now());
            Journal::take(&mut open, std::mem::take(&mut spare))
        };
        file.write_all_at(&round, offset(end, round.len())).expect("write the round");
        file.sync_data().expect("fdatasync the round");
        j.synced(end);
        spare = round;
        spare.clear();
    }
}

/// An eventfd the runtime polls: io_uring signals its completions there.
struct EventFd(std::os::fd::OwnedFd);

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// `uring` mode: the rounds on a task of the runtime, through io_uring.
async fn write_rounds_on_a_task(j: Arc<Journal>, file: std::fs::File) {
    use io_uring::{IoUring, opcode, squeue, types};
    let mut ring = IoUring::new(8).expect("io_uring");
    // SAFETY: a plain syscall; the descriptor is checked below and lives as long as the ring.
    let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    assert!(efd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    ring.submitter().register_eventfd(efd).expect("register the eventfd");
    // SAFETY: `efd` is open and owned here alone from now on.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(efd) };
    // SAFETY: the descriptor stays open (owned by the `AsyncFd`) while it is registered.
    let completions = unsafe { tokio::io::unix::AsyncFd::register(EventFd(owned)) }
        .unwrap_or_else(|e| panic!("poll the eventfd: {e}"));
    let fd = types::Fd(file.as_raw_fd());
    let mut last: Option<tokio::time::Instant> = None;
    let mut spare: Vec<u8> = Vec::with_capacity(1 << 20);
    loop {
        loop {
            let kicked = j.kick.notified();
            if !j.open.lock().unwrap().bytes.is_empty() {
                break;
            }
            kicked.await;
        }
        if let Some(t) = last {
            tokio::time::sleep_until(t + j.interval).await;
        }
        last = Some(tokio::time::Instant::now());
        let (round, end) = Journal::take(&mut j.open.lock().unwrap(), std::mem::take(&mut spare));
        let write = opcode::Write::new(fd, round.as_ptr(), round.len() as u32)
            .offset(offset(end, round.len()))
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(1);
        let sync = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
        // SAFETY: `round` is not touched until both entries completed (awaited below).
        unsafe {
            let mut sq = ring.submission();
            sq.push(&write).expect("room for the write");
            sq.push(&sync).expect("room for the fdatasync");
        }
        ring.submit().expect("submit the round");
        let mut done = 0;
        while done < 2 {
            let mut ready = completions.readable().await.expect("eventfd readable");
            let mut count = [0u8; 8];
            // SAFETY: reads 8 bytes into `count`, as eventfd requires.
            unsafe { libc::read(efd, count.as_mut_ptr().cast(), 8) };
            ready.clear_ready();
            for cqe in ring.completion() {
                assert!(cqe.result() >= 0, "round op {} failed: {}", cqe.user_data(), cqe.result());
                done += 1;
            }
        }
        j.synced(end);
        spare = round;
        spare.clear();
    }
}

/// One connection: appends each read's whole records, waits for their round, answers 8
/// bytes a record.
async fn serve(j: Arc<Journal>, socket: tokio::net::TcpStream) {
    let (mut rd, mut wr) = socket.into_split();
    let mut buf = vec![0u8; 256 * RECORD];
    let (mut have, mut answers) = (0usize, Vec::new());
    let mut synced = j.synced.subscribe();
    loop {
        match rd.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let records = have / RECORD;
        if records == 0 {
            continue;
        }
        let mut at = 0;
        for r in buf[..records * RECORD].chunks(RECORD) {
            at = j.push(r);
        }
        buf.copy_within(records * RECORD..have, 0);
        have -= records * RECORD;
        j.kick();
        if synced.wait_for(|s| *s >= at).await.is_err() {
            return;
        }
        answers.clear();
        answers.resize(8 * records, 1);
        if wr.write_all(&answers).await.is_err() {
            return;
        }
    }
}

fn server(mode: Mode, listen: &str, path: &std::path::Path, interval_us: u64) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // Written through once, so that rounds overwrite allocated blocks as the journal does.
    file.set_len(0).and_then(|()| file.set_len(FILE_BYTES)).expect("size the file");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..FILE_BYTES / zeros.len() as u64 {
        std::os::unix::fs::FileExt::write_all_at(&file, &zeros, i * zeros.len() as u64)
            .expect("fill the file");
    }
    file.sync_all().expect("sync the file");
    let j = Arc::new(Journal {
        open: Mutex::new(Open { bytes: Vec::with_capacity(1 << 20), end: 0 }),
        work: Condvar::new(),
        idle: AtomicBool::new(false),
        kick: tokio::sync::Notify::new(),
        mode,
        interval: Duration::from_micros(interval_us),
        synced: tokio::sync::watch::channel(0).0,
        rounds: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if mode == Mode::Thread {
        let (j, file) = (j.clone(), file.try_clone().unwrap());
        std::thread::Builder::new()
            .name("floor-journal".into())
            .spawn(move || write_rounds_on_a_thread(j, file))
            .unwrap();
    }
    runtime.block_on(async move {
        if mode == Mode::Uring {
            tokio::spawn(write_rounds_on_a_task(j.clone(), file));
        }
        let listener = tokio::net::TcpListener::bind(listen).await.expect("listen");
        println!("listening on {}", listener.local_addr().unwrap());
        let counted = j.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                eprintln!("rounds {}", counted.rounds.load(Ordering::Relaxed));
            }
        });
        loop {
            let (socket, _) = listener.accept().await.expect("accept");
            socket.set_nodelay(true).unwrap();
            tokio::spawn(serve(j.clone(), socket));
        }
    });
}

/// One connection's share of the load: records due every 500 µs sent together, the
/// latency of each from its due time to its answer.
fn send_and_time(connect: &str, rate: u64, seconds: u64) -> Vec<Duration> {
    let mut socket = std::net::TcpStream::connect(connect).expect("connect");
    socket.set_nodelay(true).unwrap();
    let mut answers = socket.try_clone().unwrap();
    let total = rate * seconds;
    let start = Instant::now();
    let due = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate as f64);
    let reader = std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(total as usize);
        let mut answer = [0u8; 8];
        for i in 0..total {
            answers.read_exact(&mut answer).expect("an answer");
            latencies.push(due(i).elapsed());
        }
        latencies
    });
    let record = vec![7u8; RECORD];
    let (mut sent, mut out) = (0u64, Vec::new());
    let mut tick = start;
    while sent < total {
        tick += Duration::from_micros(500);
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let now_due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        out.clear();
        for _ in sent..now_due {
            out.extend_from_slice(&record);
        }
        sent = now_due;
        socket.write_all(&out).expect("send");
    }
    reader.join().unwrap()
}

fn client(connect: &str, connections: usize, rate: u64, seconds: u64) {
    let each = rate / connections.max(1) as u64;
    let threads: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let connect = connect.to_string();
            std::thread::spawn(move || send_and_time(&connect, each, seconds))
        })
        .collect();
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{} records, p50/p99/p999 {:.3} / {:.3} / {:.3} ms",
        all.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(0.999))
    );
}

fn main() {
    match Cli::parse().command {
        Command::Server { mode, listen, file, interval_us } => {
            server(mode, &listen, &file, interval_us)
        }
        Command::Client { connect, connections, rate, seconds } => {
            client(&connect, connections, rate, seconds)
        }
    }
}
