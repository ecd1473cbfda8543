//! One client connection: requests are read one after another and started in arrival
//! order (so a connection's produce requests append in the order sent), their answers are
//! computed concurrently where they wait (acknowledgements, long-polls, rebalances) and
//! written strictly in request order. Up to `kafka.max_in_flight_per_connection` answers
//! may be pending; beyond that the connection is not read until one is written.
//!
//! A malformed or oversized frame, an unknown API or version closes the connection with
//! one log line naming the peer: nothing else is affected. A connection with nothing in
//! flight and no request for `kafka.connections_max_idle_ms` is closed. After an answer
//! that carries a throttle time the connection is not read until it has passed (KIP-219).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Kafka;
use crate::call::{Answer, Session};
use crate::frame::{self, FrameError};
use prometheus_client::metrics::histogram::Histogram;
use shale_broker::api::RequestMetrics;
use shale_core::clock::{Instant, monotonic_now};

/// State shared by a connection's reader and writer.
#[derive(Debug)]
struct Shared {
    /// Answers handed to the writer and not written yet.
    in_flight: AtomicUsize,
    /// A permit per request taken in and not answered yet
    /// (`kafka.max_in_flight_per_connection` in all): the reader waits for one before it
    /// reads a request, the writer gives it back once the answer is written.
    permits: Arc<Semaphore>,
    /// Not read again before this (a throttled client), as ms on the monotonic clock.
    muted_until: std::sync::Mutex<Option<Instant>>,
}

/// Serves one connection until the client goes, the broker closes, or the client breaks
/// the protocol.
pub(crate) async fn serve<S>(kafka: Arc<Kafka>, stream: S, session: Session)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let _sessions = ShareSessionsEnd { kafka: kafka.clone(), connection: session.connection };
    let (mut rd, wr) = tokio::io::split(stream);
    let settings = &kafka.settings;
    let max_in_flight = settings.max_in_flight_per_connection;
    let (tx, rx) = mpsc::channel::<Handed>(max_in_flight);
    let shared = Arc::new(Shared {
        in_flight: AtomicUsize::new(0),
        permits: Arc::new(Semaphore::new(max_in_flight)),
        muted_until: Default::default(),
    });
    let peer = session.peer;
    let timings = Timings::new(kafka.api.metrics().clone());
    let mut writer =
        shale_core::task::spawn_owned(write_answers(wr, rx, shared.clone(), peer, timings));
    let idle = Duration::from_millis(settings.connections_max_idle_ms);
    let max = settings.max_request_bytes;
    let mut closed = kafka.api.closed_signal();
    let mut session = session;
    loop {
        let muted = *shared.muted_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = muted {
            shale_core::clock::sleep_until(until).await;
        }
        // Not read while as many requests as allowed wait for their answers.
        let permit = tokio::select! {
            permit = shared.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = closed.wait_for(|c| *c) => break,
            _ = &mut writer => return,
        };
        let read = tokio::select! {
            r = tokio::time::timeout(idle, frame::read_frame(&mut rd, max)) => r,
            _ = closed.wait_for(|c| *c) => break,
            // The writer ends only when the socket fails: nothing more can be answered.
            _ = &mut writer => return,
        };
        let frame = match read {
            Ok(Ok(frame)) => frame,
            Ok(Err(FrameError::Closed)) => break,
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "closing a Kafka connection");
                return;
            }
            Err(_) if shared.in_flight.load(Ordering::Acquire) == 0 => {
                tracing::debug!(%peer, ?idle, "closing an idle Kafka connection");
                return;
            }
            Err(_) => continue,
        };
        // The API key leads every request header; a bare SASL token has none.
        let key = match (session.bare_sasl, frame.get(..2)) {
            (false, Some(k)) => i16::from_be_bytes([k[0], k[1]]),
            _ => ApiKey::SaslAuthenticate as i16,
        };
        let timing = Timing { key, started: monotonic_now() };
        let answer = match session.bare_sasl {
            true => crate::sasl::bare_token(&kafka, &mut session, frame).await,
            false => crate::dispatch::request(&kafka, &mut session, frame).await,
        };
        if matches!(answer, Answer::Close) {
            return;
        }
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if tx.send(Handed { answer, timing, permit }).await.is_err() {
            return;
        }
        if session.close_after {
            break;
        }
    }
    // The client stopped sending (or the broker closes): answer what was asked, then go.
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
}

/// Ends the share sessions of a connection when it closes, however it closes: the
/// records their members hold are given back at once.
struct ShareSessionsEnd {
    kafka: Arc<Kafka>,
    connection: u64,
}

impl Drop for ShareSessionsEnd {
    fn drop(&mut self) {
        let ended = self.kafka.share_sessions.close_connection(self.connection);
        if ended.is_empty() {
            return;
        }
        let kafka = self.kafka.clone();
        kafka.api.clone().spawn(async move {
            for (group, member, partitions) in ended {
                let parts: Vec<(String, u32)> =
                    partitions.into_iter().map(|(_, t, p)| (t, p)).collect();
                kafka.api.share_release(&group, &member, &parts).await;
            }
        });
    }
}

/// An answer handed to the writer, with its request's timing and in-flight permit.
struct Handed {
    answer: Answer,
    timing: Timing,
    permit: OwnedSemaphorePermit,
}

/// What the writer does with a handed answer once it is complete: write this frame (and
/// mute the connection for the throttle), write nothing, or close the connection.
type Done = (Result<Option<(Bytes, Duration)>, String>, Timing, OwnedSemaphorePermit);

/// Writes answers in request order as they complete, polling those still being computed
/// side by side; flushes whenever no complete answer is left to write (so that no ready
/// answer waits for a slower one behind it).
async fn write_answers<W>(
    wr: W,
    mut rx: mpsc::Receiver<Handed>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    mut timings: Timings,
) where
    W: AsyncWrite + Unpin,
{
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut pending = FuturesOrdered::new();
    let mut reading = true;
    loop {
        // Every answer handed over so far joins the queue; then the next one in order, if
        // it is complete, is written without waiting.
        while let Ok(handed) = rx.try_recv() {
            pending.push_back(complete(handed));
        }
        let done = match futures::poll!(pending.next()) {
            std::task::Poll::Ready(Some(done)) => done,
            _ => {
                if !wr.buffer().is_empty() && wr.flush().await.is_err() {
                    return;
                }
                tokio::select! {
                    biased;
                    Some(done) = pending.next(), if !pending.is_empty() => done,
                    handed = rx.recv(), if reading => {
                        match handed {
                            Some(handed) => pending.push_back(complete(handed)),
                            None => reading = false,
                        }
                        continue;
                    }
                    else => break,
                }
            }
        };
        let (written, timing, permit) = done;
        match written {
            Ok(Some((bytes, throttle))) => {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
                if !throttle.is_zero() {
                    let until = monotonic_now() + throttle;
                    *shared.muted_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(until);
                }
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(%peer, error = %why, "closing a Kafka connection");
                return;
            }
        }
        timings.observe(timing);
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        drop(permit);
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}

/// A handed answer as a future of what the writer does with it: at once for an answer
/// ready or empty, when computed for a later one.
fn complete(handed: Handed) -> impl std::future::Future<Output = Done> {
    use futures::FutureExt as _;
    use futures::future::Either;
    let Handed { answer, timing, permit } = handed;
    let result = match answer {
        Answer::Nothing | Answer::Close => Ok(None),
        Answer::Ready(bytes, throttle) => Ok(Some((bytes, throttle))),
        Answer::Later(work) => {
            return Either::Right(work.map(move |result| (result.map(Some), timing, permit)));
        }
    };
    Either::Left(std::future::ready((result, timing, permit)))
}

/// When a request was read, and its API.
#[derive(Debug, Clone, Copy)]
struct Timing {
    key: i16,
    started: Instant,
}

/// A connection's handles on `kafka_request_duration_seconds`, one per API it used.
struct Timings {
    metrics: Arc<RequestMetrics>,
    by_key: Vec<(i16, Histogram)>,
}

impl Timings {
    fn new(metrics: Arc<RequestMetrics>) -> Timings {
        Timings { metrics, by_key: Vec::new() }
    }

    /// Records the time from the request read to its answer handed to the connection.
    fn observe(&mut self, timing: Timing) {
        let elapsed = timing.started.elapsed().as_secs_f64();
        if let Some((_, h)) = self.by_key.iter().find(|(k, _)| *k == timing.key) {
            h.observe(elapsed);
            return;
        }
        // Only served APIs reach the writer: an unknown key closed the connection.
        let api = ApiKey::try_from(timing.key)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| timing.key.to_string());
        let h = self.metrics.kafka_latency.get_or_create(&vec![("api".to_string(), api)]).clone();
        h.observe(elapsed);
        self.by_key.push((timing.key, h));
    }
}
