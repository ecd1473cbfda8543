#!/usr/bin/env python3
"""Small admin actions through confluent-kafka's AdminClient (librdkafka), for tests.

Usage: admin.py BOOTSTRAP create TOPIC PARTITIONS [KEY=VALUE ...]
       admin.py BOOTSTRAP commit GROUP TOPIC PARTITION OFFSET
create: TOPIC with PARTITIONS partitions and the given topic configs.
commit: OFFSET for TOPIC's PARTITION as GROUP (a consumer outside the group protocol).
Prints one JSON line and exits 0 on success, 1 with the error on stderr otherwise.
"""
import json
import sys

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def commit(bootstrap, group, topic, partition, offset):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    done = c.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    c.close()
    errors = [str(tp.error) for tp in done if tp.error]
    if errors:
        print(f"FAIL admin: commit: {errors}", file=sys.stderr)
        return 1
    print(json.dumps({"committed": offset, "group": group}))
    return 0


def main():
    if len(sys.argv) == 7 and sys.argv[2] == "commit":
        return commit(sys.argv[1], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    if len(sys.argv) < 5 or sys.argv[2] != "create":
        print(__doc__, file=sys.stderr)
        return 2
    bootstrap, topic, partitions = sys.argv[1], sys.argv[3], int(sys.argv[4])
    configs = dict(kv.split("=", 1) for kv in sys.argv[5:])
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=-1, config=configs)
    for name, future in admin.create_topics([new], operation_timeout=30).items():
        try:
            future.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - the error is the output
            print(f"FAIL admin: creating {name}: {e}", file=sys.stderr)
            return 1
    print(json.dumps({"created": topic, "partitions": partitions, "configs": configs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
