#!/usr/bin/env python3
"""Shale's schema registry with confluent-kafka's registry client and Avro serializers.

Usage: schema_registry.py BOOTSTRAP REGISTRY_URL PREFIX
  Registers value schemas of topic {PREFIX}-orders with SchemaRegistryClient, produces
  100 records with AvroSerializer (v1) and 100 with an evolved schema (v2: a field added
  with a default) through the Kafka listener, and reads all 200 back with
  AvroDeserializer (each with its writer's schema, by the ID the record carries), then
  checks what a registry client sees: an incompatible evolution refused with 409 (and
  accepted once the subject's level is NONE), the same schema under another subject
  sharing its ID, an invalid schema refused with 42201, lookups, versions, soft and
  permanent deletes (40401/40402/40404/40405/40407 after them), global and subject
  config, and the subject of an ID.
The last stdout line is one JSON object; exit 0 only if every check passed, otherwise
exit 1 with a one-line reason on stderr. Every wait is bounded; a watchdog ends the run
after 58 s.
"""
import json
import os
import sys
import threading

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

threading.Timer(58, lambda: (print("watchdog: run took over 58 s", file=sys.stderr), os._exit(1))).start()

bootstrap, url, prefix = sys.argv[1:4]
topic = f"{prefix}-orders"
subject = f"{topic}-value"
report = {}


def fail(why):
    print(json.dumps(report))
    print(why, file=sys.stderr)
    os._exit(1)


def expect_error(what, code, fn):
    try:
        fn()
    except SchemaRegistryError as e:
        if e.error_code != code:
            fail(f"{what}: error {e.error_code} ({e.error_message}), expected {code}")
        return e
    fail(f"{what}: succeeded, expected error {code}")


V1 = json.dumps({"type": "record", "name": "Order", "namespace": "shop",
                 "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"}]})
V2 = json.dumps({"type": "record", "name": "Order", "namespace": "shop",
                 "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"},
                            {"name": "qty", "type": "int", "default": 1}]})
V3_BAD = json.dumps({"type": "record", "name": "Order", "namespace": "shop",
                     "fields": [{"name": "id", "type": "long"}, {"name": "item", "type": "string"},
                                {"name": "qty", "type": "int", "default": 1},
                                {"name": "note", "type": "string"}]})

client = SchemaRegistryClient({"url": url})
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    f.result(10)

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
sent = []
for version, schema in ((1, V1), (2, V2)):
    ser = AvroSerializer(client, schema, conf={"auto.register.schemas": True})
    for i in range(100):
        n = (version - 1) * 100 + i
        value = {"id": n, "item": f"item-{n}"}
        if version == 2:
            value["qty"] = n % 7
        payload = ser(value, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=str(n).encode(), value=payload)
        sent.append(value)
if producer.flush(20) != 0:
    fail("records still unsent after 20 s")
report["produced"] = len(sent)

latest = client.get_latest_version(subject)
report["versions"] = client.get_versions(subject)
if report["versions"] != [1, 2] or latest.version != 2:
    fail(f"versions {report['versions']}, latest {latest.version}")
v1_id = client.get_version(subject, 1).schema_id
report["ids"] = [v1_id, latest.schema_id]

deser = AvroDeserializer(client)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{prefix}-reader",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe([topic])
got = {}
for _ in range(300):
    if len(got) == len(sent):
        break
    msg = consumer.poll(0.2)
    if msg is None or msg.error():
        continue
    value = deser(msg.value(), SerializationContext(topic, MessageField.VALUE))
    got[value["id"]] = value
consumer.close()
report["consumed"] = len(got)
mismatched = [v["id"] for v in sent if got.get(v["id"]) != v]
report["mismatched"] = len(mismatched)
if mismatched:
    fail(f"{len(mismatched)} records read back differently, first {mismatched[0]}: {got.get(mismatched[0])}")

# Compatibility: the default level (BACKWARD) refuses a field without a default.
e = expect_error("incompatible registration", 409, lambda: client.register_schema(subject, Schema(V3_BAD, "AVRO")))
report["incompatible_message"] = e.error_message[:120]
check = client.test_compatibility(subject, Schema(V3_BAD, "AVRO"))
if check:
    fail("test_compatibility said compatible")
client.set_compatibility(subject_name=subject, level="NONE")
if client.get_compatibility(subject) != "NONE":
    fail("subject level not NONE")
v3_id = client.register_schema(subject, Schema(V3_BAD, "AVRO"))
report["v3_id"] = v3_id

# The same schema under another subject has the same ID.
other = client.register_schema(f"{prefix}-copy-value", Schema(V1, "AVRO"))
report["shared_id"] = other == v1_id
if other != v1_id:
    fail(f"the same schema under another subject got ID {other}, not {v1_id}")
subjects_of_v1 = sorted(client.get_subjects_by_schema_id(v1_id)) if hasattr(client, "get_subjects_by_schema_id") else None
report["subjects_of_v1"] = subjects_of_v1

# Lookup finds the version; an invalid schema is refused.
found = client.lookup_schema(subject, Schema(V2, "AVRO"))
if (found.version, found.schema_id) != (2, latest.schema_id):
    fail(f"lookup found version {found.version} id {found.schema_id}")
expect_error("invalid schema", 42201, lambda: client.register_schema(subject, Schema('{"type":"recordz"}', "AVRO")))
expect_error("unknown subject", 40401, lambda: client.get_latest_version(f"{prefix}-nothing"))
expect_error("unknown version", 40402, lambda: client.get_version(subject, 9))

# Deletes: permanent needs soft first; soft twice is refused.
expect_error("permanent before soft", 40407, lambda: client.delete_version(subject, 3, permanent=True))
if client.delete_version(subject, 3) != 3:
    fail("soft delete of version 3")
expect_error("deleted version", 40402, lambda: client.get_version(subject, 3))
client.delete_version(subject, 3, permanent=True)
expect_error("permanent subject before soft", 40405, lambda: client.delete_subject(subject, permanent=True))
deleted = client.delete_subject(subject)
report["soft_deleted"] = deleted
expect_error("soft delete twice", 40404, lambda: client.delete_subject(subject))
if subject in client.get_subjects():
    fail("a soft-deleted subject is listed")
client.delete_subject(subject, permanent=True)
# A schema stays readable by ID while another subject uses it.
if client.get_schema(v1_id).schema_str is None:
    fail("schema by ID")
report["global_level"] = client.get_compatibility()
report["ok"] = True
print(json.dumps(report))
os._exit(0)
