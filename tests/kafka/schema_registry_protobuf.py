#!/usr/bin/env python3
"""Shale's schema registry with confluent-kafka's Protobuf serializers.

Usage: schema_registry_protobuf.py BOOTSTRAP REGISTRY_URL PREFIX
  ProtobufSerializer registers the value schema of {PREFIX}-orders (it sends the message's
  file as a base64 FileDescriptorProto) and produces 50 records with message shop.Order
  v1, then 50 with v2 (a field added: compatible); ProtobufDeserializer, given the
  registry, reads all 100 back (it fetches each writer's schema with format=serialized).
  Then: the schema by ID in the serialized format is a descriptor of shop.Order; an
  incompatible evolution (a field's type changed across scalar groups) is refused with
  409 and by test_compatibility; the same schema under another subject has the same ID;
  an invalid .proto text is refused with 42201.
The message classes are built from descriptors at run time (no protoc). The last stdout
line is one JSON object; exit 0 only if every check passed, otherwise exit 1 with a
one-line reason on stderr. Every wait is bounded; a watchdog ends the run after 58 s.
"""
import base64
import json
import os
import sys
import threading

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

threading.Timer(58, lambda: (print("watchdog: run took over 58 s", file=sys.stderr), os._exit(1))).start()

bootstrap, url, prefix = sys.argv[1:4]
topic = f"{prefix}-orders"
subject = f"{topic}-value"
report = {}
T = descriptor_pb2.FieldDescriptorProto


def fail(why):
    print(json.dumps(report))
    print(why, file=sys.stderr)
    os._exit(1)


def order_class(fields):
    """shop.Order with `fields` ((name, number, type) ...), in a file of its own pool."""
    f = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
    m = f.message_type.add(name="Order")
    for name, number, kind in fields:
        m.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


V1 = order_class([("id", 1, T.TYPE_INT64), ("item", 2, T.TYPE_STRING)])
V2 = order_class([("id", 1, T.TYPE_INT64), ("item", 2, T.TYPE_STRING), ("qty", 3, T.TYPE_INT32)])
V3_BAD = order_class([("id", 1, T.TYPE_STRING), ("item", 2, T.TYPE_STRING), ("qty", 3, T.TYPE_INT32)])

client = SchemaRegistryClient({"url": url})
admin = AdminClient({"bootstrap.servers": bootstrap})
for fut in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    fut.result(10)

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
ctx = SerializationContext(topic, MessageField.VALUE)
sent = {}
for version, cls in ((1, V1), (2, V2)):
    ser = ProtobufSerializer(cls, client, conf={"auto.register.schemas": True, "use.deprecated.format": False})
    for i in range(50):
        n = (version - 1) * 50 + i
        msg = cls(id=n, item=f"item-{n}")
        if version == 2:
            msg.qty = n % 7
        producer.produce(topic, key=str(n).encode(), value=ser(msg, ctx))
        sent[n] = (f"item-{n}", n % 7 if version == 2 else 0)
if producer.flush(20) != 0:
    fail("records still unsent after 20 s")
report["produced"] = len(sent)
report["versions"] = client.get_versions(subject)
if report["versions"] != [1, 2]:
    fail(f"versions {report['versions']}")

deser = ProtobufDeserializer(V2, {"use.deprecated.format": False}, client)
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
    got[value.id] = (value.item, value.qty)
consumer.close()
report["consumed"] = len(got)
mismatched = [n for n in sent if got.get(n) != sent[n]]
report["mismatched"] = len(mismatched)
if mismatched:
    fail(f"{len(mismatched)} records read back differently, first {mismatched[0]}: {got.get(mismatched[0])}")

v1_id = client.get_version(subject, 1).schema_id
serialized = client.get_schema(v1_id, fmt="serialized").schema_str
fd = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(serialized))
report["serialized_fields"] = [f.name for f in fd.message_type[0].field]
if fd.message_type[0].name != "Order" or report["serialized_fields"] != ["id", "item"]:
    fail(f"the serialized schema {v1_id} is {fd}")
report["text"] = client.get_schema(v1_id).schema_str

bad = Schema(base64.b64encode(V3_BAD.DESCRIPTOR.file.serialized_pb).decode(), "PROTOBUF")
try:
    client.register_schema(subject, bad)
    fail("an incompatible Protobuf schema was registered")
except SchemaRegistryError as e:
    report["incompatible"] = e.error_code
    report["incompatible_message"] = e.error_message[:160]
if client.test_compatibility(subject, bad):
    fail("test_compatibility said compatible")
v1_text = base64.b64encode(V1.DESCRIPTOR.file.serialized_pb).decode()
report["shared_id"] = client.register_schema(f"{prefix}-copy-value", Schema(v1_text, "PROTOBUF")) == v1_id
try:
    client.register_schema(subject, Schema("message {", "PROTOBUF"))
    fail("an invalid .proto text was registered")
except SchemaRegistryError as e:
    report["invalid"] = e.error_code
report["ok"] = True
print(json.dumps(report))
os._exit(0)
