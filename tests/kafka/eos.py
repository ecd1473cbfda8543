#!/usr/bin/env python3
"""A consume-transform-produce application with librdkafka's transactions, for a checker
that kills brokers and the application under it (tests/transactions_cluster.rs).

  fill BOOTSTRAP TOPIC N
      An idempotent producer writes records i=0..N-1 (key str(i), value "in-{i}").
      JSON: acked. Exit 0 iff all N were acknowledged.

  copy BOOTSTRAP IN OUT GROUP TXN_ID N OUTDIR
      Reads IN (group GROUP, static member "copier", read_committed) and writes each
      record to OUT as "out-{i}" in a transaction that also commits the input offsets;
      each batch of up to 50 records is one transaction, its records flushed to the log
      and the transaction held open 50 ms before its commit (so kills land in open
      transactions with data in the log), and every 5th one aborted on purpose after the
      flush and copied again (so aborted records are in the log). An error that asks for an abort
      aborts the transaction and rewinds to the committed offsets; a retriable one retries
      the step; a fatal one (this instance was fenced) exits 3 for the checker to start the
      application again. Progress (transactions committed) goes to OUTDIR/progress-{pid}.
      Exits 0 once the committed input offsets add up to N.
      JSON: commits, aborts (on purpose or after an error), retried, fatal (the error, if
      any).

  read BOOTSTRAP OUT N OUTFILE DONEFILE
      A read_committed reader of OUT from its start, appending each value to OUTFILE as
      it is read. Stops once it has read N records, or DONEFILE exists and nothing more
      came for 3 s, or after 300 s. JSON: read, distinct, duplicates (values read twice:
      an aborted record shown, or a record committed twice), unknown (not "out-i" for i
      in 0..N).

  hang BOOTSTRAP TOPIC TXN_ID
      A transactional producer (transaction.timeout.ms 5000) writes one record to each
      partition of TOPIC in a transaction, flushes, and exits without ending it, as a
      crashed application leaves its transaction. JSON: written.

  txnload BOOTSTRAP TOPIC TXN_ID OUTFILE
      Transactions of 20 records ("{kind}-{n}-{k}", spread over TOPIC's partitions) until
      killed or refused: every third aborted (kind "a"), the others committed (kind "c").
      After each commit_transaction or abort_transaction returns, "committed n" or
      "aborted n" goes to OUTFILE, fsynced. Exits 0 at the first error (the broker went
      away). JSON: committed, aborted, error.

  dump BOOTSTRAP TOPIC ISOLATION
      Reads every partition of TOPIC from its start to its end with ISOLATION
      (read_committed or read_uncommitted). JSON: values (in the order read).

Every wait is bounded, a watchdog ends each mode, the last stdout line is one JSON object,
and client errors go to stderr with seconds since start.
"""
import json
import os
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

T0 = time.time()
BATCH = 50


def log(msg):
    print(f"[{time.time() - T0:7.2f}] {msg}", file=sys.stderr, flush=True)


def watchdog(seconds):
    def run():
        time.sleep(seconds)
        log(f"watchdog: still running after {seconds} s")
        os._exit(2)

    threading.Thread(target=run, daemon=True).start()


def fill(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    acked = []

    def report(err, msg):
        if err is None:
            acked.append(1)
        else:
            log(f"fill: {err}")

    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"in-{i}".encode(), on_delivery=report)
        p.poll(0)
    p.flush(120)
    return {"acked": len(acked)}, len(acked) == n


def committed_total(consumer, topic, partitions):
    got = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    return sum(tp.offset for tp in got if tp.offset >= 0)


def rewind(consumer):
    assignment = consumer.assignment()
    if not assignment:
        return
    for tp in consumer.committed(assignment, timeout=30):
        consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))


def copy(bootstrap, src, dst, group, txn_id, n, outdir):
    progress = os.path.join(outdir, f"progress-{os.getpid()}")
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": "copier",
        "session.timeout.ms": 10000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "reconnect.backoff.max.ms": 1000,
    })
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 10000,
        "linger.ms": 5,
        "reconnect.backoff.max.ms": 1000,
    })
    stats = {"commits": 0, "aborts": 0, "retried": 0, "fatal": None}
    partitions = None
    producer.init_transactions(60)
    consumer.subscribe([src])
    while True:
        msgs = [m for m in consumer.consume(BATCH, timeout=1.0) if m.error() is None]
        if not msgs:
            if partitions is None:
                md = consumer.list_topics(src, timeout=30)
                partitions = sorted(md.topics[src].partitions)
            if committed_total(consumer, src, partitions) >= n:
                return stats, True
            continue
        try:
            producer.begin_transaction()
            for m in msgs:
                i = m.value().decode()[3:]
                producer.produce(dst, key=m.key(), value=f"out-{i}".encode())
            producer.flush(30)
            time.sleep(0.05)
            if (stats["commits"] + stats["aborts"]) % 5 == 4:
                producer.abort_transaction(60)
                stats["aborts"] += 1
                rewind(consumer)
                continue
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            while True:
                try:
                    producer.commit_transaction(30)
                    break
                except KafkaException as e:
                    if e.args[0].retriable():
                        stats["retried"] += 1
                        continue
                    raise
            stats["commits"] += 1
            with open(progress, "w") as f:
                f.write(str(stats["commits"]))
        except KafkaException as e:
            err = e.args[0]
            if err.txn_requires_abort():
                log(f"copy: aborting: {err}")
                producer.abort_transaction(60)
                stats["aborts"] += 1
                rewind(consumer)
            elif err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
                stats["fatal"] = str(err)
                log(f"copy: fatal: {err}")
                return stats, False
            else:
                # Not fatal, no abort asked: the transaction state is unknown here; abort
                # what may be open and go back to the committed offsets.
                log(f"copy: error: {err}; aborting and rewinding")
                try:
                    producer.abort_transaction(60)
                    stats["aborts"] += 1
                except KafkaException as e2:
                    log(f"copy: abort failed: {e2}")
                rewind(consumer)


def read(bootstrap, out, n, outfile, donefile):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{out}-reader-{os.getpid()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "reconnect.backoff.max.ms": 1000,
    })
    c.subscribe([out])
    seen = {}
    quiet_since = time.monotonic()
    with open(outfile, "a") as f:
        while len(seen) < n and time.time() - T0 < 300:
            m = c.poll(0.5)
            if m is None or m.error() is not None:
                if m is not None:
                    log(f"read: {m.error()}")
                if os.path.exists(donefile) and time.monotonic() - quiet_since > 3:
                    break
                continue
            quiet_since = time.monotonic()
            v = m.value().decode()
            seen[v] = seen.get(v, 0) + 1
            f.write(v + "\n")
            f.flush()
    c.close()
    want = {f"out-{i}" for i in range(n)}
    return {
        "read": sum(seen.values()),
        "distinct": len(seen),
        "duplicates": sum(c - 1 for c in seen.values()),
        "unknown": sum(1 for v in seen if v not in want),
    }, True


def hang(bootstrap, topic, txn_id):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": 5000})
    p.init_transactions(60)
    p.begin_transaction()
    partitions = Consumer({"bootstrap.servers": bootstrap, "group.id": "hang"}) \
        .list_topics(topic, timeout=30).topics[topic].partitions
    for i in partitions:
        p.produce(topic, partition=i, value=b"left open")
    p.flush(30)
    print(json.dumps({"written": len(partitions)}), flush=True)
    os._exit(0)  # no abort, no commit: the coordinator's timeout must end it


def txnload(bootstrap, topic, txn_id, outfile):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": 10000, "linger.ms": 2})
    stats = {"committed": 0, "aborted": 0, "error": None}
    with open(outfile, "a") as f:
        def note(line):
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            p.init_transactions(30)
            n = int(time.time() * 1000)  # unique across runs
            while True:
                n += 1
                kind = "a" if n % 3 == 0 else "c"
                p.begin_transaction()
                for k in range(20):
                    p.produce(topic, key=f"{n}-{k}".encode(), value=f"{kind}-{n}-{k}".encode())
                if kind == "a":
                    p.flush(10)
                    p.abort_transaction(10)
                    stats["aborted"] += 1
                    note(f"aborted {n}")
                else:
                    p.commit_transaction(10)
                    stats["committed"] += 1
                    note(f"committed {n}")
        except KafkaException as e:
            stats["error"] = str(e.args[0])
    return stats, True


def dump(bootstrap, topic, isolation):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"{topic}-dump-{os.getpid()}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    })
    partitions = sorted(c.list_topics(topic, timeout=30).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    values, at_end = [], set()
    deadline = time.monotonic() + 60
    while len(at_end) < len(partitions) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
                continue
            raise KafkaException(m.error())
        values.append(m.value().decode())
    c.close()
    return {"values": values, "complete": len(at_end) == len(partitions)}, True


def main():
    mode = sys.argv[1]
    if mode == "dump":
        watchdog(100)
        out, ok = dump(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "txnload":
        watchdog(200)
        out, ok = txnload(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif mode == "hang":
        watchdog(100)
        hang(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "fill":
        watchdog(150)
        out, ok = fill(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "copy":
        watchdog(280)
        b, src, dst, group, txn_id, n, outdir = sys.argv[2:9]
        out, ok = copy(b, src, dst, group, txn_id, int(n), outdir)
    elif mode == "read":
        watchdog(320)
        b, topic, n, outfile, donefile = sys.argv[2:7]
        out, ok = read(b, topic, int(n), outfile, donefile)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(out), flush=True)
    sys.exit(0 if ok else 3)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported for the checker to show
        log(f"eos.py: {type(e).__name__}: {e}")
        sys.exit(1)
