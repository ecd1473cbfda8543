#!/usr/bin/env python3
"""A compacted topic through librdkafka (PyPI's confluent-kafka).

Usage: compacted.py BOOTSTRAP TOPIC

AdminClient creates TOPIC with cleanup.policy=compact and DescribeConfigs reads the policy
back; an idempotent producer writes 3,000 updates over 20 keys (the last update of key 0
a tombstone); a record without a key is refused; then a consumer reads the partition from
offset 0, again until the cleaner has compacted it under 100 records (60 s at most), and
every record it reads must be one that was written, at the offset its delivery report
gave, with each key's latest record among them.

Prints one JSON line and exits 0; exits 1 with the error on stderr on a failure of the
client itself (the test judges the JSON).
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

UPDATES, KEYS, MOST = 3000, 20, 100


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "segment.ms": "200",
        "min.cleanable.dirty.ratio": "0.1",
    }
    new = NewTopic(topic, num_partitions=1, replication_factor=-1, config=configs)
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result(timeout=60)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    for future in admin.describe_configs([resource]).values():
        entries = future.result(timeout=60)
    return entries["cleanup.policy"].value


def produce(bootstrap, topic):
    p = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1024,
    })
    written, errors = {}, []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        value = msg.value().decode() if msg.value() is not None else None
        written[msg.offset()] = (msg.key().decode(), value)

    for i in range(UPDATES):
        key = f"key-{i % KEYS}"
        value = None if i == UPDATES - KEYS else f"{key}={i}".encode()
        p.produce(topic, key=key.encode(), value=value, partition=0, on_delivery=report)
        p.poll(0)
    p.flush(60)
    refused = []
    p.produce(topic, value=b"no key", partition=0,
              on_delivery=lambda err, msg: refused.append(err))
    p.flush(60)
    keyless = refused[0].name() if refused and refused[0] is not None else "accepted"
    return written, errors, keyless


def read_all(bootstrap, topic):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"compacted-{topic}-{time.time()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    records, deadline = [], time.time() + 30
    while time.time() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                break
            raise Exception(msg.error())
        value = msg.value().decode() if msg.value() is not None else None
        records.append((msg.offset(), msg.key().decode(), value))
    c.close()
    return records


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic = sys.argv[1], sys.argv[2]
    try:
        policy = create(bootstrap, topic)
        written, errors, keyless = produce(bootstrap, topic)
        deadline = time.time() + 60
        records = read_all(bootstrap, topic)
        while len(records) > MOST and time.time() < deadline:
            time.sleep(0.2)
            records = read_all(bootstrap, topic)
    except Exception as e:  # noqa: BLE001 - the error is the output
        print(f"FAIL compacted: {e}", file=sys.stderr)
        return 1
    latest = {}
    for offset, (key, value) in sorted(written.items()):
        latest[key] = offset
    held = {offset for offset, _, _ in records}
    mismatched = [r for r in records if written.get(r[0]) != (r[1], r[2])]
    increasing = all(a[0] < b[0] for a, b in zip(records, records[1:]))
    missing = sorted(k for k, offset in latest.items() if offset not in held)
    tombstone = next((r for r in records if r[1] == "key-0"), None)
    print(json.dumps({
        "policy": policy,
        "written": len(written),
        "produce_errors": errors[:3],
        "keyless": keyless,
        "read": len(records),
        "mismatched": len(mismatched),
        "increasing": increasing,
        "missing_latest": missing,
        "tombstone_kept": tombstone is not None and tombstone[2] is None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
