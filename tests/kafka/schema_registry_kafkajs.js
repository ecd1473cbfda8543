#!/usr/bin/env node
// Shale's schema registry with npm's @kafkajs/confluent-schema-registry (3.9.0), a second
// registry client implementation beside confluent-kafka's.
//
// Usage: node schema_registry_kafkajs.js REGISTRY_URL PREFIX
//   Registers an Avro value schema for subject {PREFIX}-value (the library reads the
//   subject's level, gets 404 for a new subject and sets BACKWARD after registering),
//   encodes 50 records with it (magic byte 0, the 4-byte ID), decodes them back, registers
//   a compatible evolution (a field with a default) and encodes/decodes with it, reads the
//   latest ID, the schema by ID and the ID of a registered schema, and checks that an
//   incompatible evolution is refused. Then JSON Schema under {PREFIX}-json-value: a
//   closed object schema registered, 20 values encoded (validated by the library's ajv)
//   and decoded, an evolution adding an optional property accepted, and one changing a
//   property's type refused. And Protobuf under {PREFIX}-proto-value: a .proto text
//   registered, 20 messages encoded (protobufjs, with Confluent's message indexes) and
//   decoded, a field added, a field's type changed across scalar groups refused.
// Loaded from $SHALE_KAFKAJS_DIR/node_modules (scripts/kafka-clients.sh install). The last
// stdout line is one JSON object; exit 0 only if every check passed, otherwise exit 1 with
// a one-line reason on stderr. A watchdog ends the run after 58 s.
'use strict'

const path = require('path')
const MODULES = path.join(
  process.env.SHALE_KAFKAJS_DIR || path.join(process.env.HOME, '.cache', 'shale-kafkajs'),
  'node_modules'
)
const { SchemaRegistry, SchemaType } = require(path.join(MODULES, '@kafkajs/confluent-schema-registry'))

setTimeout(() => {
  process.stderr.write('watchdog: run took over 58 s\n')
  process.exit(1)
}, 58000).unref()

const [url, prefix] = process.argv.slice(2)
const subject = `${prefix}-value`
const report = { client: '@kafkajs/confluent-schema-registry' }

function fail(why) {
  process.stdout.write(JSON.stringify(report) + '\n')
  process.stderr.write(`FAIL: ${why}\n`)
  process.exit(1)
}

const record = (fields) => JSON.stringify({ type: 'record', name: 'Event', namespace: 'js', fields })
const v1 = record([{ name: 'id', type: 'long' }, { name: 'kind', type: 'string' }])
const v2 = record([{ name: 'id', type: 'long' }, { name: 'kind', type: 'string' },
  { name: 'weight', type: 'double', default: 1.0 }])
const bad = record([{ name: 'id', type: 'long' }, { name: 'owner', type: 'string' }])

async function main() {
  const registry = new SchemaRegistry({ host: url })
  const { id: id1 } = await registry.register({ type: SchemaType.AVRO, schema: v1 }, { subject })
  let decoded = 0
  for (let i = 0; i < 50; i++) {
    const value = { id: i, kind: `k${i % 3}` }
    const buf = await registry.encode(id1, value)
    if (buf[0] !== 0 || buf.readInt32BE(1) !== id1) fail(`record ${i} header ${buf.slice(0, 5).toString('hex')}`)
    const back = await registry.decode(buf)
    if (Number(back.id) !== i || back.kind !== value.kind) fail(`record ${i} decoded as ${JSON.stringify(back)}`)
    decoded++
  }
  const { id: id2 } = await registry.register({ type: SchemaType.AVRO, schema: v2 }, { subject })
  if (id2 === id1) fail('the evolution got the first schema\'s ID')
  const back = await registry.decode(await registry.encode(id2, { id: 7, kind: 'x', weight: 2.5 }))
  if (back.weight !== 2.5) fail(`v2 decoded as ${JSON.stringify(back)}`)
  decoded++
  const latest = await registry.getLatestSchemaId(subject)
  if (latest !== id2) fail(`latest ID ${latest}, not ${id2}`)
  const byId = await registry.getSchema(id1)
  if (!byId) fail('no schema by ID')
  const found = await registry.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema: v1 })
  if (found !== id1) fail(`lookup found ${found}, not ${id1}`)
  let refused = null
  try {
    await registry.register({ type: SchemaType.AVRO, schema: bad }, { subject })
  } catch (e) {
    refused = e.status || e.name
  }
  if (refused !== 409) fail(`an incompatible evolution: ${refused}`)
  const json = await jsonSchemas(registry)
  const protobuf = await protobufSchemas(registry)
  Object.assign(report, { ok: true, ids: [id1, id2], decoded, refused, json, protobuf })
  process.stdout.write(JSON.stringify(report) + '\n')
}

const object = (properties) => JSON.stringify({
  $schema: 'http://json-schema.org/draft-07/schema#', title: 'Reading', type: 'object',
  properties, required: ['sensor'], additionalProperties: false,
})

async function jsonSchemas(registry) {
  const jsonSubject = `${prefix}-json-value`
  const j1 = object({ sensor: { type: 'string' }, value: { type: 'number' } })
  const j2 = object({ sensor: { type: 'string' }, value: { type: 'number' }, unit: { type: 'string' } })
  const jBad = object({ sensor: { type: 'integer' }, value: { type: 'number' } })
  const { id } = await registry.register({ type: SchemaType.JSON, schema: j1 }, { subject: jsonSubject })
  let decoded = 0
  for (let i = 0; i < 20; i++) {
    const value = { sensor: `s${i}`, value: i / 4 }
    const back = await registry.decode(await registry.encode(id, value))
    if (back.sensor !== value.sensor || back.value !== value.value) fail(`JSON ${i} decoded as ${JSON.stringify(back)}`)
    decoded++
  }
  const { id: evolved } = await registry.register({ type: SchemaType.JSON, schema: j2 }, { subject: jsonSubject })
  if (evolved === id) fail('the JSON evolution got the first schema\'s ID')
  let refused = null
  try {
    await registry.register({ type: SchemaType.JSON, schema: jBad }, { subject: jsonSubject })
  } catch (e) {
    refused = e.status || e.name
  }
  if (refused !== 409) fail(`an incompatible JSON evolution: ${refused}`)
  return { ids: [id, evolved], decoded, refused }
}

const proto = (fields) => `syntax = "proto3";\npackage js;\n\nmessage Reading {\n${fields}}\n`

async function protobufSchemas(registry) {
  const protoSubject = `${prefix}-proto-value`
  const p1 = proto('  string sensor = 1;\n  double value = 2;\n')
  const p2 = proto('  string sensor = 1;\n  double value = 2;\n  string unit = 3;\n')
  const pBad = proto('  int64 sensor = 1;\n  double value = 2;\n')
  const { id } = await registry.register({ type: SchemaType.PROTOBUF, schema: p1 }, { subject: protoSubject })
  let decoded = 0
  for (let i = 0; i < 20; i++) {
    const value = { sensor: `s${i}`, value: i / 4 }
    const back = await registry.decode(await registry.encode(id, value))
    if (back.sensor !== value.sensor || back.value !== value.value) fail(`Protobuf ${i} decoded as ${JSON.stringify(back)}`)
    decoded++
  }
  const { id: evolved } = await registry.register({ type: SchemaType.PROTOBUF, schema: p2 }, { subject: protoSubject })
  if (evolved === id) fail('the Protobuf evolution got the first schema\'s ID')
  let refused = null
  try {
    await registry.register({ type: SchemaType.PROTOBUF, schema: pBad }, { subject: protoSubject })
  } catch (e) {
    refused = e.status || e.name
  }
  if (refused !== 409) fail(`an incompatible Protobuf evolution: ${refused}`)
  return { ids: [id, evolved], decoded, refused }
}

main().catch((e) => fail(`${e.name}: ${e.message}`))
