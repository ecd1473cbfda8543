#!/usr/bin/env python3
"""Records across the two front ends, through confluent-kafka (librdkafka).

Usage:
  interop.py BOOTSTRAP read TOPIC PARTITIONS N
      reads N records from the start of TOPIC's PARTITIONS partitions (no group) and
      prints them as one JSON object: {"records": [{"p", "o", "key", "value", "headers",
      "ts"}]}, keys, values and header values base64 (null stays null), sorted by (p, o).
  interop.py BOOTSTRAP write TOPIC SPEC
      produces the records of the JSON file SPEC ([{"p", "key", "value", "headers",
      "ts"}], same encoding) with acks=all, in order, one partition each as given, and
      prints {"acked": [[p, o], ...]}.
Exit 0 only on success; errors go to stderr in one line. Every wait is bounded.
"""
import base64
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def unb64(s):
    return None if s is None else base64.b64decode(s)


def read(bootstrap, topic, partitions, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "interop-unused",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    out, deadline = [], time.time() + 30
    while len(out) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise RuntimeError(str(m.error()))
        out.append({"p": m.partition(), "o": m.offset(), "key": b64(m.key()), "value": b64(m.value()),
                    "headers": [[k, b64(v)] for k, v in (m.headers() or [])], "ts": m.timestamp()[1]})
    c.close()
    if len(out) < n:
        raise RuntimeError(f"read {len(out)} of {n} records within 30 s")
    out.sort(key=lambda r: (r["p"], r["o"]))
    print(json.dumps({"records": out}))


def write(bootstrap, topic, spec):
    records = json.load(open(spec))
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    acked, errors = [], []

    def done(err, msg):
        if err:
            errors.append(str(err))
        else:
            acked.append([msg.partition(), msg.offset()])
    for r in records:
        p.produce(topic, key=unb64(r["key"]), value=unb64(r["value"]), partition=r["p"],
                  headers=[(k, unb64(v)) for k, v in r["headers"]], timestamp=r["ts"], on_delivery=done)
    p.flush(30)
    if errors or len(acked) != len(records):
        raise RuntimeError(f"acked {len(acked)} of {len(records)}: {errors[:3]}")
    print(json.dumps({"acked": acked}))


def main():
    try:
        if sys.argv[2] == "read":
            read(sys.argv[1], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        elif sys.argv[2] == "write":
            write(sys.argv[1], sys.argv[3], sys.argv[4])
        else:
            raise RuntimeError(__doc__)
    except Exception as e:  # noqa: BLE001 - the error is the output
        print(f"FAIL interop: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
