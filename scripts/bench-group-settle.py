"""How long a consumer group takes to settle after one member joins and after one leaves,
with librdkafka (confluent-kafka) members in one process, one thread each:

    python bench-group-settle.py BOOTSTRAP TOPIC PARTITIONS MEMBERS MODE HEARTBEAT_MS

MODE is `eager` (classic protocol, range assignor: every member revokes everything),
`cooperative` (classic protocol, cooperative-sticky) or `consumer` (KIP-848: the broker
assigns, members reconcile one by one). HEARTBEAT_MS is the classic members' heartbeat
interval; the consumer protocol's is the broker's (`groups.consumer_heartbeat_interval_ms`).

Settled means: every partition owned by exactly one member, as the members' own rebalance
callbacks say, and balanced (each of the members owning PARTITIONS // n or one more).
Times run from the event (a new member's subscribe; a member's close) to the first moment
that holds, checked every 5 ms; meanwhile the most partitions owned by nobody at once (a
stop-the-world rebalance pauses them all) is recorded. Prints one JSON object.
"""

import json
import sys
import threading
import time

from confluent_kafka import Consumer

bootstrap, topic, partitions, members, mode, heartbeat_ms = sys.argv[1:7]
partitions, members, heartbeat_ms = int(partitions), int(members), int(heartbeat_ms)
group = f"settle-{mode}-{int(time.time())}"
lock = threading.Lock()
owned = {}  # member name -> set of partitions


class Member:
    def __init__(self, name):
        self.name = name
        self.stop = threading.Event()
        self.closed = threading.Event()
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        if mode == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["group.protocol"] = "classic"
            conf["partition.assignment.strategy"] = "range" if mode == "eager" else "cooperative-sticky"
            conf["session.timeout.ms"] = max(6000, heartbeat_ms * 6)
            conf["heartbeat.interval.ms"] = heartbeat_ms
        self.consumer = Consumer(conf)
        with lock:
            owned[name] = set()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def on_assign(self, c, ps):
        if mode == "cooperative":
            c.incremental_assign(ps)
        elif mode == "eager":
            c.assign(ps)
        with lock:
            owned[self.name] |= {p.partition for p in ps}

    def on_revoke(self, c, ps):
        if mode == "cooperative":
            c.incremental_unassign(ps)
        elif mode == "eager":
            c.unassign()
        with lock:
            owned[self.name] -= {p.partition for p in ps}

    def on_lost(self, c, ps):
        self.on_revoke(c, ps)

    def run(self):
        self.consumer.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)
        while not self.stop.is_set():
            self.consumer.poll(0.05)
        self.consumer.close()
        with lock:
            owned.pop(self.name, None)
        self.closed.set()


def settled():
    with lock:
        n = len(owned)
        if n == 0:
            return False
        counts = [len(s) for s in owned.values()]
        union = set().union(*owned.values())
        total = sum(counts)
    low = partitions // n
    return total == partitions and len(union) == partitions and all(low <= c <= low + 1 for c in counts)


unowned_max = {"now": 0}


def unowned():
    with lock:
        return partitions - len(set().union(*owned.values())) if owned else partitions


def wait_settled(what, within=300):
    start = time.monotonic()
    unowned_max["now"] = 0
    while not settled():
        unowned_max["now"] = max(unowned_max["now"], unowned())
        if time.monotonic() - start > within:
            with lock:
                counts = sorted(len(s) for s in owned.values())
            raise SystemExit(f"{mode}: not settled {within} s after {what}: {counts}")
        time.sleep(0.005)
    return time.monotonic() - start


started = time.monotonic()
group_members = [Member(f"m{i}") for i in range(members)]
formed = wait_settled(f"{members} members joined")
time.sleep(2)  # let heartbeats settle into their rhythm
joiner = Member(f"m{members}")
join_s = wait_settled("one member joined")
join_paused = unowned_max["now"]
group_members.append(joiner)
time.sleep(2)
leaving = group_members.pop(0)
t0 = time.monotonic()
leaving.stop.set()
leave_s, leave_paused = None, 0
while leave_s is None:
    leave_paused = max(leave_paused, unowned())
    if leaving.closed.is_set() and settled():
        leave_s = time.monotonic() - t0
    elif time.monotonic() - t0 > 300:
        raise SystemExit(f"{mode}: not settled 300 s after a member left")
    time.sleep(0.005)
for m in group_members:
    m.stop.set()
for m in group_members:
    m.closed.wait(30)
print(json.dumps({"mode": mode, "members": members, "partitions": partitions,
                  "heartbeat_ms": heartbeat_ms, "formed_s": round(formed, 2),
                  "join_s": round(join_s, 3), "join_unowned_max": join_paused,
                  "leave_s": round(leave_s, 3), "leave_unowned_max": leave_paused}))
