#!/usr/bin/env python3
"""confluent-kafka's SchemaRegistryClient over HTTPS, trusting a given CA.

Usage: schema_registry_tls.py REGISTRY_URL CA_FILE SUBJECT
  Registers an Avro schema under SUBJECT, reads it back by ID and as the subject's latest
  version, with SchemaRegistryClient({"url", "ssl.ca.location"}).
The last stdout line is one JSON object {"id", "version"}; exit 0 only if every call
succeeded and read back what was registered, otherwise exit 1 with a one-line reason on
stderr. A watchdog ends the run after 58 s.
"""
import json
import os
import sys
import threading

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

threading.Timer(58, lambda: (print("watchdog: run took over 58 s", file=sys.stderr), os._exit(1))).start()

url, ca, subject = sys.argv[1:4]
SCHEMA = json.dumps({"type": "record", "name": "Tls", "fields": [{"name": "id", "type": "long"}]})
try:
    client = SchemaRegistryClient({"url": url, "ssl.ca.location": ca})
    schema_id = client.register_schema(subject, Schema(SCHEMA, "AVRO"))
    by_id = client.get_schema(schema_id)
    latest = client.get_latest_version(subject)
except Exception as e:  # noqa: BLE001 - the reason is the report
    print(f"{type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
    os._exit(1)
if json.loads(by_id.schema_str) != json.loads(SCHEMA) or latest.schema_id != schema_id:
    print(f"read back {by_id.schema_str!r} and id {latest.schema_id}, registered id {schema_id}", file=sys.stderr)
    os._exit(1)
print(json.dumps({"id": schema_id, "version": latest.version}))
os._exit(0)
