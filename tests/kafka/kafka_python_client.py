#!/usr/bin/env python3
"""Shale compatibility check with kafka-python.

Usage: kafka_python_client.py BOOTSTRAP SCENARIO PREFIX
  roundtrip: create {PREFIX}-rt (3 partitions) with KafkaAdminClient, produce 200
             records per codec (none, gzip, snappy, lz4, zstd) with acks=all and
             idempotence, read the whole topic back by manual assignment (no
             group) and check key, value, headers and timestamp byte for byte.
  group:     create {PREFIX}-g (4 partitions), produce 400 records; consumer 1 of
             group {PREFIX}-grp takes exactly 150 records committing each one
             synchronously, closes and so leaves the group; consumer 2 takes the
             other 250 the same way; the group's committed offsets (read with
             KafkaConsumer.committed by a consumer outside the group) must add up to
             400; consumer 3 must then see nothing in 3 s. Members ask for a 30 s
             session timeout and each must be assigned all 4 partitions within
             10 s, so a member that did not leave holds up the next one's join and
             fails the check.
The last stdout line is one JSON object; exit 0 only if every check passed,
otherwise exit 1 with a one-line reason on stderr. Every wait is bounded; a
watchdog ends the run after 58 s.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

import scenario
from scenario import JOIN_LIMIT_S, SESSION_TIMEOUT_MS

report = scenario.Report("kafka-python")
result, set_step, finish = report.result, report.set_step, report.finish


def create_topic(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                            timeout_ms=10000, wait_for_metadata=True)
    finally:
        admin.close()


def produce(bootstrap, topic, records, codec="none"):
    """records: list of (key, value, headers, timestamp or None). Returns delivered count."""
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                      compression_type=None if codec == "none" else codec, linger_ms=5,
                      request_timeout_ms=15000, max_block_ms=15000)
    futures = [p.send(topic, key=k, value=v, headers=h or [], timestamp_ms=ts)
               for k, v, h, ts in records]
    p.flush(timeout=25)
    delivered = 0
    for f in futures:
        f.get(timeout=5)  # raises the delivery error, if any
        delivered += 1
    p.close(timeout=5)
    return delivered


def roundtrip(bootstrap, prefix):
    topic = prefix + "-rt"
    check = scenario.ReadBack(result)
    set_step("create topic " + topic)
    create_topic(bootstrap, topic, 3)
    for codec, records in check.batches():
        set_step("produce " + codec)
        result["produced"] += produce(bootstrap, topic, records, codec)

    # group_id=None: manual assignment, no group, nothing committed.
    set_step("read back")
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000)
    tps = [TopicPartition(topic, p) for p in range(3)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    high = c.end_offsets(tps, timeout_ms=10000)
    deadline = time.time() + 30
    while any(c.position(tp) < high[tp] for tp in tps) and time.time() < deadline:
        for _tp, msgs in c.poll(timeout_ms=500).items():
            for msg in msgs:
                check.check(msg.key, msg.value, msg.headers, msg.timestamp,
                            msg.timestamp_type == 0)
    c.close()
    problem = check.problem()
    finish(problem is None, problem)


class Joins(ConsumerRebalanceListener):
    """Records (partition count, seconds since subscribe) of each assignment."""

    def __init__(self):
        self.start = time.time()
        self.joins = []

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self.joins.append((len(assigned), time.time() - self.start))


def group_consumer(bootstrap, group, topic, listener):
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                      heartbeat_interval_ms=1000, request_timeout_ms=40000)
    c.subscribe([topic], listener=listener)
    return c


def take(c, want, limit_s, seen, counts):
    """Poll until `want` records were processed; commit each one synchronously."""
    got = 0
    deadline = time.time() + limit_s
    while got < want and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=500, max_records=want - got).items():
            for msg in msgs:
                got += 1
                if msg.value in seen:
                    counts["duplicates"] += 1
                seen.add(msg.value)
                # commit() is synchronous: it returns once the broker accepted the offset
                # and raises otherwise.
                c.commit({tp: OffsetAndMetadata(msg.offset + 1, "", -1)}, timeout_ms=10000)
    return got


def joined(name, listener, partitions, within_s):
    problem = scenario.join_problem(result, name, listener.joins, partitions, within_s)
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
    listener = Joins()
    c1 = group_consumer(bootstrap, grp, topic, listener)
    result["first"] = take(c1, 150, 20, seen, result)
    c1.close(timeout_ms=5000)  # leaves the group
    joined("consumer 1", listener, 4, 20)
    if result["first"] != 150:
        finish(False, "consumer 1 got %d/150 records within 20 s" % result["first"])

    set_step("consumer 2")
    listener = Joins()
    c2 = group_consumer(bootstrap, grp, topic, listener)
    result["second"] = take(c2, 250, 20, seen, result)
    c2.close(timeout_ms=5000)
    joined("consumer 2", listener, 4, 20)
    result["missing"] = len({b"v%d" % i for i in range(400)} - seen)
    if result["second"] != 250:
        finish(False, "consumer 2 got %d/250 records within 20 s" % result["second"])

    # What the group committed, read back through OffsetFetch by a consumer that
    # does not join the group.
    set_step("committed offsets")
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=grp, enable_auto_commit=False,
                          request_timeout_ms=15000)
    committed = [probe.committed(TopicPartition(topic, p)) for p in range(4)]
    probe.close(timeout_ms=5000)
    problem = scenario.committed_problem(result, committed, 400)
    if problem:
        finish(False, problem)

    listener = Joins()
    set_step("consumer 3")
    c3 = group_consumer(bootstrap, grp, topic, listener)
    extra = 0
    deadline = time.time() + JOIN_LIMIT_S + 2
    while not listener.joins and time.time() < deadline:
        extra += sum(len(m) for m in c3.poll(timeout_ms=200).values())
    if not listener.joins:
        c3.close(timeout_ms=5000)
    joined("consumer 3", listener, 4, JOIN_LIMIT_S + 2)
    deadline = time.time() + 3
    while time.time() < deadline:
        extra += sum(len(m) for m in c3.poll(timeout_ms=200).values())
    c3.close(timeout_ms=5000)
    problem = scenario.group_problem(result, extra)
    finish(problem is None, problem)


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("roundtrip", "group"):
        sys.stderr.write("usage: %s BOOTSTRAP roundtrip|group PREFIX\n" % sys.argv[0])
        sys.exit(2)
    bootstrap, which, prefix = sys.argv[1:]
    report.start_watchdog()
    try:
        (roundtrip if which == "roundtrip" else group)(bootstrap, prefix)
    except Exception as e:  # any client error is a failed check
        finish(False, report.errored(e))


if __name__ == "__main__":
    main()
