#!/usr/bin/env python3
"""Transactions through librdkafka (PyPI's confluent-kafka).

Usage: transactions.py BOOTSTRAP PREFIX [copy|compacted]
       transactions.py BOOTSTRAP PREFIX tiered-write|tiered-read TOPIC

- copy: N numbered records go into PREFIX-in (3 partitions); a consume-transform-produce
  loop (a read_committed consumer of group PREFIX-g, a transactional producer) copies
  them to PREFIX-out (3 partitions), committing each batch's offsets in its transaction.
  Before each commit it writes junk in a transaction it aborts. Then a read_committed
  reader and a read_uncommitted reader read PREFIX-out from the start, and the group's
  committed offsets are read back.
- zombie: two producers with one transactional.id; the first, fenced by the second,
  fails to write and to commit; the second commits.
- compacted (run alone): on a compacted topic a transactional producer commits a value
  for each of 10 keys and then aborts another, 30 times over; once the cleaner has run
  (the log read uncommitted holds no aborted value, 60 s at most), a read_committed reader
  must find each key's last committed value and nothing aborted.
- tiered-write TOPIC: 40 rounds of a committed then an aborted transaction of ten 1 KiB
  values each into TOPIC (one partition, made by the test); tiered-read TOPIC reads it
  from offset 0 read_committed and read_uncommitted, counting committed and aborted values.

Prints one JSON line of counts and exits 0 (the test judges it); exits 1 with the error
on stderr on a failure of the client itself. A watchdog ends the run after 80 s.
"""
import json
import sys
import threading
import os
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N, BATCH = 600, 50


def watchdog():
    time.sleep(80)
    print("transactions.py: watchdog: still running after 80 s", file=sys.stderr)
    os._exit(2)


def create(bootstrap, topics):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(t, num_partitions=3, replication_factor=-1) for t in topics]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result(timeout=60)


def fill(bootstrap, topic):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i in range(N):
        p.produce(topic, key=str(i).encode(), value=f"in-{i}".encode())
    if p.flush(60) != 0:
        raise RuntimeError("input records not delivered within 60 s")


def producer(bootstrap, txn_id):
    p = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 30000,
        "linger.ms": 5,
    })
    p.init_transactions(30)
    return p


def copy(bootstrap, prefix):
    src, dst, group = f"{prefix}-in", f"{prefix}-out", f"{prefix}-g"
    create(bootstrap, [src, dst])
    fill(bootstrap, src)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    })
    consumer.subscribe([src])
    p = producer(bootstrap, f"{prefix}-copier")
    copied, commits, aborts = 0, 0, 0
    deadline = time.monotonic() + 60
    while copied < N and time.monotonic() < deadline:
        msgs = consumer.consume(BATCH, timeout=1.0)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        # Junk in a transaction that is aborted: never to be read committed.
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, key=m.key(), value=b"junk-" + m.value())
        p.flush(30)
        p.abort_transaction(30)
        aborts += 1
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, key=m.key(), value=b"out-" + m.value()[3:])
        positions = consumer.position(consumer.assignment())
        p.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        commits += 1
        copied += len(msgs)
    consumer.close()
    committed_reader = read_all(bootstrap, dst, "read_committed")
    uncommitted_reader = read_all(bootstrap, dst, "read_uncommitted")
    want = {f"out-{i}" for i in range(N)}
    values = [v for v in committed_reader]
    offsets = committed_offsets(bootstrap, group, src)
    return {
        "copied": copied,
        "commits": commits,
        "aborts": aborts,
        "read_committed": len(values),
        "missing": len(want - set(values)),
        "duplicates": len(values) - len(set(values)),
        "junk_committed": sum(1 for v in values if v.startswith("junk-")),
        "junk_uncommitted": sum(1 for v in uncommitted_reader if v.startswith("junk-")),
        "committed_offsets": offsets,
    }


def read_all(bootstrap, topic, isolation):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-{isolation}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(topic, p, 0) for p in range(3)])
    values, at_end = [], set()
    deadline = time.monotonic() + 30
    while len(at_end) < 3 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == -191:  # _PARTITION_EOF
                at_end.add(m.partition())
                continue
            raise KafkaException(m.error())
        values.append(m.value().decode())
    c.close()
    return values


def committed_offsets(bootstrap, group, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    got = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
    c.close()
    return sum(tp.offset for tp in got if tp.offset >= 0)


def zombie(bootstrap, prefix):
    dst = f"{prefix}-z"
    create(bootstrap, [dst])
    txn_id = f"{prefix}-zombie"
    old = producer(bootstrap, txn_id)
    old.begin_transaction()
    old.produce(dst, value=b"old-1")
    old.flush(30)
    new = producer(bootstrap, txn_id)  # fences `old`, aborting its transaction
    old_error = None
    try:
        old.produce(dst, value=b"old-2")
        old.flush(10)
        old.commit_transaction(30)
    except KafkaException as e:
        old_error = e.args[0].name()
    new.begin_transaction()
    new.produce(dst, value=b"new-1")
    new.commit_transaction(30)
    values = read_all(bootstrap, dst, "read_committed")
    return {"old_error": old_error, "read_committed": sorted(values)}


def compacted(bootstrap, prefix):
    topic = f"{prefix}-compacted"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.01",
    }
    new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=configs)
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result(timeout=60)
    p = producer(bootstrap, f"{prefix}-compactor")
    rounds, keys = 30, 10
    for r in range(rounds):
        for value, commit in ((f"c-{r}", True), (f"a-{r}", False)):
            p.begin_transaction()
            for k in range(keys):
                p.produce(topic, key=f"k{k}".encode(), value=value.encode())
            if commit:
                p.commit_transaction(30)
            else:
                p.flush(30)
                p.abort_transaction(30)
    # The cleaner has run once the log holds no aborted value; the active segment rolls
    # past segment.ms, so every record becomes cleanable.
    deadline = time.monotonic() + 60
    while True:
        uncommitted = read_keyed(bootstrap, topic, "read_uncommitted")
        aborted_left = sum(1 for _, v in uncommitted if v.startswith("a-"))
        if aborted_left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    committed = read_keyed(bootstrap, topic, "read_committed")
    latest = {}
    for k, v in committed:
        latest[k] = v
    want = {f"k{k}": f"c-{rounds - 1}" for k in range(keys)}
    return {
        "written": rounds * keys * 2,
        "uncommitted_after_clean": len(uncommitted),
        "aborted_left": aborted_left,
        "read_committed": len(committed),
        "aborted_committed": sum(1 for _, v in committed if v.startswith("a-")),
        "latest_ok": latest == want,
    }


def read_keyed(bootstrap, topic, isolation):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-{isolation}-{time.monotonic_ns()}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            raise KafkaException(m.error())
        out.append((m.key().decode(), m.value().decode()))
    c.close()
    return out


def tiered_write(bootstrap, prefix, topic):
    p = producer(bootstrap, f"{prefix}-tiered")
    pad = "x" * 1000
    for r in range(40):
        for kind, commit in (("c", True), ("a", False)):
            p.begin_transaction()
            for k in range(10):
                p.produce(topic, key=f"k{k}".encode(), value=f"{kind}-{r}-{k}-{pad}".encode())
            if commit:
                p.commit_transaction(30)
            else:
                p.flush(30)
                p.abort_transaction(30)
    return {"written": 800}


def tiered_read(bootstrap, topic):
    out = {}
    for isolation in ("read_committed", "read_uncommitted"):
        values = [v for _, v in read_keyed(bootstrap, topic, isolation)]
        out[isolation] = {
            "committed": sum(1 for v in values if v.startswith("c-")),
            "aborted": sum(1 for v in values if v.startswith("a-")),
            "distinct": len(set(values)),
        }
    return out


def main():
    threading.Thread(target=watchdog, daemon=True).start()
    bootstrap, prefix = sys.argv[1], sys.argv[2]
    scenario = sys.argv[3] if len(sys.argv) > 3 else "copy"
    if scenario == "tiered-write":
        out = tiered_write(bootstrap, prefix, sys.argv[4])
    elif scenario == "tiered-read":
        out = tiered_read(bootstrap, sys.argv[4])
    elif scenario == "compacted":
        out = {"compacted": compacted(bootstrap, prefix)}
    else:
        out = {"copy": copy(bootstrap, prefix), "zombie": zombie(bootstrap, prefix)}
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported for the test to show
        print(f"transactions.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
