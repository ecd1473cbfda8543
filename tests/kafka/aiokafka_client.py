#!/usr/bin/env python3
"""Shale compatibility check with aiokafka (asyncio).

Usage: aiokafka_client.py BOOTSTRAP SCENARIO PREFIX
  roundtrip: create {PREFIX}-rt (3 partitions) with AIOKafkaAdminClient, produce
             200 records per codec (none, gzip, snappy, lz4, zstd) with acks=all
             and idempotence, read the whole topic back by manual assignment (no
             group) and check key, value, headers and timestamp byte for byte.
  group:     create {PREFIX}-g (4 partitions), produce 400 records; consumer 1 of
             group {PREFIX}-grp takes exactly 150 records committing each one
             synchronously, closes and so leaves the group; consumer 2 takes the
             other 250 the same way; the group's committed offsets (read with
             AIOKafkaConsumer.committed by a consumer outside the group) must add up to
             400; consumer 3 must then see nothing in 3 s. Members ask for a 30 s
             session timeout and each must be assigned all 4 partitions within
             10 s, so a member that did not leave holds up the next one's join and
             fails the check.
The last stdout line is one JSON object; exit 0 only if every check passed,
otherwise exit 1 with a one-line reason on stderr. Every wait is bounded; the
whole scenario is cancelled after 58 s.
"""
import asyncio
import json
import os
import sys
import threading
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

CLIENT = "aiokafka"
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 200
BASE_TS = 1700000000000
GLOBAL_LIMIT_S = 58

result = {"client": CLIENT}
step = ["start"]  # what the scenario is doing, for the failure reason


def set_step(name):
    step[0] = name


class Failed(Exception):
    pass


def finish(ok, reason=None):
    result["ok"] = ok
    if reason:
        result["error"] = reason
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if not ok:
        sys.stderr.write("FAIL %s: %s\n" % (CLIENT, reason))
        sys.stderr.flush()
    os._exit(0 if ok else 1)


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


async def create_topic(bootstrap, topic, partitions):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        resp = await admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=10000)
        for name, code, *msg in resp.topic_errors:
            if code != 0:
                raise Failed("CreateTopics %s failed: error %d %s" % (name, code, msg))
        deadline = time.time() + 10
        while time.time() < deadline:
            desc = await admin.describe_topics([topic])
            parts = desc[0]["partitions"] if desc and desc[0]["error_code"] == 0 else []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            await asyncio.sleep(0.2)
        raise Failed("topic %s not visible with %d partitions after 10 s" % (topic, partitions))
    finally:
        await admin.close()


async def produce(bootstrap, topic, records, codec="none"):
    """records: list of (key, value, headers, timestamp or None). Returns delivered count."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                         compression_type=None if codec == "none" else codec, linger_ms=5,
                         request_timeout_ms=15000)
    await p.start()
    try:
        futures = [await p.send(topic, key=k, value=v, headers=h or [], timestamp_ms=ts)
                   for k, v, h, ts in records]
        await asyncio.wait_for(asyncio.gather(*futures), 25)  # raises the delivery error
        return len(futures)
    finally:
        await p.stop()


async def roundtrip(bootstrap, prefix):
    topic = prefix + "-rt"
    result.update({"scenario": "roundtrip", "codecs": CODECS, "produced": 0, "consumed": 0,
                   "missing": None, "duplicates": 0, "mismatched": 0})
    set_step("create topic " + topic)
    await create_topic(bootstrap, topic, 3)
    expected = expected_records()
    for codec in CODECS:
        batch = [v for (c, _i), v in expected.items() if c == codec]
        set_step("produce " + codec)
        result["produced"] += await produce(bootstrap, topic, batch, codec)

    # group_id=None: manual assignment, no group, nothing committed.
    set_step("read back")
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", request_timeout_ms=15000)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        high = await c.end_offsets(tps)
        seen = set()
        deadline = time.time() + 30

        async def behind():
            for tp in tps:
                if await c.position(tp) < high[tp]:
                    return True
            return False

        while await behind() and time.time() < deadline:
            for _tp, msgs in (await c.getmany(timeout_ms=500)).items():
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
    finally:
        await c.stop()
    result["missing"] = len(expected) - len(seen)
    ok = (result["missing"] == 0 and result["duplicates"] == 0 and result["mismatched"] == 0
          and result["consumed"] == result["produced"] == len(expected))
    if not ok:
        raise Failed("roundtrip check failed: produced=%d consumed=%d missing=%d duplicates=%d "
                     "mismatched=%d" % (result["produced"], result["consumed"], result["missing"],
                                        result["duplicates"], result["mismatched"]))


SESSION_TIMEOUT_MS = 30000  # a member that did not leave holds up the next join this long
JOIN_LIMIT_S = 10  # a join after the previous member left must take less than this


class Joins(ConsumerRebalanceListener):
    """Records (partition count, seconds since subscribe) of each assignment."""

    def __init__(self):
        self.start = time.time()
        self.joins = []

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        self.joins.append((len(assigned), time.time() - self.start))


async def group_consumer(bootstrap, group, topic, listener):
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
                         request_timeout_ms=40000)
    c.subscribe([topic], listener=listener)
    await asyncio.wait_for(c.start(), 15)
    return c


async def take(c, want, limit_s, seen):
    """Consume until `want` records were processed; commit each one synchronously."""
    got = 0
    deadline = time.time() + limit_s
    while got < want and time.time() < deadline:
        batches = await c.getmany(timeout_ms=500, max_records=want - got)
        for tp, msgs in batches.items():
            for msg in msgs:
                got += 1
                if msg.value in seen:
                    result["duplicates"] += 1
                seen.add(msg.value)
                # Returns once the broker accepted the offset, raises otherwise.
                await asyncio.wait_for(c.commit({tp: msg.offset + 1}), 10)
    return got


def joined(name, listener, partitions, within_s):
    """Fails unless the member's first assignment had every partition and came within
    JOIN_LIMIT_S (a previous member that did not leave would hold it up for
    SESSION_TIMEOUT_MS)."""
    joins = listener.joins
    result["join_s"].append(round(joins[0][1], 2) if joins else None)
    if not joins:
        raise Failed("%s was not assigned partitions within %d s (did the previous member "
                     "not leave the group?)" % (name, within_s))
    count, took = joins[0]
    if count != partitions:
        raise Failed("%s was assigned %d partitions, want all %d" % (name, count, partitions))
    if took > JOIN_LIMIT_S:
        raise Failed("%s took %.1f s to join (limit %d s): did the previous member not leave "
                     "the group? (session timeout %d s)" % (name, took, JOIN_LIMIT_S,
                                                            SESSION_TIMEOUT_MS // 1000))


async def group(bootstrap, prefix):
    topic, grp = prefix + "-g", prefix + "-grp"
    result.update({"scenario": "group", "first": 0, "second": 0, "duplicates": 0,
                   "missing": None, "committed": None, "after_commit": None, "join_s": []})
    set_step("create topic " + topic)
    await create_topic(bootstrap, topic, 4)
    set_step("produce")
    await produce(bootstrap, topic, [(b"k%d" % i, b"v%d" % i, None, None) for i in range(400)])
    seen = set()

    set_step("consumer 1")
    listener = Joins()
    c1 = await group_consumer(bootstrap, grp, topic, listener)
    try:
        result["first"] = await take(c1, 150, 20, seen)
    finally:
        await asyncio.wait_for(c1.stop(), 10)  # leaves the group
    joined("consumer 1", listener, 4, 20)
    if result["first"] != 150:
        raise Failed("consumer 1 got %d/150 records within 20 s" % result["first"])

    set_step("consumer 2")
    listener = Joins()
    c2 = await group_consumer(bootstrap, grp, topic, listener)
    try:
        result["second"] = await take(c2, 250, 20, seen)
    finally:
        await asyncio.wait_for(c2.stop(), 10)
    joined("consumer 2", listener, 4, 20)
    result["missing"] = len({b"v%d" % i for i in range(400)} - seen)
    if result["second"] != 250:
        raise Failed("consumer 2 got %d/250 records within 20 s" % result["second"])

    # What the group committed, read back through OffsetFetch by a consumer that
    # does not join the group (it subscribes to nothing).
    set_step("committed offsets")
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=grp, enable_auto_commit=False,
                             request_timeout_ms=15000)
    await asyncio.wait_for(probe.start(), 15)
    try:
        committed = [await asyncio.wait_for(probe.committed(TopicPartition(topic, p)), 10)
                     for p in range(4)]
    finally:
        await asyncio.wait_for(probe.stop(), 10)
    result["committed_by_partition"] = committed
    result["committed"] = sum(o for o in committed if o is not None)
    if result["committed"] != 400 or None in committed:
        raise Failed("the group's committed offsets %r do not add up to 400" % committed)

    listener = Joins()
    set_step("consumer 3")
    c3 = await group_consumer(bootstrap, grp, topic, listener)
    extra = 0
    try:
        deadline = time.time() + JOIN_LIMIT_S + 2
        while not listener.joins and time.time() < deadline:
            extra += sum(len(m) for m in (await c3.getmany(timeout_ms=200)).values())
        joined("consumer 3", listener, 4, JOIN_LIMIT_S + 2)
        deadline = time.time() + 3
        while time.time() < deadline:
            extra += sum(len(m) for m in (await c3.getmany(timeout_ms=200)).values())
    finally:
        await asyncio.wait_for(c3.stop(), 10)
    result["after_commit"] = extra
    ok = (result["first"] == 150 and result["second"] == 250 and result["duplicates"] == 0
          and result["missing"] == 0 and extra == 0)
    if not ok:
        raise Failed("group check failed: first=%d second=%d duplicates=%d missing=%d "
                     "after_commit=%d" % (result["first"], result["second"],
                                          result["duplicates"], result["missing"], extra))


async def run(bootstrap, scenario, prefix):
    start = time.time()
    try:
        await asyncio.wait_for((roundtrip if scenario == "roundtrip" else group)(bootstrap, prefix),
                               GLOBAL_LIMIT_S)
    except asyncio.TimeoutError:
        if time.time() - start >= GLOBAL_LIMIT_S - 0.5:
            finish(False, "scenario did not finish within %d s (stuck in %s)"
                   % (GLOBAL_LIMIT_S, step[0]))
        finish(False, "a client call timed out after %.1f s during %s"
               % (time.time() - start, step[0]))
    except Failed as e:  # a check failed
        finish(False, str(e))
    except Exception as e:  # any client error is a failed check
        finish(False, "%s during %s: %s" % (type(e).__name__, step[0],
                                            (str(e) or repr(e)).replace("\n", " ")))
    finish(True)


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("roundtrip", "group"):
        sys.stderr.write("usage: %s BOOTSTRAP roundtrip|group PREFIX\n" % sys.argv[0])
        sys.exit(2)
    # Backstop in case the event loop itself is blocked past the asyncio limit.
    watchdog = threading.Timer(GLOBAL_LIMIT_S + 1, lambda: finish(
        False, "scenario did not finish within %d s (stuck in %s)" % (GLOBAL_LIMIT_S, step[0])))
    watchdog.daemon = True
    watchdog.start()
    asyncio.run(run(*sys.argv[1:]))


if __name__ == "__main__":
    main()
