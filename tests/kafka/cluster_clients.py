#!/usr/bin/env python3
"""Exactly-once delivery through partition leader failovers, with confluent-kafka.

A test runs the two modes below as processes against a multi-broker Shale cluster while
it kills and restarts partition leaders, then reads the files they wrote.

  produce BOOTSTRAP TOPIC OUTDIR N SECONDS
      One idempotent producer (acks=all, lz4, delivery.timeout.ms=120000) sends records
      i=0..N-1 (key k{i}, value v{i}, header i=str(i)) at a steady pace over SECONDS.
      Every delivery report goes to OUTDIR/acked.jsonl ({"i","p","o","t"}) or, for a
      failure, OUTDIR/failed.jsonl ({"i","error","t"}). After the last record it flushes
      (at most 150 s), then writes OUTDIR/produced.done holding the number acked (also
      when the watchdog ends the run, so that consumers stop waiting).
      JSON: produced, acked, failed, failures (first texts), undelivered, by_partition.
      Exit 0 iff acked == N.

  consume BOOTSTRAP TOPIC GROUP OUTDIR MEMBERS STRATEGY TIMEOUT [--leave-after K]
          [--join-after K2]
      MEMBERS consumers of GROUP (threads; STRATEGY is partition.assignment.strategy:
      range or cooperative-sticky). A record counts as consumed only once its offset is
      committed: each record is committed synchronously on its own; a commit refused for
      a reason that may pass (coordinator moving, timeout, connection lost) is retried
      with backoff (about 12 s in all) while the member owns the partition; a commit that
      finally fails is not recorded, and the member seeks the partition back to the
      record so that it (or, after a rebalance, the partition's next owner, from the last
      commit) reads it again. When a failed commit may nevertheless have been applied
      (its answer was lost), the group's committed offset is read back: each commit
      carries the member and offset as metadata, so a commit that did land is recognised
      and the record counted (commit_verified). Each committed record is appended to
      OUTDIR/consumed-{member}.jsonl as {"i","p","o","member","t"}.
      --leave-after K: member 0 closes (leaves the group) after it consumed K records.
      --join-after K2: member MEMBERS joins once K2 records were consumed in all.
      Stops once OUTDIR/produced.done exists (written after this process started) and
      every (p,o) of OUTDIR/acked.jsonl was consumed (then polls 2 s more, to catch late
      duplicates), or after TIMEOUT seconds.
      JSON: consumed, distinct, duplicates (a (p,o) consumed twice), missing (acked, not
      consumed), mismatched (consumed at an acked (p,o) but not the record acked there, or
      key/value not those of its header i), written_twice (one i consumed from two
      offsets: the log holds it twice), commit_failures, commit_verified, rebalances per
      member. Exit 0 iff OUTDIR/produced.done was written (else the acked set is not
      known in full) and duplicates, missing, mismatched and written_twice are all 0.

Every wait is bounded, a watchdog ends each mode by itself, the last stdout line is one
JSON object (started_at: the process's start, Unix time), and progress and client errors
go to stderr with UTC time and seconds since start ("t" in the files: seconds since start).
CLUSTER_CLIENTS_DEBUG=eos,protocol (any librdkafka debug contexts) adds librdkafka's debug
log to stderr.
"""
import argparse
import glob
import json
import os
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

T0 = time.time()
FLUSH_LIMIT_S = 150
COMMIT_BACKOFF_S = [0.2, 0.5, 1, 2, 4, 4]  # retries of a commit that may pass (~12 s)
CLOSE_LIMIT_S = 20  # for the members to close at the end
GRACE_S = 2  # polling after everything was consumed, for late duplicates
SAMPLES = 5
# Brokers come back at the same address within seconds, and a restarted broker may take
# its partitions' leadership back at once; librdkafka's default backoff (up to 10 s between
# connection attempts to a broker that refused) can miss a leader's whole term.
RECONNECT_BACKOFF_MAX_MS = 1000

# Commit errors after which retrying cannot help: the member's generation is over (the
# group rebalances, or the member was removed); it must poll to rejoin first.
FENCED = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
          KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID,
          KafkaError.STALE_MEMBER_EPOCH, KafkaError.FENCED_MEMBER_EPOCH,
          KafkaError._ASSIGNMENT_LOST}

result = {"started_at": round(T0, 3)}  # Unix time, to line up with broker logs
_finished = threading.Lock()


def elapsed():
    return round(time.time() - T0, 2)


def log(msg):
    now = time.time()
    sys.stderr.write("[%s.%03dZ %7.2f] %s\n" % (time.strftime("%H:%M:%S", time.gmtime(now)),
                                                int(now * 1000) % 1000, now - T0, msg))
    sys.stderr.flush()


def finish(ok, reason=None):
    """Prints the JSON summary and exits (once, whichever thread calls first)."""
    if not _finished.acquire(blocking=False):
        time.sleep(3600)  # another thread is finishing; os._exit ends this one too
    result["ok"] = ok
    result["elapsed_s"] = elapsed()
    if reason:
        result["error"] = reason
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    if not ok:
        sys.stderr.write("FAIL %s: %s\n" % (result.get("mode"), reason))
        sys.stderr.flush()
    # os._exit: librdkafka destructors must not hold up the exit.
    os._exit(0 if ok else 1)


def start_watchdog(limit_s, on_fire):
    # A timer thread, not SIGALRM: it fires even while the main thread is inside a
    # client call.
    def fire():
        try:
            on_fire()
        finally:
            finish(False, "watchdog: the run did not end within %d s" % limit_s)
    t = threading.Timer(limit_s, fire)
    t.daemon = True
    t.start()


class ClientErrors:
    """What librdkafka reports through error_cb: counted, the first few kept."""

    def __init__(self):
        self.count = 0
        self.samples = []
        self.fatal = None

    def __call__(self, err):
        self.count += 1
        text = "%.2f s: %s" % (elapsed(), err)
        if len(self.samples) < SAMPLES:
            self.samples.append(text)
        if err.fatal() and self.fatal is None:
            self.fatal = text
        if self.count <= 50 or self.count % 100 == 0:  # a broker down for long repeats a lot
            log("client error #%d: %s%s" % (self.count, err, " (FATAL)" if err.fatal() else ""))

    def report(self):
        return {"count": self.count, "first": self.samples, "fatal": self.fatal}


def debug_conf():
    """librdkafka's debug contexts from $CLUSTER_CLIENTS_DEBUG (e.g. "eos,protocol"), logged
    to stderr."""
    contexts = os.environ.get("CLUSTER_CLIENTS_DEBUG")
    return {"debug": contexts} if contexts else {}


# ---------------------------------------------------------------------------------------
# produce

def write_done(outdir, acked):
    tmp = os.path.join(outdir, "produced.done.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % acked)
    os.rename(tmp, os.path.join(outdir, "produced.done"))


def produce_mode(args):
    outdir, n, seconds = args.outdir, args.n, args.seconds
    os.makedirs(outdir, exist_ok=True)
    try:
        os.unlink(os.path.join(outdir, "produced.done"))
    except FileNotFoundError:
        pass
    acked_f = open(os.path.join(outdir, "acked.jsonl"), "w", buffering=1)
    failed_f = open(os.path.join(outdir, "failed.jsonl"), "w", buffering=1)
    errors = ClientErrors()
    st = {"produced": 0, "acked": 0, "failed": 0, "failures": [], "by_partition": {},
          "undelivered": None, "produce_errors": 0}
    result.update({"mode": "produce", "topic": args.topic, "n": n, "seconds": seconds})
    lock = threading.Lock()
    done_written = [False]

    def summary():
        with lock:
            result.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in st.items()})
        result["client_errors"] = errors.report()

    def done():
        with lock:
            if done_written[0]:
                return
            done_written[0] = True
            acked_f.flush()
            failed_f.flush()
            write_done(outdir, st["acked"])

    def on_watchdog():
        summary()
        done()

    start_watchdog(seconds + FLUSH_LIMIT_S + 30, on_watchdog)

    def on_delivery(i):
        def cb(err, msg):
            with lock:
                if err is None:
                    st["acked"] += 1
                    p = msg.partition()
                    st["by_partition"][p] = st["by_partition"].get(p, 0) + 1
                    acked_f.write(json.dumps({"i": i, "p": p, "o": msg.offset(), "t": elapsed()})
                                  + "\n")
                else:
                    st["failed"] += 1
                    text = "%.2f s: i=%d: %s" % (elapsed(), i, err)
                    if len(st["failures"]) < SAMPLES:
                        st["failures"].append(text)
                        log("delivery failed: " + text)
                    failed_f.write(json.dumps({"i": i, "error": str(err), "t": elapsed()}) + "\n")
        return cb

    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "delivery.timeout.ms": 120000,
        "request.timeout.ms": 10000,
        "retries": 2147483647,
        "compression.type": "lz4",
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        "error_cb": errors,
        **debug_conf(),
    })
    interval = seconds / n if n else 0
    start = time.time()
    next_log = start + 5
    for i in range(n):
        target = start + i * interval
        while True:
            wait = target - time.time()
            if wait <= 0:
                break
            p.poll(min(wait, 0.05))
        while True:
            try:
                p.produce(args.topic, key=b"k%d" % i, value=b"v%d" % i,
                          headers=[("i", str(i).encode())], on_delivery=on_delivery(i))
                st["produced"] += 1
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                p.poll(0.1)
            except KafkaException as e:  # e.g. after a fatal idempotence error
                with lock:
                    st["produce_errors"] += 1
                    st["failed"] += 1
                    text = "%.2f s: i=%d: produce(): %s" % (elapsed(), i, e)
                    if len(st["failures"]) < SAMPLES:
                        st["failures"].append(text)
                        log(text)
                    failed_f.write(json.dumps({"i": i, "error": str(e), "t": elapsed()}) + "\n")
                break
        p.poll(0)
        if time.time() >= next_log:
            next_log += 5
            log("produced %d, acked %d, failed %d" % (st["produced"], st["acked"], st["failed"]))
    log("all %d produced; flushing (at most %d s)" % (st["produced"], FLUSH_LIMIT_S))
    st["undelivered"] = p.flush(FLUSH_LIMIT_S)
    summary()
    done()
    log("done: acked %d, failed %d, undelivered %d" % (st["acked"], st["failed"],
                                                       st["undelivered"]))
    ok = st["acked"] == n
    finish(ok, None if ok else "acked %d of %d (failed %d, undelivered %d; first failure: %s)"
           % (st["acked"], n, st["failed"], st["undelivered"],
              st["failures"][0] if st["failures"] else None))


# ---------------------------------------------------------------------------------------
# consume

class Shared:
    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.total = 0  # records consumed (committed and recorded), all members
        self.commit_failures = 0  # commit attempts that failed, retried ones included
        self.failure_samples = []
        self.commit_verified = 0
        self.errors = ClientErrors()
        self.consumer_errors = 0  # error events from poll()
        self.consumer_error_samples = []
        self.next_offset = {}  # partition -> offset after the last record consumed


class Member(threading.Thread):
    def __init__(self, index, args, shared, leave_after=None):
        super().__init__(name="member-%d" % index, daemon=True)
        self.index, self.args, self.shared, self.leave_after = index, args, shared, leave_after
        self.got = 0
        self.owned = set()
        self.events = []  # (kind, partitions, seconds)
        self.counts = {"assign": 0, "revoke": 0, "lost": 0}
        self.commit_failures = 0
        self.error = None
        self.left = False  # closed by --leave-after
        self.closed = False
        self.path = os.path.join(args.outdir, "consumed-%d.jsonl" % index)

    # Rebalance callbacks: eager strategies get the whole assignment, cooperative ones only
    # the partitions that change; confluent-kafka (incremental_)assigns after them itself.
    def event(self, kind, partitions):
        parts = sorted(tp.partition for tp in partitions)
        self.counts[kind] += 1
        self.events.append((kind, parts, elapsed()))
        log("member %d %s %s" % (self.index, kind, parts))
        with self.shared.lock:
            if kind == "assign":
                self.owned.update(parts)
            else:
                self.owned.difference_update(parts)

    def on_assign(self, _c, partitions):
        self.event("assign", partitions)

    def on_revoke(self, _c, partitions):
        # Nothing to commit: every record consumed was committed on its own.
        self.event("revoke", partitions)

    def on_lost(self, _c, partitions):
        self.event("lost", partitions)

    def run(self):
        try:
            self.consume()
        except Exception as e:  # reported in the summary
            self.error = "%.2f s: %s: %s" % (elapsed(), type(e).__name__, e)
            log("member %d failed: %s" % (self.index, self.error))

    def consume(self):
        sh = self.shared
        c = Consumer({
            "bootstrap.servers": self.args.bootstrap,
            "group.id": self.args.group,
            "client.id": "member-%d" % self.index,
            "partition.assignment.strategy": self.args.strategy,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 600000,
            "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
            "error_cb": sh.errors,
            **debug_conf(),
        })
        c.subscribe([self.args.topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                    on_lost=self.on_lost)
        out = open(self.path, "a", buffering=1)
        try:
            while not sh.stop.is_set():
                if self.leave_after is not None and self.got >= self.leave_after:
                    self.left = True
                    log("member %d leaves after %d records" % (self.index, self.got))
                    break
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    err = msg.error()
                    with sh.lock:
                        sh.consumer_errors += 1
                        if len(sh.consumer_error_samples) < SAMPLES:
                            sh.consumer_error_samples.append(
                                "%.2f s member %d: %s" % (elapsed(), self.index, err))
                    log("member %d poll error: %s" % (self.index, err))
                    if err.fatal():
                        raise KafkaException(err)
                    continue
                self.handle(c, msg, out)
        finally:
            c.close()  # on_revoke, then LeaveGroup
            out.close()
            self.closed = True

    def handle(self, c, msg, out):
        sh = self.shared
        p, o = msg.partition(), msg.offset()
        headers = dict(msg.headers() or [])
        raw_i = headers.get("i")
        i = int(raw_i) if raw_i is not None and raw_i.isdigit() else None
        ok = i is not None and msg.key() == b"k%d" % i and msg.value() == b"v%d" % i
        committed = self.commit(c, msg)
        if committed is None:
            # Not committed: read it again from here while we own the partition (the
            # records after it, already fetched, are dropped by the seek); if the
            # partition moves, its next owner starts from the last commit.
            try:
                c.seek(TopicPartition(self.args.topic, p, o))
            except KafkaException as e:
                log("member %d seek %d@%d: %s" % (self.index, p, o, e))
            time.sleep(0.1)
            return
        rec = {"i": i, "p": p, "o": o, "member": self.index, "t": elapsed()}
        if not ok:
            rec["bad"] = {"key": repr(msg.key()), "value": repr(msg.value()), "header": repr(raw_i)}
        if committed == "verified":
            rec["verified"] = True
        out.write(json.dumps(rec) + "\n")
        self.got += 1
        with sh.lock:
            sh.total += 1
            sh.next_offset[p] = max(sh.next_offset.get(p, 0), o + 1)

    def commit(self, c, msg):
        """True if committed, "verified" if a failed commit is found applied, else None."""
        sh = self.shared
        p, o = msg.partition(), msg.offset()
        tag = "m%d@%d" % (self.index, o)
        # The same as commit(message=msg): offset + 1 and the record's leader epoch; the
        # metadata tells this commit apart when its answer was lost.
        tp = TopicPartition(self.args.topic, p, o + 1, metadata=tag,
                            leader_epoch=msg.leader_epoch())
        attempt = 0
        ambiguous = False
        while True:
            err = None
            try:
                for t in c.commit(offsets=[tp], asynchronous=False) or []:
                    if t.error is not None:
                        err = t.error
            except KafkaException as e:
                err = e.args[0]
            if err is None:
                if attempt:
                    log("member %d commit %d@%d passed on attempt %d"
                        % (self.index, p, o, attempt + 1))
                return True
            code = err.code() if isinstance(err, KafkaError) else None
            fenced = code in FENCED
            ambiguous = ambiguous or not fenced
            self.commit_failures += 1
            text = "%.2f s member %d %d@%d attempt %d: %s" % (elapsed(), self.index, p, o,
                                                              attempt + 1, err)
            with sh.lock:
                sh.commit_failures += 1
                if len(sh.failure_samples) < SAMPLES:
                    sh.failure_samples.append(text)
            log("commit failed: " + text)
            if fenced or attempt >= len(COMMIT_BACKOFF_S) or p not in self.owned \
                    or sh.stop.is_set():
                break
            time.sleep(COMMIT_BACKOFF_S[attempt])
            attempt += 1
        if ambiguous:
            # An attempt may have been applied with its answer lost: look.
            try:
                got = c.committed([TopicPartition(self.args.topic, p)], timeout=5)
                cur = got[0] if got else None
                if cur is not None and cur.error is None and cur.offset == o + 1 \
                        and cur.metadata == tag:
                    with sh.lock:
                        sh.commit_verified += 1
                    log("member %d commit %d@%d was applied after all (metadata %s)"
                        % (self.index, p, o, tag))
                    return "verified"
            except KafkaException as e:
                log("member %d committed() for %d@%d: %s" % (self.index, p, o, e))
        return None

    def report(self):
        return {"member": self.index, "got": self.got, "left": self.left,
                "rebalances": self.counts, "commit_failures": self.commit_failures,
                "error": self.error, "events": self.events[:40]}


class AckedReader:
    """Reads OUTDIR/acked.jsonl as the producer appends to it (whole lines only)."""

    def __init__(self, path):
        self.path, self.pos, self.by_po, self.conflicts = path, 0, {}, []
        # Records acked without an offset: librdkafka reports None when the broker says a
        # retried batch was already written but no longer knows where (a DUPLICATE or
        # OUT_OF_ORDER answer it counts as persisted). Checked by their i: i -> partition.
        self.unplaced = {}

    def count(self):
        return len(self.by_po) + len(self.unplaced)

    def read(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self.pos += end + 1
        for line in data[:end].split(b"\n"):
            if not line.strip():
                continue
            r = json.loads(line)
            if r["o"] is None:
                self.unplaced[r["i"]] = r["p"]
                continue
            key = (r["p"], r["o"])
            if key in self.by_po and self.by_po[key] != r["i"]:
                self.conflicts.append("%d@%d acked for i=%d and i=%d"
                                      % (r["p"], r["o"], self.by_po[key], r["i"]))
            self.by_po[key] = r["i"]


def read_consumed(outdir):
    recs = []
    for path in sorted(glob.glob(os.path.join(outdir, "consumed-*.jsonl"))):
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    try:
                        recs.append(json.loads(line))
                    except ValueError:
                        pass  # a line cut by a crash
    return recs


def consume_mode(args):
    outdir = args.outdir
    os.makedirs(outdir, exist_ok=True)
    sh = Shared()
    acked = AckedReader(os.path.join(outdir, "acked.jsonl"))
    done_path = os.path.join(outdir, "produced.done")
    members = []
    result.update({"mode": "consume", "topic": args.topic, "group": args.group,
                   "strategy": args.strategy, "members_at_start": args.members,
                   "leave_after": args.leave_after, "join_after": args.join_after})

    def producer_done():
        try:
            return os.stat(done_path).st_mtime >= T0 - 1  # not one left by an earlier run
        except FileNotFoundError:
            return False

    def summary(stop_reason):
        acked.read()
        recs = read_consumed(outdir)
        seen = {}
        offsets_of_i = {}
        duplicates, mismatched, bad = [], [], []
        for r in recs:
            key = (r["p"], r["o"])
            if key in seen:
                duplicates.append("%d@%d by members %d and %d" % (r["p"], r["o"], seen[key],
                                                                   r["member"]))
            else:
                seen[key] = r["member"]
            if r.get("bad"):
                bad.append("%d@%d: %s" % (r["p"], r["o"], r["bad"]))
            want = acked.by_po.get(key)
            if want is not None and want != r["i"]:
                mismatched.append("%d@%d holds i=%s, acked i=%d" % (r["p"], r["o"], r["i"], want))
            if r["i"] is not None:
                offsets_of_i.setdefault(r["i"], set()).add(key)
        twice = ["i=%d at %s" % (i, sorted(s)) for i, s in offsets_of_i.items() if len(s) > 1]
        missing = sorted(set(acked.by_po) - set(seen))
        unplaced_missing = sorted(i for i in acked.unplaced if i not in offsets_of_i)
        placed = {min(offsets_of_i[i]) for i in acked.unplaced if i in offsets_of_i}
        unacked = len(set(seen) - set(acked.by_po) - placed)
        result.update({
            "stop_reason": stop_reason,
            "producer_done": producer_done(),
            "acked": acked.count(),
            "acked_without_offset": len(acked.unplaced),
            "consumed": len(recs),
            "distinct": len(seen),
            "duplicates": len(duplicates),
            "missing": len(missing) + len(unplaced_missing),
            "mismatched": len(mismatched) + len(bad),
            "written_twice": len(twice),
            "consumed_not_acked": unacked,
            "acked_conflicts": acked.conflicts[:SAMPLES],
            "commit_failures": sh.commit_failures,
            "commit_failure_samples": sh.failure_samples,
            "commit_verified": sh.commit_verified,
            "consumer_errors": sh.consumer_errors,
            "consumer_error_samples": sh.consumer_error_samples,
            "client_errors": sh.errors.report(),
            "rebalances": {m.index: m.counts for m in members},
            "members": [m.report() for m in members],
            "samples": {"duplicates": duplicates[:SAMPLES],
                        "missing": ["%d@%d (i=%d)" % (p, o, acked.by_po[(p, o)])
                                    for p, o in missing[:SAMPLES]]
                           + ["i=%d (acked on partition %d without an offset)"
                              % (i, acked.unplaced[i]) for i in unplaced_missing[:SAMPLES]],
                        "mismatched": (mismatched + bad)[:SAMPLES],
                        "written_twice": twice[:SAMPLES]},
        })
        # Without the producer's done file the acked set may be incomplete: nothing to
        # check against, so a run that timed out before it is a failure.
        return (producer_done() and not duplicates and not missing and not unplaced_missing
                and not mismatched
                and not bad and not twice)

    def on_watchdog():
        sh.stop.set()
        summary("watchdog")

    start_watchdog(args.timeout + CLOSE_LIMIT_S + 20, on_watchdog)

    for k in range(args.members):
        members.append(Member(k, args, sh, args.leave_after if k == 0 else None))
    for m in members:
        m.start()
    joined = False
    stop_reason = "timeout"
    deadline = T0 + args.timeout
    next_log = time.time() + 5
    while time.time() < deadline:
        time.sleep(0.25)
        with sh.lock:
            total = sh.total
        if args.join_after is not None and not joined and total >= args.join_after:
            joined = True
            log("member %d joins after %d records in all" % (len(members), total))
            m = Member(len(members), args, sh)
            members.append(m)
            m.start()
        if time.time() >= next_log:
            next_log += 5
            with sh.lock:
                progress = dict(sorted(sh.next_offset.items()))
            log("consumed %d, up to offsets %s; members (id, consumed, partitions) %s"
                % (total, progress, [(m.index, m.got, sorted(m.owned))
                                     for m in members if not m.closed]))
        if all(m.closed for m in members) and not (args.join_after is not None and not joined):
            stop_reason = "every member stopped"
            break
        if producer_done():
            acked.read()
            if acked.count() <= total:
                recs = read_consumed(outdir)
                consumed = {(r["p"], r["o"]) for r in recs}
                consumed_i = {r["i"] for r in recs}
                if not set(acked.by_po) - consumed and not set(acked.unplaced) - consumed_i:
                    stop_reason = "complete"
                    log("all %d acked records consumed; polling %d s more" % (acked.count(),
                                                                               GRACE_S))
                    time.sleep(GRACE_S)
                    break
    sh.stop.set()
    close_deadline = time.time() + CLOSE_LIMIT_S
    for m in members:
        m.join(timeout=max(0, close_deadline - time.time()))
    stuck = [m.index for m in members if m.is_alive()]
    ok = summary(stop_reason)
    result["stuck_members"] = stuck
    reason = None
    if not ok:
        reason = ("%s: producer done=%s duplicates=%d missing=%d mismatched=%d "
                  "written_twice=%d (acked %d, distinct %d)"
                  % (stop_reason, result["producer_done"], result["duplicates"],
                     result["missing"], result["mismatched"], result["written_twice"],
                     result["acked"], result["distinct"]))
    finish(ok, reason)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("produce")
    p.add_argument("bootstrap")
    p.add_argument("topic")
    p.add_argument("outdir")
    p.add_argument("n", type=int)
    p.add_argument("seconds", type=float)
    c = sub.add_parser("consume")
    c.add_argument("bootstrap")
    c.add_argument("topic")
    c.add_argument("group")
    c.add_argument("outdir")
    c.add_argument("members", type=int)
    c.add_argument("strategy", choices=["range", "cooperative-sticky"])
    c.add_argument("timeout", type=float)
    c.add_argument("--leave-after", type=int, default=None)
    c.add_argument("--join-after", type=int, default=None)
    args = parser.parse_args()
    try:
        (produce_mode if args.mode == "produce" else consume_mode)(args)
    except Exception as e:  # any unexpected error fails the run, with the JSON line
        result.setdefault("mode", args.mode)
        finish(False, "%s: %s" % (type(e).__name__, str(e).replace("\n", " ")))


if __name__ == "__main__":
    main()
