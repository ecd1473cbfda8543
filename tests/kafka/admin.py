#!/usr/bin/env python3
"""Small admin actions through confluent-kafka's AdminClient (librdkafka), for tests.

Usage: admin.py BOOTSTRAP create TOPIC PARTITIONS [KEY=VALUE ...]
       admin.py BOOTSTRAP commit GROUP TOPIC PARTITION OFFSET
       admin.py BOOTSTRAP delete-records TOPIC PARTITION OFFSET
       admin.py BOOTSTRAP list-offsets TOPIC PARTITION SPEC
       admin.py BOOTSTRAP first-offset TOPIC PARTITION
create: TOPIC with PARTITIONS partitions and the given topic configs.
commit: OFFSET for TOPIC's PARTITION as GROUP (a consumer outside the group protocol).
delete-records: AdminClient.delete_records below OFFSET (-1: the high watermark); prints
  the low watermark.
list-offsets: AdminClient.list_offsets with SPEC earliest, latest, max_timestamp or a time
  in ms; prints the offset and timestamp.
first-offset: a consumer with auto.offset.reset=earliest asks for offset 0 (below a log
  start DeleteRecords moved: OFFSET_OUT_OF_RANGE, so it resets to the earliest) and reads
  the partition to its end; prints the first offset read and the count.
Prints one JSON line and exits 0 on success, 1 with the error on stderr otherwise.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec


# A partition's leader moved since the metadata was read.
MOVED = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def fail(what, e):
    print(f"FAIL admin: {what}: {e}", file=sys.stderr)
    return 1


def commit(bootstrap, group, topic, partition, offset):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    done = c.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    c.close()
    errors = [str(tp.error) for tp in done if tp.error]
    if errors:
        return fail("commit", errors)
    print(json.dumps({"committed": offset, "group": group}))
    return 0


def create(bootstrap, topic, partitions, configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=-1, config=configs)
    for name, future in admin.create_topics([new], operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - the error is the output
            return fail(f"creating {name}", e)
    print(json.dumps({"created": topic, "partitions": partitions, "configs": configs}))
    return 0


def delete_records(bootstrap, topic, partition, offset):
    """librdkafka does not retry a DeleteRecords its leader refused (Java's admin does):
    a leader that moved since the metadata was read answers NOT_LEADER_OR_FOLLOWER, so
    that (and LEADER_NOT_AVAILABLE) is retried, up to 20 times, on fresh metadata. The
    per-partition error librdkafka hands back is never flagged retriable(): match codes."""
    tp = TopicPartition(topic, partition, offset)
    for attempt in range(20):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        (future,) = admin.delete_records([tp], operation_timeout=30).values()
        try:
            deleted = future.result(timeout=60)
            break
        except KafkaException as e:
            moved = e.args[0].code() in MOVED
            if not moved or attempt == 19:
                return fail(f"deleting the records of {topic}/{partition} below {offset}", e)
            print(f"admin: retrying DeleteRecords after {e}", file=sys.stderr)
            time.sleep(0.25)
        except Exception as e:  # noqa: BLE001 - the error is the output
            return fail(f"deleting the records of {topic}/{partition} below {offset}", e)
    print(json.dumps({"low_watermark": deleted.low_watermark}))
    return 0


def list_offsets(bootstrap, topic, partition, spec):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    specs = {
        "earliest": OffsetSpec.earliest,
        "latest": OffsetSpec.latest,
        "max_timestamp": OffsetSpec.max_timestamp,
    }
    offset_spec = specs[spec]() if spec in specs else OffsetSpec.for_timestamp(int(spec))
    tp = TopicPartition(topic, partition)
    for _, future in admin.list_offsets({tp: offset_spec}, request_timeout=30).items():
        try:
            info = future.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - the error is the output
            return fail(f"listing {spec} of {topic}/{partition}", e)
    print(json.dumps({"spec": spec, "offset": info.offset, "timestamp": info.timestamp}))
    return 0


def first_offset(bootstrap, topic, partition):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"first-offset-{topic}-{time.time()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.assign([TopicPartition(topic, partition, 0)])
    _, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
    first, count, last = None, 0, None
    deadline = time.time() + 60
    while (last is None or last + 1 < high) and time.time() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            c.close()
            return fail("consuming", msg.error())
        if first is None:
            first = msg.offset()
        last = msg.offset()
        count += 1
    c.close()
    print(json.dumps({"first": first, "last": last, "count": count, "high": high}))
    return 0


def main():
    args = sys.argv
    if len(args) >= 5 and args[2] == "create":
        return create(args[1], args[3], int(args[4]), dict(kv.split("=", 1) for kv in args[5:]))
    if len(args) == 7 and args[2] == "commit":
        return commit(args[1], args[3], args[4], int(args[5]), int(args[6]))
    if len(args) == 6 and args[2] == "delete-records":
        return delete_records(args[1], args[3], int(args[4]), int(args[5]))
    if len(args) == 6 and args[2] == "list-offsets":
        return list_offsets(args[1], args[3], int(args[4]), args[5])
    if len(args) == 5 and args[2] == "first-offset":
        return first_offset(args[1], args[3], int(args[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
