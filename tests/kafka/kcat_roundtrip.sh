#!/usr/bin/env bash
# Shale compatibility check with kcat (librdkafka) alone.
#
# Usage: kcat_roundtrip.sh BOOTSTRAP TOPIC   (TOPIC must already exist)
#   1. `kcat -L` (all topics) must list TOPIC.
#   2. `kcat -P -K: -H h=v` produces 100 records key{i}:value-{i}-{RUN}, where
#      RUN is unique to this run.
#   3. `kcat -C -e -o beginning` reads the topic back (partition, offset, key,
#      value, headers) and every one of the 100 records must come back exactly
#      once with its key, value and the header h=v. Records from other runs are
#      ignored.
# The last stdout line is one JSON object; exit 0 only if every check passed,
# otherwise exit 1 with a one-line reason on stderr. Each kcat call is bounded
# by `timeout`.
set -u -o pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BOOTSTRAP TOPIC" >&2
    exit 2
fi
BOOTSTRAP=$1
TOPIC=$2
COUNT=100
RUN="r$$x$(date +%s%N)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

listed=false
produced=0
consumed=0
missing=$COUNT
duplicates=0
mismatched=0

finish() { # finish OK REASON
    printf '{"client": "kcat", "topic": "%s", "listed": %s, "produced": %d, "consumed": %d, "missing": %d, "duplicates": %d, "mismatched": %d, "ok": %s}\n' \
        "$TOPIC" "$listed" "$produced" "$consumed" "$missing" "$duplicates" "$mismatched" "$1"
    if [ "$1" != true ]; then
        echo "FAIL kcat: $2" >&2
        exit 1
    fi
    exit 0
}

# 1. Metadata: the topic must be listed.
if ! timeout 20 kcat -b "$BOOTSTRAP" -L >"$WORK/metadata" 2>"$WORK/metadata.err"; then
    finish false "kcat -L failed: $(tr '\n' ' ' <"$WORK/metadata.err")"
fi
if grep -q "topic \"$TOPIC\" with [1-9][0-9]* partitions" "$WORK/metadata"; then
    listed=true
else
    finish false "kcat -L does not list topic $TOPIC ($(grep -c '^ *topic "' "$WORK/metadata") topics listed)"
fi

# 2. Produce COUNT keyed records with one header.
for i in $(seq 0 $((COUNT - 1))); do
    echo "key$i:value-$i-$RUN"
done >"$WORK/input"
if ! timeout 30 kcat -b "$BOOTSTRAP" -P -t "$TOPIC" -K: -H h=v -X acks=all \
        <"$WORK/input" 2>"$WORK/produce.err"; then
    finish false "kcat -P failed: $(tr '\n' ' ' <"$WORK/produce.err")"
fi
if grep -qi "fail\|error" "$WORK/produce.err"; then
    finish false "kcat -P reported: $(tr '\n' ' ' <"$WORK/produce.err")"
fi
produced=$COUNT

# 3. Consume everything back: partition, offset, key, value, headers (tab separated).
if ! timeout 30 kcat -b "$BOOTSTRAP" -C -t "$TOPIC" -e -o beginning -q \
        -f '%p\t%o\t%k\t%s\t%h\n' >"$WORK/output" 2>"$WORK/consume.err"; then
    finish false "kcat -C failed or timed out: $(tr '\n' ' ' <"$WORK/consume.err")"
fi

# Keep this run's records, then count records, duplicates, wrong fields, missing.
read -r consumed duplicates mismatched missing < <(awk -F'\t' -v run="$RUN" -v count="$COUNT" '
    $4 ~ ("^value-[0-9]+-" run "$") {
        split($4, part, "-"); i = part[2] + 0
        consumed++
        if (seen[i]++) { duplicates++; next }
        if ($1 !~ /^[0-9]+$/ || $2 !~ /^[0-9]+$/ || $3 != ("key" i) || $5 != "h=v" || NF != 5) mismatched++
    }
    END {
        for (i = 0; i < count; i++) if (!(i in seen)) missing++
        printf "%d %d %d %d\n", consumed, duplicates, mismatched, missing
    }' "$WORK/output")

if [ "$consumed" -eq "$produced" ] && [ "$duplicates" -eq 0 ] && [ "$mismatched" -eq 0 ] && [ "$missing" -eq 0 ]; then
    finish true ""
fi
first_bad=$(grep -m1 "$RUN" "$WORK/output" | tr '\t' ' ')
finish false "roundtrip check failed: consumed=$consumed missing=$missing duplicates=$duplicates mismatched=$mismatched (first record: $first_bad)"
