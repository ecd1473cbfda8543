#!/usr/bin/env python3
"""A SASL client over TLS through confluent-kafka (librdkafka), for the security tests.

Usage: secure_client.py BOOTSTRAP CA_FILE MECHANISM USER SECRET TOPIC [TXN_ID]
  MECHANISM: SCRAM-SHA-512, SCRAM-SHA-256, PLAIN (SECRET is the password) or
  OAUTHBEARER (SECRET is the bearer token; USER is ignored), or NONE (no SASL).
Produces 5 records to TOPIC (acks=all), then reads them back from the start (assigned, in
group "secure-client", which the principal needs READ on; nothing is committed),
and prints one JSON line: {"outcome": "ok"} or {"outcome": "authentication" |
"authorization" | "error", "error": text}. Exit 0 when it could say which; every wait is
bounded. With TXN_ID the 5 records are produced in one transaction of that
transactional.id (committed) instead, and a refusal of the id is "txn-authorization".
"""
import json
import sys
import time

from confluent_kafka import KafkaError, Consumer, Producer, TopicPartition, OFFSET_BEGINNING


def config(bootstrap, ca, mechanism, user, secret):
    c = {"bootstrap.servers": bootstrap, "ssl.ca.location": ca, "socket.timeout.ms": 5000}
    if mechanism == "NONE":
        c["security.protocol"] = "SSL"
        return c
    c["security.protocol"] = "SASL_SSL"
    c["sasl.mechanisms"] = mechanism
    if mechanism == "OAUTHBEARER":
        c["oauth_cb"] = lambda _cfg: (secret, time.time() + 3600)
    else:
        c["sasl.username"], c["sasl.password"] = user, secret
    return c


def refused(errors):
    codes = {e.code() for e in errors if isinstance(e, KafkaError)}
    return bool(codes & {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})


def classify(errors):
    distinct = list(dict.fromkeys(str(e) for e in errors))
    text = "; ".join(distinct[:3])[:2000]
    codes = {e.code() for e in errors if isinstance(e, KafkaError)}
    if KafkaError._AUTHENTICATION in codes or KafkaError.SASL_AUTHENTICATION_FAILED in codes:
        return {"outcome": "authentication", "error": text}
    if KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED in codes:
        return {"outcome": "txn-authorization", "error": text}
    if KafkaError.TOPIC_AUTHORIZATION_FAILED in codes:
        return {"outcome": "authorization", "error": text}
    return {"outcome": "error", "error": text}


def transactional(conf, topic, txn_id, errors):
    """Produces 5 records in one committed transaction; whether it was committed."""
    from confluent_kafka import KafkaException
    p = Producer(dict(conf, **{"transactional.id": txn_id, "message.timeout.ms": 10000}))
    try:
        p.init_transactions(15)
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, key=f"k{i}", value=f"v{i}",
                      on_delivery=lambda e, _m: errors.append(e) if e else None)
        p.commit_transaction(15)
        return True
    except KafkaException as e:
        errors.append(e.args[0])
        return False


def main():
    bootstrap, ca, mechanism, user, secret, topic = sys.argv[1:7]
    errors = []
    conf = config(bootstrap, ca, mechanism, user, secret)
    conf["error_cb"] = errors.append
    if len(sys.argv) > 7:
        ok = transactional(conf, topic, sys.argv[7], errors)
        print(json.dumps({"outcome": "ok"} if ok else classify(errors)))
        return 0
    p = Producer(dict(conf, **{"acks": "all", "message.timeout.ms": 10000}))
    delivered, failed = [], []
    for i in range(5):
        p.produce(topic, key=f"k{i}", value=f"v{i}",
                  on_delivery=lambda e, m: failed.append(e) if e else delivered.append(m.offset()))
    deadline = time.time() + 15
    # A refused login is final: stop at the first authentication error instead of letting
    # librdkafka retry until the message timeout.
    while len(delivered) + len(failed) < 5 and time.time() < deadline and not refused(errors):
        p.flush(0.2)
    if len(delivered) != 5:
        print(json.dumps(classify(errors + failed or ["not delivered"])))
        return 0
    c = Consumer(dict(conf, **{"group.id": "secure-client", "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, deadline = 0, time.time() + 15
    while got < 5 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None:
            if m.error():
                errors.append(m.error())
                break
            got += 1
    c.close()
    print(json.dumps({"outcome": "ok"} if got >= 5 else classify(errors or [f"read {got} of 5"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
