"""What the Python client checks (confluent_client.py, kafka_python_client.py,
aiokafka_client.py) share: the one-JSON-line report with its watchdog, the records the
roundtrip scenario writes and how each record read back is checked against them, and the
group scenario's rules. Each client script keeps only its own client's calls.
"""
import json
import os
import sys
import threading

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PER_CODEC = 200
BASE_TS = 1700000000000
GLOBAL_LIMIT_S = 58
SESSION_TIMEOUT_MS = 30000  # a member that did not leave holds up the next join this long
JOIN_LIMIT_S = 10  # a join after the previous member left must take less than this


class Report:
    """The result a check prints as its last stdout line, and the step it is in."""

    def __init__(self, client):
        self.client = client
        self.result = {"client": client}
        self.step = "start"
        # Appended to a failure's reason (librdkafka's last error, for one).
        self.reason_suffix = lambda: ""

    def set_step(self, name):
        self.step = name

    def finish(self, ok, reason=None):
        """Prints the result and exits: 0 only if `ok`, else 1 with the reason on stderr."""
        self.result["ok"] = ok
        if reason:
            reason += self.reason_suffix()
            self.result["error"] = reason
        sys.stdout.write(json.dumps(self.result) + "\n")
        sys.stdout.flush()
        if not ok:
            sys.stderr.write("FAIL %s: %s\n" % (self.client, reason))
            sys.stderr.flush()
        # os._exit: neither background client threads nor librdkafka's destructors may
        # hold up the exit.
        os._exit(0 if ok else 1)

    def stuck(self):
        return "scenario did not finish within %d s (stuck in %s)" % (GLOBAL_LIMIT_S, self.step)

    def errored(self, e):
        """The reason for a client error `e` raised during the current step."""
        return "%s during %s: %s" % (type(e).__name__, self.step,
                                     (str(e) or repr(e)).replace("\n", " "))

    def start_watchdog(self, seconds=GLOBAL_LIMIT_S):
        """Ends the run as failed after `seconds`. A timer thread, not SIGALRM: it fires
        even while the main thread is blocked inside a client call."""
        watchdog = threading.Timer(seconds, lambda: self.finish(False, self.stuck()))
        watchdog.daemon = True
        watchdog.start()


def filler(i):
    return bytes((i * 31 + j * 7) % 256 for j in range(100))


def expected_records():
    """{(codec, i): (key, value, headers, timestamp)} for the roundtrip scenario."""
    out = {}
    for ci, codec in enumerate(CODECS):
        for i in range(PER_CODEC):
            out[(codec, i)] = (
                b"k%d" % i,
                ("%s-%d-" % (codec, i)).encode() + filler(i),
                [("codec", codec.encode()), ("i", str(i).encode())],
                BASE_TS + ci * 1000 + i,
            )
    return out


class ReadBack:
    """Checks the records of the roundtrip scenario as they are read back, counting what
    was consumed, duplicated and mismatched into the report's result."""

    def __init__(self, result):
        self.result = result
        self.expected = expected_records()
        self.seen = set()
        result.update({"scenario": "roundtrip", "codecs": CODECS, "produced": 0, "consumed": 0,
                       "missing": None, "duplicates": 0, "mismatched": 0})

    def batches(self):
        """(codec, records) to produce: records as (key, value, headers, timestamp)."""
        return [(codec, [v for (c, _i), v in self.expected.items() if c == codec])
                for codec in CODECS]

    def check(self, key, value, headers, timestamp, create_time):
        """One record read back; `create_time`: whether its timestamp type is CreateTime."""
        result = self.result
        result["consumed"] += 1
        value = value or b""
        parts = value.split(b"-", 2)
        ident = None
        if len(parts) == 3 and parts[1].isdigit():
            ident = (parts[0].decode("latin-1"), int(parts[1]))
        if ident not in self.expected:
            result["mismatched"] += 1
            return
        if ident in self.seen:
            result["duplicates"] += 1
            return
        self.seen.add(ident)
        want_key, want_value, want_headers, want_ts = self.expected[ident]
        got_headers = [(k, v) for k, v in (headers or [])]
        if key != want_key or value != want_value or got_headers != want_headers \
                or timestamp != want_ts or not create_time:
            result["mismatched"] += 1
            if result["mismatched"] == 1:
                sys.stderr.write("first mismatch %r: key=%r headers=%r ts=%r (create time: %r)\n"
                                 % (ident, key, got_headers, timestamp, create_time))

    def problem(self):
        """None if every record came back once and intact, else why not."""
        result = self.result
        result["missing"] = len(self.expected) - len(self.seen)
        if (result["missing"] == 0 and result["duplicates"] == 0 and result["mismatched"] == 0
                and result["consumed"] == result["produced"] == len(self.expected)):
            return None
        return ("roundtrip check failed: produced=%d consumed=%d missing=%d duplicates=%d "
                "mismatched=%d" % (result["produced"], result["consumed"], result["missing"],
                                   result["duplicates"], result["mismatched"]))


def start_group(result):
    """The group scenario's counters in the result."""
    result.update({"scenario": "group", "first": 0, "second": 0, "duplicates": 0,
                   "missing": None, "committed": None, "after_commit": None, "join_s": []})


def join_problem(result, name, joins, partitions, within_s):
    """None if the member's first assignment (joins: [(partition count, seconds since
    subscribe)]) had every partition and came within JOIN_LIMIT_S, else why not (a previous
    member that did not leave would hold it up for SESSION_TIMEOUT_MS)."""
    result.setdefault("join_s", []).append(round(joins[0][1], 2) if joins else None)
    if not joins:
        return ("%s was not assigned partitions within %d s (did the previous member "
                "not leave the group?)" % (name, within_s))
    count, took = joins[0]
    if count != partitions:
        return "%s was assigned %d partitions, want all %d" % (name, count, partitions)
    if took > JOIN_LIMIT_S:
        return ("%s took %.1f s to join (limit %d s): did the previous member not leave "
                "the group? (session timeout %d s)" % (name, took, JOIN_LIMIT_S,
                                                       SESSION_TIMEOUT_MS // 1000))
    return None


def committed_problem(result, committed, want):
    """None if the group's committed offsets (per partition) add up to `want`."""
    result["committed_by_partition"] = committed
    result["committed"] = sum(o for o in committed if o is not None)
    if result["committed"] != want or None in committed:
        return "the group's committed offsets %r do not add up to %d" % (committed, want)
    return None


def group_problem(result, extra):
    """None if the group scenario's counts hold, `extra` being what consumer 3 read."""
    result["after_commit"] = extra
    if (result["first"] == 150 and result["second"] == 250 and result["duplicates"] == 0
            and result["missing"] == 0 and extra == 0):
        return None
    return ("group check failed: first=%d second=%d duplicates=%d missing=%d after_commit=%d"
            % (result["first"], result["second"], result["duplicates"], result["missing"], extra))
