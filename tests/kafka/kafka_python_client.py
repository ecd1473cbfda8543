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
import json
import os
import sys
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

CLIENT = "kafka-python"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 200
BASE_TS = 1700000000000
GLOBAL_LIMIT_S = 58

result = {"client": CLIENT}
step = ["start"]  # what the scenario is doing, for the failure reason


def set_step(name):
    step[0] = name


def finish(ok, reason=None):
    result["ok"] = ok
    if reason:
        result["error"] = reason
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if not ok:
        sys.stderr.write("FAIL %s: %s\n" % (CLIENT, reason))
        sys.stderr.flush()
    os._exit(0 if ok else 1)  # do not wait for background client threads


def on_watchdog():
    finish(False, "scenario did not finish within %d s (stuck in %s)" % (GLOBAL_LIMIT_S, step[0]))


def filler(i):
    return bytes((i * 31 + j * 7) % 256 for j in range(100))


def expected_records():
    """{(codec, i): (key, value, headers, timestamp)} for the roundtrip scenario."""
    out = {}
    for ci, codec in enumerate(CODECS):
        for i in range(PER_CODEC):
            out[(codec, i)] = (
                b"k%d" % i,
                ("%s-%d-" % (codec, i)).encode() + filler(i),
                [("codec", codec.encode()), ("i", str(i).encode())],
                BASE_TS + ci * 1000 + i,
            )
    return out


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
    result.update({"scenario": "roundtrip", "codecs": CODECS, "produced": 0, "consumed": 0,
                   "missing": None, "duplicates": 0, "mismatched": 0})
    set_step("create topic " + topic)
    create_topic(bootstrap, topic, 3)
    expected = expected_records()
    for codec in CODECS:
        batch = [v for (c, _i), v in expected.items() if c == codec]
        set_step("produce " + codec)
        result["produced"] += produce(bootstrap, topic, batch, codec)

    # group_id=None: manual assignment, no group, nothing committed.
    set_step("read back")
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000)
    tps = [TopicPartition(topic, p) for p in range(3)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    high = c.end_offsets(tps, timeout_ms=10000)
    seen = set()
    deadline = time.time() + 30
    while any(c.position(tp) < high[tp] for tp in tps) and time.time() < deadline:
        for _tp, msgs in c.poll(timeout_ms=500).items():
            for msg in msgs:
                result["consumed"] += 1
                value = msg.value or b""
                parts = value.split(b"-", 2)
                ident = None
                if len(parts) == 3 and parts[1].isdigit():
                    ident = (parts[0].decode("latin-1"), int(parts[1]))
                if ident not in expected:
                    result["mismatched"] += 1
                    continue
                if ident in seen:
                    result["duplicates"] += 1
                    continue
                seen.add(ident)
                key, val, headers, ts = expected[ident]
                got_headers = [(k, v) for k, v in (msg.headers or [])]
                if msg.key != key or value != val or got_headers != headers \
                        or msg.timestamp != ts or msg.timestamp_type != 0:
                    result["mismatched"] += 1
                    if result["mismatched"] == 1:
                        sys.stderr.write("first mismatch %r: key=%r headers=%r ts=%r/%r\n"
                                         % (ident, msg.key, got_headers, msg.timestamp_type,
                                            msg.timestamp))
    c.close()
    result["missing"] = len(expected) - len(seen)
    ok = (result["missing"] == 0 and result["duplicates"] == 0 and result["mismatched"] == 0
          and result["consumed"] == result["produced"] == len(expected))
    finish(ok, None if ok else "roundtrip check failed: produced=%d consumed=%d missing=%d "
           "duplicates=%d mismatched=%d" % (result["produced"], result["consumed"],
                                              result["missing"], result["duplicates"],
                                              result["mismatched"]))


SESSION_TIMEOUT_MS = 30000  # a member that did not leave holds up the next join this long
JOIN_LIMIT_S = 10  # a join after the previous member left must take less than this


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
    """Fails unless the member's first assignment had every partition and came within
    JOIN_LIMIT_S (a previous member that did not leave would hold it up for
    SESSION_TIMEOUT_MS)."""
    joins = listener.joins
    result["join_s"].append(round(joins[0][1], 2) if joins else None)
    if not joins:
        finish(False, "%s was not assigned partitions within %d s (did the previous member "
               "not leave the group?)" % (name, within_s))
    count, took = joins[0]
    if count != partitions:
        finish(False, "%s was assigned %d partitions, want all %d" % (name, count, partitions))
    if took > JOIN_LIMIT_S:
        finish(False, "%s took %.1f s to join (limit %d s): did the previous member not leave "
               "the group? (session timeout %d s)" % (name, took, JOIN_LIMIT_S,
                                                      SESSION_TIMEOUT_MS // 1000))


def group(bootstrap, prefix):
    topic, grp = prefix + "-g", prefix + "-grp"
    result.update({"scenario": "group", "first": 0, "second": 0, "duplicates": 0,
                   "missing": None, "committed": None, "after_commit": None, "join_s": []})
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
    result["committed_by_partition"] = committed
    result["committed"] = sum(o for o in committed if o is not None)
    if result["committed"] != 400 or None in committed:
        finish(False, "the group's committed offsets %r do not add up to 400" % committed)

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
    result["after_commit"] = extra
    ok = (result["first"] == 150 and result["second"] == 250 and result["duplicates"] == 0
          and result["missing"] == 0 and extra == 0)
    finish(ok, None if ok else "group check failed: first=%d second=%d duplicates=%d missing=%d "
           "after_commit=%d" % (result["first"], result["second"], result["duplicates"],
                                result["missing"], extra))


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("roundtrip", "group"):
        sys.stderr.write("usage: %s BOOTSTRAP roundtrip|group PREFIX\n" % sys.argv[0])
        sys.exit(2)
    bootstrap, scenario, prefix = sys.argv[1:]
    # A timer thread, not SIGALRM: it fires even while the main thread is blocked
    # inside a client call.
    watchdog = threading.Timer(GLOBAL_LIMIT_S, on_watchdog)
    watchdog.daemon = True
    watchdog.start()
    try:
        (roundtrip if scenario == "roundtrip" else group)(bootstrap, prefix)
    except Exception as e:  # any client error is a failed check
        finish(False, "%s during %s: %s" % (type(e).__name__, step[0],
                                            (str(e) or repr(e)).replace("\n", " ")))


if __name__ == "__main__":
    main()
