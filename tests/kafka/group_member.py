"""A member of a consumer group with librdkafka (PyPI's confluent-kafka), for the group
tests:

    python group_member.py BOOTSTRAP GROUP PROTOCOL SUBSCRIPTION [INSTANCE_ID]

PROTOCOL is `consumer` (KIP-848) or `classic` (with the cooperative-sticky assignor);
SUBSCRIPTION is a comma-separated list of topics, or `^EXPR` for a regular expression
(which librdkafka sends to the broker under the consumer protocol). It reads from the
earliest offset, commits synchronously after each batch it processed, prints one JSON line
per record to stdout ({"topic","partition","offset","value"}) and one line per change of
assignment to stderr ("ASSIGNED t-0,t-1"). SIGTERM closes it cleanly.
"""

import json
import signal
import sys

from confluent_kafka import Consumer, KafkaException

bootstrap, group, protocol, subscription = sys.argv[1:5]
conf = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "group.protocol": protocol,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
}
if protocol == "classic":
    conf["partition.assignment.strategy"] = "cooperative-sticky"
    conf["session.timeout.ms"] = 6000
    conf["heartbeat.interval.ms"] = 500
if len(sys.argv) > 5:
    conf["group.instance.id"] = sys.argv[5]
consumer = Consumer(conf)
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)


def names(partitions):
    return {f"{tp.topic}-{tp.partition}" for tp in partitions}


def report(owned):
    print("ASSIGNED " + ",".join(sorted(owned)), file=sys.stderr, flush=True)


# The callbacks run before librdkafka applies the change it announces (under the consumer
# protocol it applies it itself), so the new assignment is computed from the old one.
def on_assign(c, partitions):
    owned = names(c.assignment()) | names(partitions)
    if protocol == "classic":
        c.incremental_assign(partitions)
    report(owned)


def on_revoke(c, partitions):
    owned = names(c.assignment()) - names(partitions)
    if protocol == "classic":
        c.incremental_unassign(partitions)
    report(owned)


consumer.subscribe(subscription.split(","), on_assign=on_assign, on_revoke=on_revoke)
while not stopping:
    msgs = consumer.consume(num_messages=500, timeout=0.2)
    lines = []
    for m in msgs:
        if m.error():
            print(f"ERROR {m.error()}", file=sys.stderr, flush=True)
            continue
        lines.append(json.dumps({"topic": m.topic(), "partition": m.partition(),
                                 "offset": m.offset(), "value": m.value().decode()}))
    if not lines:
        continue
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as e:
        print(f"COMMIT FAILED {e}", file=sys.stderr, flush=True)
consumer.close()
print("CLOSED", file=sys.stderr, flush=True)
