#!/usr/bin/env python3
"""Shale compatibility check with confluent-kafka (librdkafka).

Usage: confluent_client.py BOOTSTRAP SCENARIO PREFIX [--strategy range|cooperative-sticky]
  roundtrip: create {PREFIX}-rt (3 partitions) with the AdminClient, produce 200
             records per codec (none, gzip, snappy, lz4, zstd) with acks=all and
             idempotence, read the whole topic back by manual assignment (no
             group) and check key, value, headers and timestamp byte for byte.
  group:     create {PREFIX}-g (4 partitions), produce 400 records; consumer 1 of
             group {PREFIX}-grp takes exactly 150 records committing each one
             synchronously, closes and so leaves the group; consumer 2 takes the
             other 250 the same way; the group's committed offsets (read with
             Consumer.committed) must add up to 400; consumer 3 must then see
             nothing in 3 s. Members ask for a 30 s session timeout and each must
             be assigned all 4 partitions within 10 s, so a member that did not
             leave holds up the next one's join and fails the check.
  rebalance: create {PREFIX}-rb (6 partitions), produce 600 records; three members
             of group {PREFIX}-rb-grp (threads) with partition.assignment.strategy
             --strategy (default range: eager; cooperative-sticky: incremental)
             commit each record synchronously and what they processed in
             on_revoke; member 0 leaves after 100 records, and once the other two
             own all 6 partitions member 3 joins. Every record must be consumed
             exactly once (JSON: duplicates, missing), the group's committed
             offsets must add up to 600. Commits the broker refuses while a
             rebalance is under way (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, as
             Kafka does) are counted in commit_errors but fail nothing by themselves.
             Use a new PREFIX for each run.
The last stdout line is one JSON object; exit 0 only if every check passed,
otherwise exit 1 with a one-line reason on stderr. Every wait is bounded; a
watchdog ends the run after 58 s.
"""
import argparse
import logging
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME
from confluent_kafka.admin import AdminClient, NewTopic

import scenario
from scenario import JOIN_LIMIT_S, SESSION_TIMEOUT_MS

report = scenario.Report("confluent-kafka")
result, set_step, finish = report.result, report.set_step, report.finish
client_errors = []  # errors librdkafka reported through error_cb, for the failure reason
report.reason_suffix = lambda: (" (last client error: %s)" % client_errors[-1]
                                if client_errors else "")


def on_client_error(err):
    client_errors.append(str(err))


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=10, request_timeout=15)
    futures[topic].result(timeout=15)
    # Wait until metadata shows every partition with a leader.
    deadline = time.time() + 10
    while time.time() < deadline:
        md = admin.list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions \
                and all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise RuntimeError("topic %s not visible with %d partitions after 10 s" % (topic, partitions))


class FallbackWatcher(logging.Handler):
    def __init__(self, codec):
        super().__init__()
        self.codec = codec

    def emit(self, record):
        if "not compressing batch" in record.getMessage() \
                and self.codec not in result.setdefault("not_compressed", []):
            result["not_compressed"].append(self.codec)
            sys.stderr.write("warning: librdkafka sent %s batches uncompressed: %s\n"
                             % (self.codec, record.getMessage()))


def produce(bootstrap, topic, records, codec="none"):
    """records: list of (key, value, headers, timestamp or None). Returns delivered count."""
    errors = []
    delivered = [0]

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[0] += 1

    conf = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "compression.type": codec, "linger.ms": 5, "message.timeout.ms": 20000}
    if codec != "none":
        # librdkafka silently sends a batch uncompressed when it believes the broker
        # lacks the codec (it infers LZ4 support from FindCoordinator); watch its
        # debug log for that and report it in the JSON as "not_compressed".
        watcher = logging.getLogger("librdkafka-" + codec)
        watcher.propagate = False
        watcher.setLevel(logging.DEBUG)
        watcher.addHandler(FallbackWatcher(codec))
        conf.update({"debug": "msg", "logger": watcher})
    p = Producer(conf)
    for key, value, headers, ts in records:
        kwargs = {"key": key, "value": value, "on_delivery": on_delivery}
        if headers is not None:
            kwargs["headers"] = headers
        if ts is not None:
            kwargs["timestamp"] = ts
        p.produce(topic, **kwargs)
        p.poll(0)
    remaining = p.flush(25)
    if remaining:
        raise RuntimeError("codec %s: %d records still undelivered after 25 s" % (codec, remaining))
    if errors:
        raise RuntimeError("codec %s: delivery failed: %s" % (codec, errors[0]))
    return delivered[0]


def roundtrip(bootstrap, prefix):
    topic = prefix + "-rt"
    check = scenario.ReadBack(result)
    result["not_compressed"] = []
    set_step("create topic " + topic)
    create_topic(bootstrap, topic, 3)
    for codec, records in check.batches():
        set_step("produce " + codec)
        result["produced"] += produce(bootstrap, topic, records, codec)

    # Manual assignment only: confluent-kafka insists on a group.id, but with
    # assign() and auto commit off the group is never joined nor committed to.
    set_step("read back")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": prefix + "-rt-unused",
                  "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "enable.partition.eof": True})
    high = {}
    for p in range(3):
        _low, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        high[p] = hi
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    done = {p for p in range(3) if high[p] == 0}
    deadline = time.time() + 30
    while len(done) < 3 and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                if msg.offset() >= high[msg.partition()]:
                    done.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        if msg.offset() + 1 >= high[msg.partition()]:
            done.add(msg.partition())
        ts_type, ts = msg.timestamp()
        check.check(msg.key(), msg.value(), msg.headers(), ts, ts_type == TIMESTAMP_CREATE_TIME)
    c.close()
    problem = check.problem()
    finish(problem is None, problem)


def group_consumer(bootstrap, group, topic, joins):
    """A member of `group` subscribed to `topic`; each assignment appends
    (partition count, seconds since subscribe) to `joins`."""
    start = time.time()

    def on_assign(_consumer, partitions):
        joins.append((len(partitions), time.time() - start))

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000,
                  "error_cb": on_client_error})
    c.subscribe([topic], on_assign=on_assign)
    return c


def commit_sync(c, **kwargs):
    """Commits synchronously; raises on any error, the per-partition ones included."""
    for tp in c.commit(asynchronous=False, **kwargs) or []:
        if tp.error is not None:
            raise KafkaException(tp.error)


def take(c, want, limit_s, seen, counts):
    """Poll until `want` records were processed; commit each one synchronously."""
    got = 0
    deadline = time.time() + limit_s
    while got < want and time.time() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got += 1
        ident = msg.value()
        if ident in seen:
            counts["duplicates"] += 1
        seen.add(ident)
        commit_sync(c, message=msg)  # commits offset + 1 of this record
    return got


def joined(name, joins, partitions, within_s):
    problem = scenario.join_problem(result, name, joins, partitions, within_s)
    if problem:
        finish(False, problem)


def group(bootstrap, prefix):
    topic, grp = prefix + "-g", prefix + "-grp"
    scenario.start_group(result)
    set_step("create topic " + topic)
    create_topic(bootstrap, topic, 4)
    set_step("produce")
    produce(bootstrap, topic, [(b"k%d" % i, b"v%d" % i, None, None) for i in range(400)])
    seen = set()

    set_step("consumer 1")
    joins = []
    c1 = group_consumer(bootstrap, grp, topic, joins)
    result["first"] = take(c1, 150, 20, seen, result)
    c1.close()  # leaves the group
    if result["first"] != 150:
        hint = ""
        if result["first"] == 0:
            hint = (" (never joined the group? librdkafka waits silently when the broker"
                    " does not advertise FindCoordinator/JoinGroup/SyncGroup/Heartbeat/"
                    "LeaveGroup/OffsetCommit/OffsetFetch)")
        finish(False, "consumer 1 got %d/150 records within 20 s%s" % (result["first"], hint))
    joined("consumer 1", joins, 4, 20)

    set_step("consumer 2")
    joins = []
    c2 = group_consumer(bootstrap, grp, topic, joins)
    result["second"] = take(c2, 250, 20, seen, result)
    c2.close()
    joined("consumer 2", joins, 4, 20)
    result["missing"] = len({b"v%d" % i for i in range(400)} - seen)
    if result["second"] != 250:
        finish(False, "consumer 2 got %d/250 records within 20 s" % result["second"])

    # What the group committed, read back through OffsetFetch by a consumer that
    # does not join the group.
    set_step("committed offsets")
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": grp,
                      "enable.auto.commit": False, "error_cb": on_client_error})
    tps = probe.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
    probe.close()
    for tp in tps:
        if tp.error is not None:
            finish(False, "committed offset of partition %d: %s" % (tp.partition, tp.error))
    committed = [tp.offset if tp.offset >= 0 else None
                 for tp in sorted(tps, key=lambda t: t.partition)]
    problem = scenario.committed_problem(result, committed, 400)
    if problem:
        finish(False, problem)

    set_step("consumer 3")
    joins = []
    c3 = group_consumer(bootstrap, grp, topic, joins)
    deadline = time.time() + JOIN_LIMIT_S + 2
    extra = 0
    while not joins and time.time() < deadline:
        msg = c3.poll(0.2)
        if msg is not None and not msg.error():
            extra += 1
    if not joins:
        c3.close()
    joined("consumer 3", joins, 4, JOIN_LIMIT_S + 2)
    deadline = time.time() + 3
    while time.time() < deadline:
        msg = c3.poll(0.2)
        if msg is not None and not msg.error():
            extra += 1
    c3.close()
    problem = scenario.group_problem(result, extra)
    finish(problem is None, problem)


RB_PARTITIONS = 6
RB_RECORDS = 600
RB_LEAVE_AFTER = 100  # member 0 leaves the group after this many records
RB_PACE_S = 0.01  # per record, so that members leave and join while the others consume
RB_GRACE_S = 2  # members go on polling this long after the last record, for late duplicates


class Member(threading.Thread):
    """One consumer of the rebalance group, in a thread of its own. It commits each
    record synchronously, and in on_revoke commits what it processed of the revoked
    partitions. It never assigns by itself: confluent-kafka's rebalance callback does,
    after on_assign/on_revoke, with assign/unassign for eager strategies and
    incremental_assign/incremental_unassign for cooperative ones, and hands both
    callbacks only the partitions that change."""

    def __init__(self, index, bootstrap, group, topic, strategy, shared, leave_after=None):
        super().__init__(name="member-%d" % index, daemon=True)
        self.index, self.bootstrap, self.group, self.topic = index, bootstrap, group, topic
        self.strategy, self.shared, self.leave_after = strategy, shared, leave_after
        self.got = 0
        self.owned = set()  # partitions assigned now
        self.positions = {}  # partition -> offset after the last record processed while owned
        self.events = []  # ("assign"|"revoke"|"lost", [partitions], seconds since start)
        self.commit_errors = []
        self.error = None
        self.closed = False

    def log_event(self, kind, partitions):
        self.events.append((kind, sorted(tp.partition for tp in partitions),
                            round(time.time() - self.shared["start"], 2)))

    def commit_sync(self, c, where, **kwargs):
        at = "member %d at %.2f s (%s)" % (self.index, time.time() - self.shared["start"], where)
        try:
            for tp in c.commit(asynchronous=False, **kwargs) or []:
                if tp.error is not None:
                    self.commit_errors.append("%s partition %d: %s" % (at, tp.partition, tp.error))
        except KafkaException as e:
            self.commit_errors.append("%s: %s" % (at, e))

    def on_assign(self, _c, partitions):
        self.log_event("assign", partitions)
        with self.shared["lock"]:
            for tp in partitions:
                self.owned.add(tp.partition)
                self.positions.pop(tp.partition, None)

    def on_revoke(self, c, partitions):
        self.log_event("revoke", partitions)
        # Eager: every owned partition; cooperative: only those moving elsewhere.
        done = [TopicPartition(self.topic, tp.partition, self.positions[tp.partition])
                for tp in partitions if tp.partition in self.positions]
        if done:
            self.commit_sync(c, "on_revoke", offsets=done)
        with self.shared["lock"]:
            for tp in partitions:
                self.owned.discard(tp.partition)
                self.positions.pop(tp.partition, None)

    def on_lost(self, _c, partitions):
        self.log_event("lost", partitions)
        with self.shared["lock"]:
            for tp in partitions:
                self.owned.discard(tp.partition)
                self.positions.pop(tp.partition, None)

    def run(self):
        try:
            self.consume()
        except Exception as e:  # reported by the main thread
            self.error = "%s: %s" % (type(e).__name__, e)

    def consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group,
                      "partition.assignment.strategy": self.strategy,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                      "error_cb": on_client_error})
        c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                    on_lost=self.on_lost)
        stop, counts, lock = self.shared["stop"], self.shared["counts"], self.shared["lock"]
        try:
            while not stop.is_set() and (self.leave_after is None or self.got < self.leave_after):
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    raise KafkaException(msg.error())
                with lock:
                    counts[msg.value()] = counts.get(msg.value(), 0) + 1
                self.got += 1
                self.positions[msg.partition()] = msg.offset() + 1
                self.commit_sync(c, "record", message=msg)
                time.sleep(RB_PACE_S)
        finally:
            c.close()  # on_revoke (commits), then LeaveGroup
            self.closed = True

    def report(self):
        return {"member": self.index, "got": self.got, "events": self.events,
                "commit_errors": len(self.commit_errors)}


def rebalance(bootstrap, prefix, strategy):
    topic, grp = prefix + "-rb", prefix + "-rb-grp"
    result.update({"scenario": "rebalance", "strategy": strategy, "produced": 0, "consumed": 0,
                   "distinct": 0, "duplicates": 0, "missing": None, "committed": None,
                   "commit_errors": 0})
    set_step("create topic " + topic)
    create_topic(bootstrap, topic, RB_PARTITIONS)
    set_step("produce")
    expected = {b"v%d" % i for i in range(RB_RECORDS)}
    result["produced"] = produce(bootstrap, topic,
                                 [(b"k%d" % i, b"v%d" % i, None, None) for i in range(RB_RECORDS)])
    shared = {"stop": threading.Event(), "counts": {}, "lock": threading.Lock(),
              "start": time.time()}
    members = [Member(i, bootstrap, grp, topic, strategy, shared,
                      RB_LEAVE_AFTER if i == 0 else None) for i in range(3)]

    def fail_if_broken(reason=None):
        with shared["lock"]:
            counts = dict(shared["counts"])
        result["consumed"] = sum(counts.values())
        result["distinct"] = len(set(counts) & expected)
        result["duplicates"] = sum(n - 1 for n in counts.values())
        result["missing"] = len(expected - set(counts))
        result["mismatched"] = len(set(counts) - expected)
        result["members"] = [m.report() for m in members]
        result["commit_errors"] = sum(len(m.commit_errors) for m in members)
        result["commit_error_samples"] = [e for m in members for e in m.commit_errors][:5]
        errors = [m.error for m in members if m.error]
        if errors or reason:
            shared["stop"].set()
            finish(False, "%s (member errors: %s; first commit error: %s)" % (
                reason or "a member failed", errors,
                next((e for m in members for e in m.commit_errors), None)))

    set_step("three members consume")
    for m in members:
        m.start()
    deadline = time.time() + 40
    members[0].join(timeout=max(0, deadline - time.time()))
    fail_if_broken()
    if members[0].is_alive():
        fail_if_broken("member 0 did not read %d records and leave within 40 s (read %d)"
                       % (RB_LEAVE_AFTER, members[0].got))
    # Member 3 joins only once members 1 and 2 took over member 0's partitions, so
    # that the leave and the join are two rebalances.
    set_step("members 1 and 2 take over member 0's partitions")
    while True:
        with shared["lock"]:
            owned = set().union(*(m.owned for m in members[1:]))
        if len(owned) == RB_PARTITIONS:
            break
        fail_if_broken()
        if time.time() > deadline:
            fail_if_broken("members 1 and 2 own partitions %s, not all %d, after member 0 "
                           "left" % (sorted(owned), RB_PARTITIONS))
        time.sleep(0.05)
    set_step("member 3 joins")
    members.append(Member(3, bootstrap, grp, topic, strategy, shared))
    members[3].start()
    set_step("consume all %d records" % RB_RECORDS)
    while time.time() < deadline:
        fail_if_broken()
        with shared["lock"]:
            if len(expected - set(shared["counts"])) == 0:
                break
        time.sleep(0.1)
    time.sleep(RB_GRACE_S)
    set_step("close the members")
    shared["stop"].set()
    for m in members:
        m.join(timeout=10)
    fail_if_broken()
    if any(m.is_alive() for m in members):
        fail_if_broken("members %s did not close within 10 s"
                       % [m.index for m in members if m.is_alive()])
    if not any(kind == "assign" and parts for kind, parts, _t in members[3].events):
        fail_if_broken("member 3 joined but was never assigned a partition")

    set_step("committed offsets")
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": grp,
                      "enable.auto.commit": False, "error_cb": on_client_error})
    tps = probe.committed([TopicPartition(topic, p) for p in range(RB_PARTITIONS)], timeout=10)
    probe.close()
    result["committed_by_partition"] = [tp.offset for tp in sorted(tps, key=lambda t: t.partition)]
    result["committed"] = sum(tp.offset for tp in tps if tp.error is None and tp.offset >= 0)
    result["elapsed_s"] = round(time.time() - shared["start"], 1)
    ok = (result["duplicates"] == 0 and result["missing"] == 0 and result["mismatched"] == 0
          and result["distinct"] == RB_RECORDS and result["committed"] == RB_RECORDS)
    finish(ok, None if ok else "rebalance (%s) check failed: consumed=%d distinct=%d duplicates=%d "
           "missing=%d committed=%d commit_errors=%d (first: %s)" % (
               strategy, result["consumed"], result["distinct"], result["duplicates"],
               result["missing"], result["committed"], result["commit_errors"],
               next((e for m in members for e in m.commit_errors), None)))


def main():
    parser = argparse.ArgumentParser(usage="%(prog)s BOOTSTRAP roundtrip|group|rebalance PREFIX "
                                           "[--strategy range|cooperative-sticky]")
    parser.add_argument("bootstrap")
    parser.add_argument("scenario", choices=["roundtrip", "group", "rebalance"])
    parser.add_argument("prefix")
    parser.add_argument("--strategy", choices=["range", "cooperative-sticky"], default="range",
                        help="partition.assignment.strategy of the rebalance scenario")
    args = parser.parse_args()
    report.start_watchdog()
    try:
        if args.scenario == "rebalance":
            rebalance(args.bootstrap, args.prefix, args.strategy)
        else:
            (roundtrip if args.scenario == "roundtrip" else group)(args.bootstrap, args.prefix)
    except Exception as e:  # any client error is a failed check
        finish(False, report.errored(e))


if __name__ == "__main__":
    main()
