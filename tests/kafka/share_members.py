"""Members of a share group with librdkafka (PyPI's confluent-kafka `ShareConsumer`,
librdkafka's KIP-932 preview), for the share tests:

    python share_members.py BOOTSTRAP GROUP TOPIC MEMBERS EXPECTED

Sets the group's `share.auto.offset.reset` to `earliest`, then runs MEMBERS share
consumers in threads with explicit acknowledgement, 10 records a poll: each works 10 ms on
every record it is given and accepts it, commits synchronously after each poll, and counts what the broker confirmed.
They stop once EXPECTED records were confirmed in all (or after 90 s of nothing new),
and the script prints one JSON line: {"members": [[offset, ...], ...]}, the offsets each
member had confirmed as accepted, in order.
"""

import json
import sys
import threading
import time

from confluent_kafka import ShareConsumer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

bootstrap, group, topic, members, expected = sys.argv[1:6]
members, expected = int(members), int(expected)
admin = AdminClient({"bootstrap.servers": bootstrap})
reset = ConfigEntry("share.auto.offset.reset", "earliest",
                    incremental_operation=AlterConfigOpType.SET)
for f in admin.incremental_alter_configs(
        [ConfigResource("group", group, incremental_configs=[reset])]).values():
    f.result()

confirmed = [[] for _ in range(members)]
lock = threading.Lock()
last_progress = [time.time()]


def total():
    with lock:
        return sum(len(c) for c in confirmed)


def member(i):
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit", "max.poll.records": 10})
    c.subscribe([topic])
    while total() < expected and time.time() - last_progress[0] < 90:
        got = [m for m in c.poll(0.5) if m.error() is None]
        for m in got:
            time.sleep(0.01)  # the work
            c.acknowledge(m)
        if not got:
            continue
        results = c.commit_sync()
        failed = {(r.topic, r.partition) for r in (results or []) if r.error is not None}
        with lock:
            for m in got:
                if (m.topic(), m.partition()) not in failed:
                    confirmed[i].append(m.offset())
            last_progress[0] = time.time()
    c.close()


threads = [threading.Thread(target=member, args=(i,)) for i in range(members)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"members": confirmed}))
