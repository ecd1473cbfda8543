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
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import scenario
from scenario import GLOBAL_LIMIT_S, JOIN_LIMIT_S, SESSION_TIMEOUT_MS

report = scenario.Report("aiokafka")
result, set_step, finish = report.result, report.set_step, report.finish


class Failed(Exception):
    pass


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
    check = scenario.ReadBack(result)
    set_step("create topic " + topic)
    await create_topic(bootstrap, topic, 3)
    for codec, records in check.batches():
        set_step("produce " + codec)
        result["produced"] += await produce(bootstrap, topic, records, codec)

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
        deadline = time.time() + 30

        async def behind():
            for tp in tps:
                if await c.position(tp) < high[tp]:
                    return True
            return False

        while await behind() and time.time() < deadline:
            for _tp, msgs in (await c.getmany(timeout_ms=500)).items():
                for msg in msgs:
                    check.check(msg.key, msg.value, msg.headers, msg.timestamp,
                                msg.timestamp_type == 0)
    finally:
        await c.stop()
    problem = check.problem()
    if problem:
        raise Failed(problem)


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
    problem = scenario.join_problem(result, name, listener.joins, partitions, within_s)
    if problem:
        raise Failed(problem)


async def group(bootstrap, prefix):
    topic, grp = prefix + "-g", prefix + "-grp"
    scenario.start_group(result)
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
    problem = scenario.committed_problem(result, committed, 400)
    if problem:
        raise Failed(problem)

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
    problem = scenario.group_problem(result, extra)
    if problem:
        raise Failed(problem)


async def run(bootstrap, which, prefix):
    start = time.time()
    try:
        await asyncio.wait_for((roundtrip if which == "roundtrip" else group)(bootstrap, prefix),
                               GLOBAL_LIMIT_S)
    except asyncio.TimeoutError:
        if time.time() - start >= GLOBAL_LIMIT_S - 0.5:
            finish(False, report.stuck())
        finish(False, "a client call timed out after %.1f s during %s"
               % (time.time() - start, report.step))
    except Failed as e:  # a check failed
        finish(False, str(e))
    except Exception as e:  # any client error is a failed check
        finish(False, report.errored(e))
    finish(True)


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("roundtrip", "group"):
        sys.stderr.write("usage: %s BOOTSTRAP roundtrip|group PREFIX\n" % sys.argv[0])
        sys.exit(2)
    # Backstop in case the event loop itself is blocked past the asyncio limit.
    report.start_watchdog(GLOBAL_LIMIT_S + 1)
    asyncio.run(run(*sys.argv[1:]))


if __name__ == "__main__":
    main()
