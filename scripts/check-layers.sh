#!/usr/bin/env bash
# The crate graph is the layer graph: fails when a workspace crate depends on a crate that
# is not below it, when the client's dependency tree pulls in the object store or etcd, or
# when a lib.rs declares a module its Layout does not name.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --format-version 1 --no-deps --offline 2>/dev/null >/tmp/shale-metadata.$$.json \
  || cargo metadata --format-version 1 --no-deps >/tmp/shale-metadata.$$.json
trap 'rm -f /tmp/shale-metadata.$$.json' EXIT
python3 - /tmp/shale-metadata.$$.json <<'PY'
import json, pathlib, re, sys

# Each crate may depend (normal, dev or build) only on the crates listed for it.
ALLOWED = {
    "shale-core": set(),
    # The schema formats: pure, below everything that serves them.
    "shale-schema": set(),
    "shale-proto": {"shale-core"},
    "shale-client": {"shale-core", "shale-proto"},
    "shale-meta": {"shale-core"},
    "shale-storage": {"shale-core", "shale-meta"},
    # The group domain: below the broker, without the wire (no shale-proto).
    "shale-groups": {"shale-core", "shale-meta"},
    "shale-broker": {"shale-core", "shale-proto", "shale-meta", "shale-storage", "shale-schema",
                     "shale-groups"},
    # The client-facing front ends: peers over the broker's `api`, never each other.
    "shale-grpc": {"shale-core", "shale-proto", "shale-broker"},
    "shale-kafka": {"shale-core", "shale-broker"},
    "shale-registry": {"shale-core", "shale-broker", "shale-schema"},
    "shale-console": {"shale-core", "shale-broker", "shale-schema"},
    "shale-admin": {"shale-core", "shale-broker"},
    "shale": {"shale-core", "shale-schema", "shale-proto", "shale-client", "shale-meta", "shale-storage",
              "shale-groups",
              "shale-broker", "shale-grpc", "shale-kafka", "shale-registry", "shale-console",
              "shale-admin"},
    "shale-bench": {"shale-core", "shale-proto", "shale-client"},
}
meta = json.load(open(sys.argv[1]))
members = {p["name"]: p for p in meta["packages"]}
bad = []
for name in sorted(set(members) - set(ALLOWED)):
    bad.append(f"crate {name} is not in the layer graph of scripts/check-layers.sh")
for name, pkg in members.items():
    for dep in pkg["dependencies"]:
        d = dep["name"]
        if d in members and d not in ALLOWED.get(name, set()):
            bad.append(f"{name} depends on {d}: not below it in the layer graph")
    # Every module a lib.rs declares is named in its Layout (its `//!` docs).
    for target in pkg["targets"]:
        if "lib" not in target["kind"]:
            continue
        src = pathlib.Path(target["src_path"]).read_text()
        docs = "\n".join(l for l in src.splitlines() if l.startswith("//!"))
        for m in re.findall(r"^pub mod (\w+);", src, re.M):
            if f"`{m}`" not in docs:
                bad.append(f"{target['src_path']}: module {m} is not named in the Layout")
# A front end reaches the broker through its `api` only: authorization, quotas, audit and
# the domain operations live there once, for every protocol.
FRONT_ENDS = ["shale-grpc", "shale-kafka", "shale-registry", "shale-console", "shale-admin"]
for name in FRONT_ENDS:
    root = pathlib.Path(members[name]["manifest_path"]).parent / "src"
    for path in sorted(root.rglob("*.rs")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for m in re.finditer(r"shale_broker::(\w+|\{)", line):
                if m.group(1) != "api":
                    bad.append(f"{path}:{n}: {name} uses shale_broker::{m.group(1)}; "
                               "front ends reach the broker through shale_broker::api")
# The group domain speaks its own types (shale-groups' types.rs; the crate graph keeps
# shale-proto out of it): no protobuf type in the api over it either; each front end
# converts its wire (issue 53, step 1).
broker_src = pathlib.Path(members["shale-broker"]["manifest_path"]).parent / "src"
PROTO_FREE = [
    broker_src / "api" / "groups.rs",
    broker_src / "api" / "classic.rs",
]
for path in PROTO_FREE:
    if path.name.endswith("_tests.rs"):
        continue
    code = path.read_text().split("#[cfg(test)]")[0]
    for n, line in enumerate(code.splitlines(), 1):
        if re.search(r"\bshale_proto\b|\bpb::", line):
            bad.append(f"{path}:{n}: protobuf in the group domain; use groups/types.rs "
                       "and convert in the front end")
for b in bad:
    print(f"check-layers: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
# The lean client: no object store, no etcd.
if heavy=$(cargo tree -p shale-client -e normal,build --prefix none | grep -E '^(object_store|etcd-client) '); then
  echo "check-layers: shale-client's dependency tree contains: $(echo "$heavy" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
echo "check-layers: the crate graph follows the layers"
