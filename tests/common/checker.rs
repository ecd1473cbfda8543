//! A produce history and a checker for fault tests: record what each produce call did
//! ([`ProduceLog`]), read the partitions back (from one or several replicas), and
//! [`check`] that every acknowledged record is there exactly once, in order, at the offset
//! its ack reported.
//!
//! ```ignore
//! let log = Arc::new(ProduceLog::new());
//! let op = log.invoke(partition, value.clone());    // just before sending
//! match produce(partition, &value).await {
//!     Ok(resp) => log.ok(op, resp.base_offset),
//!     Err(e) if e.kind == ErrorKind::Invalid => log.fail(op), // rejected: not written
//!     Err(_) => log.unknown(op),                       // timeout, reset: maybe written
//! }
//! // ... later, with faults healed:
//! checker::check(&log, &checker::from_records(&common::read_all(&client, topic).await))
//!     .assert_clean();
//! ```
//!
//! Each value must be unique within a log (the checker finds records by value); a retry is a
//! new `invoke` with a new value. Time is a logical clock: every `invoke` and every
//! completion takes the next tick, so "A's ack arrived before B was invoked" is exact for
//! calls made in that order, from any thread.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use bytes::Bytes;
use shale::client::ConsumerRecord;

/// One read of a topic: per partition, `(offset, value)` in the order read.
pub(crate) type Read = BTreeMap<u32, Vec<(i64, Bytes)>>;

/// Identifies one produce call in a [`ProduceLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OpId(usize);

/// How a produce call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Invoked, not completed yet (checked like `Unknown`).
    Pending,
    /// Acknowledged at this offset.
    Ok(i64),
    /// Definitely not written (e.g. rejected before it was sent).
    Fail,
    /// May or may not be written (timeout, connection lost).
    Unknown,
}

/// One produce call.
#[derive(Debug, Clone)]
struct Op {
    partition: u32,
    value: Bytes,
    invoked_at: u64,
    completed_at: Option<u64>,
    outcome: Outcome,
    /// Leader epoch the ack reported, if the caller recorded it.
    epoch: Option<i32>,
}

#[derive(Debug, Default)]
struct History {
    ops: Vec<Op>,
    by_value: HashSet<(u32, Bytes)>,
    clock: u64,
    max_epoch: Option<i32>,
}

/// A thread-safe record of produce calls and their outcomes.
#[derive(Debug, Default)]
pub(crate) struct ProduceLog {
    history: Mutex<History>,
}

impl ProduceLog {
    /// An empty log.
    pub(crate) fn new() -> ProduceLog {
        ProduceLog::default()
    }

    /// Records that a produce of `value` to `partition` is about to be sent.
    pub(crate) fn invoke(&self, partition: u32, value: impl Into<Bytes>) -> OpId {
        let value = value.into();
        let mut h = self.history.lock().expect("produce log lock");
        assert!(
            h.by_value.insert((partition, value.clone())),
            "value {} was already produced to partition {partition}: values must be unique",
            show(&value)
        );
        h.clock += 1;
        let op = Op {
            partition,
            value,
            invoked_at: h.clock,
            completed_at: None,
            outcome: Outcome::Pending,
            epoch: None,
        };
        h.ops.push(op);
        OpId(h.ops.len() - 1)
    }

    /// Records that `op` was acknowledged at `offset`.
    pub(crate) fn ok(&self, op: OpId, offset: i64) {
        self.complete(op, Outcome::Ok(offset));
    }

    /// Records that `op` was acknowledged at `offset` by the leader of `epoch`.
    pub(crate) fn ok_at_epoch(&self, op: OpId, offset: i64, epoch: i32) {
        self.complete(op, Outcome::Ok(offset));
        let mut h = self.history.lock().expect("produce log lock");
        h.ops[op.0].epoch = Some(epoch);
        h.max_epoch = h.max_epoch.max(Some(epoch));
    }

    /// Records that `op` was definitely not written.
    pub(crate) fn fail(&self, op: OpId) {
        self.complete(op, Outcome::Fail);
    }

    /// Records that `op` may or may not have been written.
    pub(crate) fn unknown(&self, op: OpId) {
        self.complete(op, Outcome::Unknown);
    }

    /// How `op` ended so far.
    pub(crate) fn outcome(&self, op: OpId) -> Outcome {
        self.history.lock().expect("produce log lock").ops[op.0].outcome
    }

    /// The highest leader epoch an ack reported, if any did.
    pub(crate) fn max_acked_epoch(&self) -> Option<i32> {
        self.history.lock().expect("produce log lock").max_epoch
    }

    /// Number of acknowledged ops.
    pub(crate) fn acknowledged(&self) -> usize {
        let h = self.history.lock().expect("produce log lock");
        h.ops.iter().filter(|o| matches!(o.outcome, Outcome::Ok(_))).count()
    }

    /// One past the highest offset acknowledged on `partition` (0 when none was).
    pub(crate) fn acked_end(&self, partition: u32) -> i64 {
        let h = self.history.lock().expect("produce log lock");
        h.ops
            .iter()
            .filter(|o| o.partition == partition)
            .filter_map(|o| match o.outcome {
                Outcome::Ok(offset) => Some(offset + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    fn complete(&self, op: OpId, outcome: Outcome) {
        let mut h = self.history.lock().expect("produce log lock");
        h.clock += 1;
        let clock = h.clock;
        let o = h.ops.get_mut(op.0).expect("an OpId from this log");
        assert_eq!(
            o.outcome,
            Outcome::Pending,
            "op {} on partition {} completed twice (now {outcome:?})",
            show(&o.value),
            o.partition
        );
        o.outcome = outcome;
        o.completed_at = Some(clock);
    }

    fn snapshot(&self) -> Vec<Op> {
        self.history.lock().expect("produce log lock").ops.clone()
    }
}

/// What [`check`] found. Anomaly counts are of distinct ops, values or offsets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// Ops acknowledged.
    pub acknowledged: usize,
    /// Acknowledged ops whose value is absent from at least one read.
    pub lost: usize,
    /// Values found at more than one offset of a partition (any op, any read).
    pub duplicated: usize,
    /// Acknowledged ops B read before some acknowledged A of the same partition whose ack
    /// arrived before B was invoked.
    pub reordered: usize,
    /// Acknowledged values read at another offset than their ack's, plus offsets holding
    /// different values (across reads or within one), plus offsets not increasing in a read.
    pub inconsistent_offsets: usize,
    /// Ops recorded as failed (definitely not written) whose value was read anyway.
    pub failed_present: usize,
    /// Values read that no op of the partition produced.
    pub unexpected: usize,
    /// Acked ops whose ack came from a leader epoch older than one that had already
    /// acknowledged an op of the same partition before this op was invoked: two leaders
    /// acknowledging in the same period.
    pub stale_epoch_acks: usize,
    /// Ops recorded as failed (informational).
    pub failed: usize,
    /// Unknown or pending ops found in some read (informational).
    pub unknown_present: usize,
    /// Unknown or pending ops found in no read (informational).
    pub unknown_absent: usize,
    /// The first few anomalies, described.
    pub examples: Vec<String>,
}

/// Anomalies described in [`Report::examples`] per kind.
const EXAMPLES_PER_KIND: usize = 3;

impl Report {
    /// True when no anomaly was found (the informational counts do not matter).
    pub(crate) fn is_clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.inconsistent_offsets == 0
            && self.failed_present == 0
            && self.unexpected == 0
            && self.stale_epoch_acks == 0
    }

    /// Panics with the report unless it is clean.
    pub(crate) fn assert_clean(&self) {
        assert!(self.is_clean(), "checker found anomalies: {self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acknowledged: {} lost, {} duplicated, {} reordered, {} inconsistent offsets, \
             {} failed but present, {} unexpected, {} stale-epoch acks; {} failed, unknown {} \
             present / {} absent",
            self.acknowledged,
            self.lost,
            self.duplicated,
            self.reordered,
            self.inconsistent_offsets,
            self.failed_present,
            self.unexpected,
            self.stale_epoch_acks,
            self.failed,
            self.unknown_present,
            self.unknown_absent
        )?;
        for e in &self.examples {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Converts `common::read_all` output to a [`Read`] (a null value reads as empty).
pub(crate) fn from_records(records: &BTreeMap<u32, Vec<ConsumerRecord>>) -> Read {
    records
        .iter()
        .map(|(p, rs)| {
            (*p, rs.iter().map(|r| (r.offset, r.value.clone().unwrap_or_default())).collect())
        })
        .collect()
}

/// Checks `log` against one read of the topic.
pub(crate) fn check(log: &ProduceLog, read: &Read) -> Report {
    check_reads(log, &[read])
}

/// Checks `log` against several reads (e.g. one per replica): each must hold every
/// acknowledged op, and they must agree on what each offset holds.
pub(crate) fn check_reads(log: &ProduceLog, reads: &[&Read]) -> Report {
    let ops = log.snapshot();
    let mut r = Report::default();
    let mut examples = Examples::default();
    let index: HashMap<(u32, &[u8]), usize> =
        ops.iter().enumerate().map(|(i, o)| ((o.partition, o.value.as_ref()), i)).collect();

    // Where each op's value was read: found[op][read] = offsets, in read order.
    let mut found: Vec<Vec<Vec<i64>>> = vec![vec![vec![]; reads.len()]; ops.len()];
    let mut unexpected: HashSet<(u32, &[u8])> = HashSet::new();
    let mut slots: BTreeMap<(u32, i64), HashSet<&[u8]>> = BTreeMap::new();
    for (ri, read) in reads.iter().enumerate() {
        for (&p, records) in read.iter() {
            for w in records.windows(2) {
                if w[1].0 <= w[0].0 {
                    r.inconsistent_offsets += 1;
                    examples.add("offset", || {
                        format!("read {ri} partition {p}: offset {} follows {}", w[1].0, w[0].0)
                    });
                }
            }
            for (offset, value) in records {
                slots.entry((p, *offset)).or_default().insert(value.as_ref());
                match index.get(&(p, value.as_ref())) {
                    Some(&op) => found[op][ri].push(*offset),
                    None => {
                        if unexpected.insert((p, value.as_ref())) {
                            examples.add("unexpected", || {
                                format!("partition {p} offset {offset}: unexpected {}", show(value))
                            });
                        }
                    }
                }
            }
        }
    }
    r.unexpected = unexpected.len();
    for ((p, offset), values) in &slots {
        if values.len() > 1 {
            r.inconsistent_offsets += 1;
            examples.add("offset", || {
                let mut vs: Vec<String> = values.iter().map(|v| show(v)).collect();
                vs.sort();
                format!(
                    "partition {p} offset {offset} holds {} values: {}",
                    vs.len(),
                    vs.join(", ")
                )
            });
        }
    }

    for (i, op) in ops.iter().enumerate() {
        let name = || format!("{} (partition {})", show(&op.value), op.partition);
        let mut distinct: Vec<i64> = found[i].iter().flatten().copied().collect();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > 1 || found[i].iter().any(|offsets| offsets.len() > 1) {
            r.duplicated += 1;
            examples.add("duplicated", || format!("{} read at offsets {distinct:?}", name()));
        }
        let present = !distinct.is_empty();
        match op.outcome {
            Outcome::Ok(acked) => {
                r.acknowledged += 1;
                let missing: Vec<usize> =
                    (0..reads.len()).filter(|&ri| found[i][ri].is_empty()).collect();
                if !missing.is_empty() {
                    r.lost += 1;
                    examples.add("lost", || {
                        format!("{} acked at offset {acked}, absent from reads {missing:?}", name())
                    });
                }
                if distinct.iter().any(|&o| o != acked) {
                    r.inconsistent_offsets += 1;
                    examples.add("offset", || {
                        format!("{} acked at offset {acked}, read at {distinct:?}", name())
                    });
                }
            }
            Outcome::Fail => {
                r.failed += 1;
                if present {
                    r.failed_present += 1;
                    examples.add("failed_present", || {
                        format!("{} failed but read at offsets {distinct:?}", name())
                    });
                }
            }
            Outcome::Unknown | Outcome::Pending => {
                if present {
                    r.unknown_present += 1;
                } else {
                    r.unknown_absent += 1;
                }
            }
        }
    }

    r.reordered = reordered(&ops, &found, reads.len(), &mut examples);
    r.stale_epoch_acks = stale_epoch_acks(&ops, &mut examples);
    r.examples = examples.lines;
    r
}

/// Counts acked ops B for which, in some read, an acked op A of the same partition whose ack
/// came before B's invoke is read at a later offset than B (first occurrences).
fn reordered(ops: &[Op], found: &[Vec<Vec<i64>>], reads: usize, examples: &mut Examples) -> usize {
    let mut bad: HashSet<usize> = HashSet::new();
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if matches!(op.outcome, Outcome::Ok(_)) {
            by_partition.entry(op.partition).or_default().push(i);
        }
    }
    // first[read][op]: the offset where the op's value is first read.
    let first: Vec<Vec<Option<i64>>> = (0..reads)
        .map(|ri| found.iter().map(|per_read| per_read[ri].first().copied()).collect())
        .collect();
    for acked in by_partition.values() {
        for positions in &first {
            let pos = |i: usize| positions[i];
            let read: Vec<usize> = acked.iter().copied().filter(|&i| pos(i).is_some()).collect();
            // `latest` is the A, acked before B's invoke, read last.
            for (b, latest) in max_acked_before(ops, &read, pos) {
                if let Some(a) = latest.filter(|&a| pos(a) > pos(b))
                    && bad.insert(b)
                {
                    examples.add("reordered", || {
                        format!(
                            "partition {}: {} (offset {:?}) was acked before {} (offset {:?}) \
                                 was sent, but is read after it",
                            ops[a].partition,
                            show(&ops[a].value),
                            pos(a).unwrap_or_default(),
                            show(&ops[b].value),
                            pos(b).unwrap_or_default()
                        )
                    });
                }
            }
        }
    }
    bad.len()
}

/// Counts acked ops B acknowledged at an epoch below that of some acked op A of the same
/// partition whose ack came before B was invoked. Leadership only moves forward, so once a
/// leader of epoch e has acknowledged, an ack from an older epoch for a later request means
/// two leaders were acknowledging at once.
fn stale_epoch_acks(ops: &[Op], examples: &mut Examples) -> usize {
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if matches!(op.outcome, Outcome::Ok(_)) && op.epoch.is_some() {
            by_partition.entry(op.partition).or_default().push(i);
        }
    }
    let mut bad = 0;
    for acked in by_partition.values() {
        // `highest` is the A with the highest epoch acked before B's invoke.
        for (b, highest) in max_acked_before(ops, acked, |i| ops[i].epoch) {
            if let Some(a) = highest.filter(|&a| ops[a].epoch > ops[b].epoch) {
                bad += 1;
                examples.add("stale_epoch", || {
                    format!(
                        "partition {}: {} was acked at epoch {:?} after {} had been acked at \
                         epoch {:?}",
                        ops[b].partition,
                        show(&ops[b].value),
                        ops[b].epoch.unwrap_or_default(),
                        show(&ops[a].value),
                        ops[a].epoch.unwrap_or_default()
                    )
                });
            }
        }
    }
    bad
}

/// For each op B of `acked`, in invoke order: the op A of `acked` with the largest `key`
/// (the first such) among those whose ack came before B was invoked. One sweep over both
/// orders, so linear after the sorts.
fn max_acked_before<K: PartialOrd>(
    ops: &[Op],
    acked: &[usize],
    key: impl Fn(usize) -> K,
) -> Vec<(usize, Option<usize>)> {
    let mut by_ack = acked.to_vec();
    let mut by_invoke = acked.to_vec();
    by_ack.sort_by_key(|&i| ops[i].completed_at);
    by_invoke.sort_by_key(|&i| ops[i].invoked_at);
    let mut best: Option<usize> = None;
    let mut next = 0;
    let mut out = Vec::with_capacity(by_invoke.len());
    for b in by_invoke {
        while next < by_ack.len() && ops[by_ack[next]].completed_at < Some(ops[b].invoked_at) {
            let a = by_ack[next];
            if best.is_none_or(|l| key(a) > key(l)) {
                best = Some(a);
            }
            next += 1;
        }
        out.push((b, best));
    }
    out
}

/// Collects a few descriptions per anomaly kind.
#[derive(Default)]
struct Examples {
    lines: Vec<String>,
    per_kind: HashMap<&'static str, usize>,
}

impl Examples {
    fn add(&mut self, kind: &'static str, describe: impl FnOnce() -> String) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n <= EXAMPLES_PER_KIND {
            self.lines.push(format!("{kind}: {}", describe()));
        }
    }
}

/// A value for messages: UTF-8 as a quoted string (shortened), otherwise its length.
fn show(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(s) if s.len() <= 40 => format!("{s:?}"),
        Ok(s) => format!("{:?}…", s.chars().take(40).collect::<String>()),
        Err(_) => format!("<{} bytes>", value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(parts: &[(u32, &[(i64, &str)])]) -> Read {
        parts
            .iter()
            .map(|(p, rs)| (*p, rs.iter().map(|(o, v)| (*o, Bytes::from(v.to_string()))).collect()))
            .collect()
    }

    /// Acks `values` of partition `p` one after another (each acked before the next is sent).
    fn acked_in_turn(log: &ProduceLog, p: u32, values: &[(&str, i64)]) {
        for (v, offset) in values {
            let op = log.invoke(p, v.to_string());
            log.ok(op, *offset);
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0), ("b", 1), ("c", 2)]);
        acked_in_turn(&log, 1, &[("x", 0)]);
        let failed = log.invoke(1, "never");
        log.fail(failed);
        let written = log.invoke(1, "maybe-yes");
        log.unknown(written);
        let absent = log.invoke(1, "maybe-no");
        log.unknown(absent);
        let _pending = log.invoke(0, "in-flight");
        let r = check(
            &log,
            &read(&[(0, &[(0, "a"), (1, "b"), (2, "c")]), (1, &[(0, "x"), (1, "maybe-yes")])]),
        );
        r.assert_clean();
        assert_eq!(
            (r.acknowledged, r.failed, r.unknown_present, r.unknown_absent),
            (4, 1, 1, 2),
            "{r}"
        );
    }

    #[test]
    fn a_lost_ack_is_found() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0), ("b", 1)]);
        let r = check(&log, &read(&[(0, &[(0, "a")])]));
        assert_eq!(r.lost, 1, "{r}");
        assert!(!r.is_clean());
        assert!(r.to_string().contains("lost: \"b\""), "{r}");
    }

    #[test]
    fn a_duplicate_is_found_even_for_an_unknown_op() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0)]);
        let u = log.invoke(0, "u");
        log.unknown(u);
        let r = check(&log, &read(&[(0, &[(0, "a"), (1, "u"), (2, "u")])]));
        assert_eq!(r.duplicated, 1, "{r}");
        assert_eq!(r.unknown_present, 1, "{r}");
        // The same record seen by two reads is not a duplicate.
        let once = read(&[(0, &[(0, "a")])]);
        check_reads(&log, &[&once, &once]).assert_clean();
    }

    #[test]
    fn reordering_counts_only_acks_that_preceded_the_later_invoke() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 1), ("b", 0)]);
        let r = check(&log, &read(&[(0, &[(0, "b"), (1, "a")])]));
        assert_eq!(r.reordered, 1, "{r}");
        assert!(r.to_string().contains("\"a\" (offset 1) was acked before \"b\""), "{r}");

        // Concurrent produces (both in flight at once) may land in either order.
        let log = ProduceLog::new();
        let a = log.invoke(0, "a");
        let b = log.invoke(0, "b");
        log.ok(a, 1);
        log.ok(b, 0);
        check(&log, &read(&[(0, &[(0, "b"), (1, "a")])])).assert_clean();
    }

    #[test]
    fn reordering_on_one_partition_ignores_the_others() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0)]);
        acked_in_turn(&log, 1, &[("b", 0)]);
        acked_in_turn(&log, 0, &[("c", 1)]);
        check(&log, &read(&[(0, &[(0, "a"), (1, "c")]), (1, &[(0, "b")])])).assert_clean();
    }

    #[test]
    fn an_ack_at_the_wrong_offset_is_inconsistent() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0), ("b", 5)]);
        let r = check(&log, &read(&[(0, &[(0, "a"), (1, "b")])]));
        assert_eq!(r.inconsistent_offsets, 1, "{r}");
        assert_eq!((r.lost, r.reordered), (0, 0), "{r}");
    }

    #[test]
    fn an_ack_from_an_older_epoch_after_a_newer_one_is_two_leaders() {
        let log = ProduceLog::new();
        let a = log.invoke(0, "a");
        log.ok_at_epoch(a, 0, 3);
        // Invoked after epoch 3 acknowledged, yet acknowledged by the epoch-2 leader.
        let b = log.invoke(0, "b");
        log.ok_at_epoch(b, 1, 2);
        // Overlapping calls may complete in any epoch order: not an anomaly.
        let c = log.invoke(0, "c");
        let d = log.invoke(0, "d");
        log.ok_at_epoch(d, 3, 4);
        log.ok_at_epoch(c, 2, 3);
        let r = check(&log, &read(&[(0, &[(0, "a"), (1, "b"), (2, "c"), (3, "d")])]));
        assert_eq!(r.stale_epoch_acks, 1, "{r}");
        assert!(!r.is_clean());
        assert!(r.examples.iter().any(|e| e.contains("\"b\" was acked at epoch 2")), "{r}");
    }

    #[test]
    fn replicas_that_disagree_on_an_offset_are_inconsistent() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0)]);
        let (x, y) = (log.invoke(0, "x"), log.invoke(0, "y"));
        log.unknown(x);
        log.unknown(y);
        let leader = read(&[(0, &[(0, "a"), (1, "x")])]);
        let follower = read(&[(0, &[(0, "a"), (1, "y")])]);
        let r = check_reads(&log, &[&leader, &follower]);
        assert_eq!(r.inconsistent_offsets, 1, "{r}");
        assert_eq!(r.unknown_present, 2, "{r}");
        assert!(r.to_string().contains("offset 1 holds 2 values"), "{r}");
    }

    #[test]
    fn a_replica_missing_an_ack_counts_as_lost() {
        let log = ProduceLog::new();
        acked_in_turn(&log, 0, &[("a", 0), ("b", 1)]);
        let full = read(&[(0, &[(0, "a"), (1, "b")])]);
        let short = read(&[(0, &[(0, "a")])]);
        let r = check_reads(&log, &[&full, &short]);
        assert_eq!(r.lost, 1, "{r}");
        assert!(r.to_string().contains("absent from reads [1]"), "{r}");
    }

    #[test]
    fn offsets_going_backwards_in_a_read_are_inconsistent() {
        let log = ProduceLog::new();
        let (a, b) = (log.invoke(0, "a"), log.invoke(0, "b"));
        log.unknown(a);
        log.unknown(b);
        let r = check(&log, &read(&[(0, &[(3, "a"), (2, "b")])]));
        assert_eq!(r.inconsistent_offsets, 1, "{r}");
    }

    #[test]
    fn a_failed_op_that_was_written_and_a_stranger_are_anomalies() {
        let log = ProduceLog::new();
        let f = log.invoke(0, "f");
        log.fail(f);
        let r = check(&log, &read(&[(0, &[(0, "f"), (1, "stranger")])]));
        assert_eq!((r.failed_present, r.unexpected, r.failed), (1, 1, 1), "{r}");
        assert!(!r.is_clean());
    }

    #[test]
    #[should_panic(expected = "must be unique")]
    fn a_reused_value_is_a_test_bug() {
        let log = ProduceLog::new();
        log.invoke(0, "a");
        log.invoke(0, "a");
    }

    #[test]
    #[should_panic(expected = "completed twice")]
    fn completing_twice_is_a_test_bug() {
        let log = ProduceLog::new();
        let a = log.invoke(0, "a");
        log.ok(a, 0);
        log.unknown(a);
    }

    #[test]
    fn concurrent_producers_share_one_log() {
        let log = std::sync::Arc::new(ProduceLog::new());
        let threads: Vec<_> = (0..4u32)
            .map(|p| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let op = log.invoke(p, format!("{p}-{i}"));
                        log.ok(op, i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all: Read = (0..4u32)
            .map(|p| (p, (0..100).map(|i| (i, Bytes::from(format!("{p}-{i}")))).collect()))
            .collect();
        let r = check(&log, &all);
        r.assert_clean();
        assert_eq!(r.acknowledged, 400);
    }
}
