#!/usr/bin/env python3
"""Shale's schema registry with confluent-kafka's JSON Schema serializers.

Usage: schema_registry_json.py BOOTSTRAP REGISTRY_URL PREFIX
  JSONSerializer registers the value schema of {PREFIX}-orders (a closed object: no
  additional properties) and produces 50 records with it, then 50 with an evolved schema
  (an optional property added, compatible for a closed content model); JSONDeserializer
  reads all 100 back with each record's writer schema (by the ID it carries). Then what
  a registry client sees: an incompatible evolution (a property's type changed) refused
  with 409 and reported by test_compatibility, an object that breaks the schema refused
  by the serializer, the same schema under another subject sharing its ID, an invalid
  schema refused with 42201, the versions and `/schemas/types`.
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
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

threading.Timer(58, lambda: (print("watchdog: run took over 58 s", file=sys.stderr), os._exit(1))).start()

bootstrap, url, prefix = sys.argv[1:4]
topic = f"{prefix}-orders"
subject = f"{topic}-value"
report = {}


def fail(why):
    print(json.dumps(report))
    print(why, file=sys.stderr)
    os._exit(1)


def schema(extra=None, id_type="integer"):
    properties = {"id": {"type": id_type}, "item": {"type": "string"}}
    properties.update(extra or {})
    return json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "title": "Order",
                       "type": "object", "properties": properties, "required": ["id", "item"],
                       "additionalProperties": False})


V1 = schema()
V2 = schema({"qty": {"type": "integer"}})
V3_BAD = schema({"qty": {"type": "integer"}}, id_type="string")

client = SchemaRegistryClient({"url": url})
report["types"] = client.get_schema_types() if hasattr(client, "get_schema_types") else None
admin = AdminClient({"bootstrap.servers": bootstrap})
for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    f.result(10)

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
ctx = SerializationContext(topic, MessageField.VALUE)
sent = []
for version, text in ((1, V1), (2, V2)):
    ser = JSONSerializer(text, client, conf={"auto.register.schemas": True})
    for i in range(50):
        n = (version - 1) * 50 + i
        value = {"id": n, "item": f"item-{n}"}
        if version == 2:
            value["qty"] = n % 7
        producer.produce(topic, key=str(n).encode(), value=ser(value, ctx))
        sent.append(value)
    if version == 2:
        try:
            ser({"id": "not a number", "item": "x"}, ctx)
            fail("the serializer accepted an object its schema refuses")
        except SerializationError:
            report["invalid_object_refused"] = True
if producer.flush(20) != 0:
    fail("records still unsent after 20 s")
report["produced"] = len(sent)
report["versions"] = client.get_versions(subject)
if report["versions"] != [1, 2]:
    fail(f"versions {report['versions']}")

deser = JSONDeserializer(None, schema_registry_client=client)
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
    value = deser(msg.value(), ctx)
    got[value["id"]] = value
consumer.close()
report["consumed"] = len(got)
mismatched = [v["id"] for v in sent if got.get(v["id"]) != v]
report["mismatched"] = len(mismatched)
if mismatched:
    fail(f"{len(mismatched)} records read back differently, first {mismatched[0]}: {got.get(mismatched[0])}")

try:
    client.register_schema(subject, Schema(V3_BAD, "JSON"))
    fail("an incompatible JSON schema was registered")
except SchemaRegistryError as e:
    report["incompatible"] = e.error_code
    report["incompatible_message"] = e.error_message[:160]
if client.test_compatibility(subject, Schema(V3_BAD, "JSON")):
    fail("test_compatibility said compatible")
v1_id = client.get_version(subject, 1).schema_id
other = client.register_schema(f"{prefix}-copy-value", Schema(V1, "JSON"))
report["shared_id"] = other == v1_id
try:
    client.register_schema(subject, Schema('{"type": "objekt"}', "JSON"))
    fail("an invalid JSON schema was registered")
except SchemaRegistryError as e:
    report["invalid"] = e.error_code
report["ok"] = True
print(json.dumps(report))
os._exit(0)
