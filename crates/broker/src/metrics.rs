//! Request metrics: produce and fetch traffic by topic, produce latency, and request
//! latency by front end and method (the front ends time their requests into it). Hot paths bump atomics or observe a histogram; the
//! admin listener encodes them at scrape time.

// The topics' counters are looked up per produce: foldhash (hashbrown's default).
use hashbrown::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Counters of one topic.
#[derive(Debug, Default)]
pub struct TopicCounters {
    /// Produce requests (batches appended or refused).
    pub produce_requests: AtomicU64,
    /// Produce requests that failed.
    pub produce_errors: AtomicU64,
    /// Bytes of record batches appended.
    pub produce_bytes: AtomicU64,
    /// Fetch requests (streams opened by consumers and followers).
    pub fetch_requests: AtomicU64,
    /// Bytes of record batches sent to fetchers.
    pub fetch_bytes: AtomicU64,
}

/// One label set: `method` for gRPC latency.
pub type MethodLabels = Vec<(String, String)>;

/// The stages of a produce request inside the broker, each timed on its own, so that a
/// tail can be traced to where it was spent (`produce_stage_seconds{stage=...}`).
#[derive(Debug, Clone)]
pub struct ProduceStages {
    family: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// From handing the append to a blocking thread until it starts there.
    pub append_queue: Histogram,
    /// The append itself: validation, the append lock, the write.
    pub append: Histogram,
    /// From the append's end on its blocking thread until the request's task resumes.
    pub append_resume: Histogram,
    /// Waiting for the group commit fsync that covers the request (flush.policy=always).
    pub fsync: Histogram,
    /// Waiting for the in-sync replicas to reach the request's end (acks=all).
    pub replicate: Histogram,
    /// From the request being acknowledged until its answer is handed to the stream.
    pub answer: Histogram,
}

impl Default for ProduceStages {
    fn default() -> Self {
        let family: Family<MethodLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(fine_histogram);
        let stage = |name: &str| {
            family.get_or_create(&vec![("stage".to_string(), name.to_string())]).clone()
        };
        ProduceStages {
            append_queue: stage("append_queue"),
            append: stage("append"),
            append_resume: stage("append_resume"),
            fsync: stage("fsync"),
            replicate: stage("replicate"),
            answer: stage("answer"),
            family,
        }
    }
}

impl ProduceStages {
    /// The histograms by `stage` label, for the registry.
    pub fn family(&self) -> Family<MethodLabels, Histogram, fn() -> Histogram> {
        self.family.clone()
    }
}

/// Records the time since `since` in `h`, in seconds.
pub fn observe_since(h: &Histogram, since: shale_core::clock::Instant) {
    h.observe(since.elapsed().as_secs_f64());
}

/// 10 µs .. ~5 s: the produce stages are sub-millisecond when things go well.
fn fine_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00001, 2.0, 20))
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// What the broker counts about requests.
#[derive(Debug)]
pub struct RequestMetrics {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    /// Produce latency, append to acknowledgement (acks as asked), in seconds.
    pub produce_latency: Histogram,
    /// Produce latency by stage inside the broker.
    pub produce_stages: Arc<ProduceStages>,
    /// gRPC request latency by method, until the response (or stream) starts, in seconds.
    pub grpc_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Kafka requests by API (label `api`), from the request read to its answer handed to
    /// the connection, in seconds.
    pub kafka_latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Time requests were held to keep principals within quota, by quota, in seconds.
    pub quota_delay: Family<MethodLabels, Counter<f64, AtomicU64>>,
    /// Requests refused for being too far over quota, by quota.
    pub quota_refused: Family<MethodLabels, Counter>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            topics: RwLock::new(HashMap::new()),
            produce_latency: latency_histogram(),
            produce_stages: Arc::default(),
            grpc_latency: Family::new_with_constructor(latency_histogram),
            kafka_latency: Family::new_with_constructor(latency_histogram),
            quota_delay: Family::default(),
            quota_refused: Family::default(),
        }
    }
}

impl RequestMetrics {
    /// The counters of `topic`, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        if let Some(c) = self.topics.read().ok().and_then(|m| m.get(topic).cloned()) {
            return c;
        }
        let Ok(mut m) = self.topics.write() else { return Arc::default() };
        m.entry(topic.to_string()).or_default().clone()
    }

    /// Keeps the counters of `live` topics only (deleted topics drop out).
    pub fn retain_topics(&self, live: &[String]) {
        if let Ok(mut m) = self.topics.write() {
            m.retain(|t, _| live.binary_search(t).is_ok());
        }
    }

    /// Every topic's counters, sorted by name.
    pub fn topics(&self) -> Vec<(String, Arc<TopicCounters>)> {
        let mut v: Vec<_> = self
            .topics
            .read()
            .map(|m| m.iter().map(|(k, c)| (k.clone(), c.clone())).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Counts a request held `wait` by quota `kind`.
    pub fn quota_delayed(&self, kind: &str, wait: Duration) {
        let labels = vec![("quota".to_string(), kind.to_string())];
        self.quota_delay.get_or_create(&labels).inc_by(wait.as_secs_f64());
    }

    /// Counts a request refused by quota `kind`.
    pub fn quota_refused(&self, kind: &str) {
        let labels = vec![("quota".to_string(), kind.to_string())];
        self.quota_refused.get_or_create(&labels).inc();
    }

    /// Records a finished produce request.
    pub fn produced(&self, topic: &TopicCounters, bytes: u64, ok: bool, took: Duration) {
        topic.produce_requests.fetch_add(1, Ordering::Relaxed);
        if ok {
            topic.produce_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.produce_latency.observe(took.as_secs_f64());
        } else {
            topic.produce_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
