//! Metadata and routing: the brokers and partition leaders the client has looked up (from
//! the bootstrap brokers, hedged when one is slow to answer, else from the other brokers
//! the cluster named), and calls at a partition's leader that look it up again and retry
//! while leadership moves.

use std::collections::HashMap;
use std::time::Duration;

use shale_core::error::{Error, ErrorKind, Reason};
use shale_proto::pb;
use shale_proto::pb::log_client::LogClient;

use crate::{Client, RetryPolicy, Transport, locate, retry, status_error};

/// How long a metadata request waits for the current bootstrap broker before it asks the
/// next one too (metadata answers in milliseconds).
const HEDGE_AFTER: Duration = Duration::from_millis(150);

/// Leaders and partition counts of the topics the client has looked up.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metadata {
    brokers: HashMap<i32, String>,
    /// topic → leader id per partition (-1 when offline).
    topics: HashMap<String, Vec<i32>>,
    /// When each topic's entry was last read from a broker.
    read_at: HashMap<String, shale_core::clock::Instant>,
    /// The broker that answered the last metadata request.
    from: String,
}

/// The outcome of the last leader lookup's metadata refresh, for the lookups that waited
/// for it: when it failed, they fail with it instead of each asking the unanswering
/// brokers again in turn.
#[derive(Debug, Default)]
pub(crate) struct LastRefresh {
    /// The topic it was for, and its failure (`None`: it succeeded).
    outcome: Option<(String, Option<Error>)>,
}

impl Client {
    /// The address of a broker, from cached metadata (refreshed once if unknown).
    pub async fn broker_address(&self, id: i32) -> Option<String> {
        if let Some(a) = self.cached(|md| md.brokers.get(&id).cloned()) {
            return Some(a);
        }
        self.refresh_metadata(&[]).await.ok()?;
        self.cached(|md| md.brokers.get(&id).cloned())
    }

    /// Asks `addr` for the brokers and leaders of `topics`.
    async fn metadata_from(
        &self,
        addr: &str,
        topics: &[String],
    ) -> Result<(String, pb::GetMetadataResponse), Error> {
        let request = pb::GetMetadataRequest { topics: topics.to_vec() };
        match self.admin_rpc_at(addr)?.get_metadata(request).await {
            Ok(resp) => Ok((addr.to_string(), resp.into_inner())),
            Err(s) => Err(locate(status_error(&s), addr, None, None)),
        }
    }

    /// Metadata from the current bootstrap broker, or, if it has not answered within
    /// [`HEDGE_AFTER`], from whichever of it and the next one answers first (a hedged
    /// request): a frozen broker (SIGSTOP, a paused VM) keeps its connections open and
    /// answers nothing, and a leader lookup must not wait for its connection to be given
    /// up. The one that answered becomes the current bootstrap broker.
    async fn metadata_hedged(
        &self,
        topics: &[String],
    ) -> Result<(String, pb::GetMetadataResponse), Error> {
        let n = self.inner.bootstrap.len();
        let i = self.inner.current.load(std::sync::atomic::Ordering::Relaxed);
        let first = self.inner.bootstrap[i % n].clone();
        let second = self.inner.bootstrap[(i + 1) % n].clone();
        let asked = self.metadata_from(&first, topics);
        if n < 2 {
            return asked.await;
        }
        tokio::pin!(asked);
        tokio::select! {
            answer = &mut asked => return answer,
            _ = shale_core::clock::sleep(HEDGE_AFTER) => {}
        }
        let hedge = self.metadata_from(&second, topics);
        tokio::pin!(hedge);
        let (answer, other, hedged) = tokio::select! {
            answer = &mut asked => (answer, hedge.as_mut(), false),
            answer = &mut hedge => (answer, asked.as_mut(), true),
        };
        let answer = match answer {
            Ok(answer) => Ok((answer, hedged)),
            Err(_) => other.await.map(|a| (a, !hedged)),
        };
        answer.map(|(answer, from_second)| {
            if from_second {
                let _ = self.inner.current.compare_exchange(
                    i,
                    i + 1,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            answer
        })
    }

    /// Re-reads brokers and leaders of `topics` (all topics when empty): from the bootstrap
    /// brokers, else from the other brokers the cluster named before.
    pub async fn refresh_metadata(&self, topics: &[String]) -> Result<(), Error> {
        let asked = self.retrying(|| self.metadata_hedged(topics)).await;
        let (from, resp) = match asked {
            Err(e) if e.kind.is_retriable() => {
                let others: Vec<String> = self
                    .cached(|md| Some(md.brokers.values().cloned().collect()))
                    .unwrap_or_default();
                let mut answer = Err(e);
                for addr in others.iter().filter(|a| !self.inner.bootstrap.contains(a)) {
                    answer = self.metadata_from(addr, topics).await;
                    if answer.is_ok() {
                        break;
                    }
                }
                answer?
            }
            other => other?,
        };
        let now = shale_core::clock::monotonic_now();
        let mut md =
            self.inner.metadata.write().map_err(|_| Error::internal("metadata poisoned"))?;
        md.from = from;
        for b in resp.brokers {
            md.brokers.insert(b.id, b.address);
        }
        for t in resp.topics {
            let Some(info) = t.topic else { continue };
            let mut leaders = vec![-1; info.partitions as usize];
            for p in t.partitions {
                if let Some(slot) = leaders.get_mut(p.partition as usize) {
                    *slot = p.leader_id;
                }
            }
            md.read_at.insert(info.name.clone(), now);
            md.topics.insert(info.name, leaders);
        }
        Ok(())
    }

    /// The broker that answered the last metadata request (a bootstrap broker before any).
    fn metadata_source(&self) -> String {
        self.cached(|md| Some(md.from.clone()).filter(|f| !f.is_empty()))
            .unwrap_or_else(|| self.bootstrap().to_string())
    }

    /// Number of partitions of a topic: cached, and read again once older than the
    /// metadata max age (a stale count is kept while no broker answers).
    pub async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        let max_age = self.inner.metadata_max_age;
        let now = shale_core::clock::monotonic_now();
        let cached = self.cached(|md| {
            let n = md.topics.get(topic)?.len() as u32;
            let fresh = md.read_at.get(topic).is_some_and(|at| now.duration_since(*at) < max_age);
            Some((n, fresh))
        });
        let located = |e| locate(e, &self.metadata_source(), Some(topic), None);
        match cached {
            Some((n, true)) => return Ok(n),
            Some((n, false)) => match self.refresh_metadata(&[topic.to_string()]).await {
                Ok(()) => {}
                Err(e) if e.kind == ErrorKind::NotFound => {
                    self.forget(topic);
                    return Err(located(e));
                }
                Err(e) => {
                    tracing::debug!(topic, error = %e, "metadata refresh failed; keeping the count");
                    return Ok(n);
                }
            },
            None => self.refresh_metadata(&[topic.to_string()]).await.map_err(located)?,
        }
        self.cached(|md| md.topics.get(topic).map(|l| l.len() as u32)).ok_or_else(|| {
            located(Error::new(
                ErrorKind::NotFound,
                Reason::UnknownTopic,
                format!("unknown topic {topic:?}"),
            ))
        })
    }

    /// [`partition_count`](Self::partition_count), retrying while no broker answers, for up
    /// to `policy.total`.
    pub async fn partition_count_within(
        &self,
        topic: &str,
        policy: RetryPolicy,
    ) -> Result<u32, Error> {
        // A cached answer (the producer's hot path) starts no backoff.
        policy.retry("metadata", || self.partition_count(topic)).await
    }

    /// Address of a partition's leader.
    pub async fn leader(&self, topic: &str, partition: u32) -> Result<String, Error> {
        if let Some(addr) = self.leader_cached(topic, partition) {
            return Ok(addr);
        }
        let located = |e| locate(e, &self.metadata_source(), Some(topic), Some(partition));
        {
            use std::sync::atomic::Ordering;
            let ended = self.inner.refreshes.load(Ordering::Acquire);
            let mut last = self.inner.refreshing.lock().await;
            // Another caller's refresh may have brought the answer meanwhile, or failed
            // for this topic while this one waited: nobody answered a moment ago.
            if let Some(addr) = self.leader_cached(topic, partition) {
                return Ok(addr);
            }
            let shared = match &last.outcome {
                Some((t, failed)) if t == topic => failed.clone(),
                _ => None,
            };
            match shared {
                Some(e) if self.inner.refreshes.load(Ordering::Acquire) != ended => {
                    return Err(e);
                }
                _ => {
                    let refreshed = self.refresh_metadata(&[topic.to_string()]).await;
                    let failed = refreshed.err().map(located);
                    last.outcome = Some((topic.to_string(), failed.clone()));
                    self.inner.refreshes.fetch_add(1, Ordering::AcqRel);
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
            }
        }
        if let Some(addr) = self.leader_cached(topic, partition) {
            return Ok(addr);
        }
        let count = self.partition_count(topic).await.map_err(located)?;
        if partition >= count {
            let e = shale_core::error::partition_out_of_range(topic, partition, count);
            return Err(located(e));
        }
        Err(located(Error::unavailable("no leader right now")))
    }

    /// Runs a request against a partition's leader; on `NOT_LEADER` or an unavailable
    /// broker it refreshes metadata and tries again (a few times, for about a second).
    pub async fn on_leader<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(LogClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.on_leader_within(topic, partition, RetryPolicy::QUICK, call).await
    }

    /// Runs a request against a partition's leader, waiting for one for up to
    /// `policy.total`: on `NOT_LEADER` or an unreachable broker it pauses (exponential
    /// backoff), looks the leader up again and retries. Errors name the broker and partition.
    pub async fn on_leader_within<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(LogClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.at_leader_within(topic, partition, policy, |addr| {
            let rpc = self.log_rpc(addr);
            let call = &call;
            async move {
                match rpc {
                    Ok(rpc) => call(rpc)
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| status_error(&s)),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    /// Runs a call against the address of a partition's leader, retried as
    /// [`on_leader_within`](Self::on_leader_within) retries: for requests of other services
    /// than `Log` that only the leader answers (DeleteRecords).
    pub async fn at_leader_within<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        policy: RetryPolicy,
        call: F,
    ) -> Result<T, Error>
    where
        F: Fn(&str) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut backoff = policy.start();
        loop {
            // A broker's answer is retried as reads and sends retry it (its metadata may be
            // behind); the cluster's own metadata saying the topic is gone is final.
            let e = match self.leader(topic, partition).await {
                Ok(addr) => match call(&addr).await {
                    Ok(resp) => return Ok(resp),
                    Err(e) if retry::worth_retrying(&e) => {
                        locate(e, &addr, Some(topic), Some(partition))
                    }
                    Err(e) => return Err(locate(e, &addr, Some(topic), Some(partition))),
                },
                Err(e) if e.kind.is_retriable() => e,
                Err(e) => return Err(e),
            };
            self.invalidate(topic);
            match backoff.next_delay() {
                Some(pause) => shale_core::clock::sleep(pause).await,
                None => return Err(retry::gave_up("leader", e, policy.total)),
            }
        }
    }

    /// Marks a topic's leaders and partition count stale so the next lookup asks the
    /// cluster again. What was known stays for lookups already under way (another task of
    /// this client may be between its refresh and its read), and as the partition count to
    /// fall back on while no broker answers.
    pub fn invalidate(&self, topic: &str) {
        if let Ok(mut md) = self.inner.metadata.write() {
            md.read_at.remove(topic);
        }
    }

    /// Forgets a topic the cluster says does not exist.
    fn forget(&self, topic: &str) {
        if let Ok(mut md) = self.inner.metadata.write() {
            md.topics.remove(topic);
            md.read_at.remove(topic);
        }
    }

    /// Test only: `topic` has one partition, led by broker `node` at `leader`, as if a
    /// metadata answer had just said so.
    #[cfg(test)]
    pub(crate) fn seed_metadata(&self, topic: &str, node: i32, leader: &str) {
        let mut md = self.inner.metadata.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        md.brokers.insert(node, leader.to_string());
        md.topics.insert(topic.to_string(), vec![node]);
        md.read_at.insert(topic.to_string(), shale_core::clock::monotonic_now());
    }

    fn leader_cached(&self, topic: &str, partition: u32) -> Option<String> {
        self.cached(|md| {
            md.read_at.get(topic)?;
            let leader = *md.topics.get(topic)?.get(partition as usize)?;
            md.brokers.get(&leader).cloned()
        })
    }

    fn cached<T>(&self, f: impl FnOnce(&Metadata) -> Option<T>) -> Option<T> {
        self.inner.metadata.read().ok().and_then(|md| f(&md))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// With no broker answering, the lookups that missed the leader cache together share
    /// the failure of the one refresh they waited for, rather than each running its own in
    /// turn behind the refresh lock: at 1,000 partitions that queue held a producer's
    /// deliveries for minutes after its only broker died (the crash suite's power cuts).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_waiting_on_a_failed_refresh_share_its_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // A dead broker's port, as far as a metadata request goes: every connection is
        // dropped at once. Each one counted is a refresh attempt.
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        shale_core::task::spawn_detached(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let client = Client::new(&addr).unwrap();
        let lookups: Vec<_> = (0..200)
            .map(|p| {
                let client = client.clone();
                shale_core::task::spawn_owned(async move { client.leader("t", p).await })
            })
            .collect();
        for lookup in lookups {
            let e = lookup.await.unwrap().expect_err("no broker answers");
            assert!(e.kind.is_retriable(), "{e}");
        }
        let attempts = accepted.load(Ordering::SeqCst);
        assert!(attempts <= 10, "{attempts} connection attempts for 200 lookups of one topic");
    }
}
