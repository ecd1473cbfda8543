#!/usr/bin/env bash
# The schema registry on one standalone broker (issue 52): schema lookups by ID — requests
# per second from LOOKUP_CLIENTS keep-alive HTTP clients, and the broker's CPU per lookup
# from /proc, so lookups per second on one core = 1 / CPU per lookup whatever the clients
# can send — and registration latency p50/p99/p999 of REGISTRATIONS distinct schemas
# registered one after another (each an append to _schemas, acknowledged after fsync).
#
#   scripts/bench-registry.sh DIR [REGISTRATIONS] [LOOKUPS] [LOOKUP_CLIENTS]
#   scripts/bench-registry.sh /tmp/bench-registry 1000 200000 2
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?usage: scripts/bench-registry.sh DIR [REGISTRATIONS] [LOOKUPS] [LOOKUP_CLIENTS]}
REGISTRATIONS=${2:-1000}
LOOKUPS=${3:-200000}
CLIENTS=${4:-2}
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
PORT=$(free_port)
REG=$(free_port)
start_standalone --listen "127.0.0.1:$PORT" --kafka-listen none --schema-registry-listen "127.0.0.1:$REG"
python3 - "127.0.0.1:$REG" "$PID" "$REGISTRATIONS" "$LOOKUPS" "$CLIENTS" <<'PY'
import http.client, json, multiprocessing, os, sys, time

addr, pid, registrations, lookups, clients = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:])
host, port = addr.split(":")
tick = os.sysconf("SC_CLK_TCK")

def cpu_s():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

def schema(n):
    return json.dumps({"schema": json.dumps({"type": "record", "name": "R", "fields": [
        {"name": f"f{n}", "type": "long", "default": 0}]})})

conn = http.client.HTTPConnection(host, int(port))
lat = []
for n in range(registrations):
    t = time.perf_counter()
    conn.request("POST", f"/subjects/s{n % 20}-value/versions", schema(n),
                 {"Content-Type": "application/vnd.schemaregistry.v1+json"})
    r = conn.getresponse(); body = r.read()
    lat.append(time.perf_counter() - t)
    assert r.status == 200, body
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"registrations: {registrations} one after another: p50 {pct(0.50):.2f} ms, p99 {pct(0.99):.2f} ms, "
      f"p999 {pct(0.999):.2f} ms, max {lat[-1]*1000:.2f} ms")

def look(k):
    c = http.client.HTTPConnection(host, int(port))
    for i in range(lookups // clients):
        c.request("GET", f"/schemas/ids/{(i + k) % registrations + 1}")
        r = c.getresponse(); r.read()
        assert r.status == 200
with multiprocessing.Pool(clients) as pool:
    c0, t0 = cpu_s(), time.perf_counter()
    pool.map(look, range(clients))
    c1, t1 = cpu_s(), time.perf_counter()
done = lookups // clients * clients
cpu_us = (c1 - c0) / done * 1e6
print(f"lookups by ID: {done} from {clients} keep-alive clients in {t1 - t0:.1f} s: {done / (t1 - t0):,.0f}/s "
      f"(the clients' limit on this machine); broker CPU {cpu_us:.1f} us per lookup = "
      f"{1e6 / cpu_us:,.0f} lookups/s on one core")
PY
