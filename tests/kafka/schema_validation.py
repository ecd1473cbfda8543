#!/usr/bin/env python3
"""Broker-side schema ID validation through the Kafka listener, with confluent-kafka.

Usage: schema_validation.py BOOTSTRAP REGISTRY_URL TOPIC
  TOPIC exists with confluent.value.schema.validation=true and a schema registered under
  TOPIC-value. Produces, each in a batch of its own: a plain JSON value (not in the
  registry's wire format), a value serialized by AvroSerializer with that subject's
  schema, and a keyed tombstone (null value). Reports each delivery's outcome.
The last stdout line is one JSON object: {"refused": {"code", "message"} for the plain
value, "accepted": [offsets of the others]}; exit 0 only if the plain value was refused
and the others accepted, otherwise exit 1 with a one-line reason on stderr. Every wait is
bounded; a watchdog ends the run after 58 s.
"""
import json
import os
import sys
import threading

from confluent_kafka import KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

threading.Timer(58, lambda: (print("watchdog: run took over 58 s", file=sys.stderr), os._exit(1))).start()

bootstrap, url, topic = sys.argv[1:4]
report = {}


def fail(why):
    print(json.dumps(report))
    print(why, file=sys.stderr)
    os._exit(1)


client = SchemaRegistryClient({"url": url})
schema = client.get_latest_version(f"{topic}-value").schema.schema_str
serialize = AvroSerializer(client, schema, conf={"auto.register.schemas": False, "use.latest.version": True})
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                     "message.send.max.retries": 0})
outcomes = []


def produce(key, value):
    done = {}
    producer.produce(topic, key=key, value=value,
                     on_delivery=lambda err, msg: done.update(err=err, offset=msg.offset()))
    if producer.flush(15) != 0 or not done:
        fail(f"no delivery report for {value!r} after 15 s")
    outcomes.append(done)
    return done


refused = produce(b"k1", b'{"id": 1, "item": "plain"}')
if refused["err"] is None:
    fail(f"a plain JSON value was accepted at offset {refused['offset']}")
report["refused"] = {"code": refused["err"].name(), "message": refused["err"].str()}
if refused["err"].code() != KafkaError.INVALID_RECORD:
    fail(f"a plain JSON value was refused with {refused['err'].name()}, expected INVALID_RECORD")

accepted = []
for key, value in ((b"k2", serialize({"id": 2, "item": "typed"}, SerializationContext(topic, MessageField.VALUE))),
                   (b"k3", None)):
    done = produce(key, value)
    if done["err"] is not None:
        fail(f"{value!r} was refused: {done['err'].str()}")
    accepted.append(done["offset"])
report["accepted"] = accepted
report["ok"] = True
print(json.dumps(report))
os._exit(0)
