#!/usr/bin/env node
// Shale compatibility check with kafkajs 2.x.
//
// Usage: node kafkajs_client.js BOOTSTRAP SCENARIO PREFIX
//   roundtrip: create {PREFIX}-rt (3 partitions) with the kafkajs admin, produce
//              200 records per codec (none, gzip, snappy, lz4, zstd) with acks=all
//              and an idempotent producer, read the whole topic back without a
//              group and check key, value, headers and timestamp byte for byte.
//              kafkajs has no group-less consumer, so the read-back sends Fetch
//              requests through kafkajs's own (internal) Cluster/Broker objects:
//              the same protocol code and codecs its consumer uses.
//   group:     create {PREFIX}-g (4 partitions), produce 400 records; consumer 1
//              of group {PREFIX}-grp takes exactly 150 records committing each one
//              (awaiting commitOffsets) and disconnects, so leaves the group;
//              consumer 2 takes the other 250 the same way; the group's committed
//              offsets (admin.fetchOffsets) must add up to 400; consumer 3 must
//              then see nothing in 3 s. Members ask for a 30 s session timeout and
//              each must be assigned all 4 partitions within 10 s, so a member that
//              did not leave holds up the next one's join and fails the check.
// kafkajs and its codecs (kafkajs-snappy, lz4js, zstd-codec: no native build) are
// loaded from $SHALE_KAFKAJS_DIR/node_modules, by default
// $HOME/.cache/shale-kafkajs/node_modules (scripts/kafka-clients.sh install).
// The last stdout line is one JSON object; exit 0 only if every check passed,
// otherwise exit 1 with a one-line reason on stderr. Every wait is bounded; a
// watchdog ends the run after 58 s.
'use strict'

const path = require('path')

// scripts/kafka-clients.sh installs kafkajs and the codecs into this directory.
const MODULES = path.join(
  process.env.SHALE_KAFKAJS_DIR || path.join(process.env.HOME, '.cache', 'shale-kafkajs'),
  'node_modules'
)
function load(name) {
  try {
    return require(path.join(MODULES, name))
  } catch (e) {
    const reason = `cannot load ${name} from ${MODULES} (run scripts/kafka-clients.sh install): ${e.message.split('\n')[0]}`
    process.stdout.write(JSON.stringify({ client: 'kafkajs', ok: false, error: reason }) + '\n')
    process.stderr.write(`FAIL kafkajs: ${reason}\n`)
    process.exit(1)
  }
}
const { Kafka, CompressionTypes, CompressionCodecs, Partitioners, logLevel } = load('kafkajs')
const SnappyCodec = load('kafkajs-snappy')
const lz4js = load('lz4js')
const { ZstdCodec } = load('zstd-codec')

// A kafkajs codec is a factory of { compress(encoder) -> Buffer, decompress(Buffer) -> Buffer }
// (see kafkajs/src/protocol/message/compression); kafkajs-snappy is one already. The
// lz4 and zstd ones below need no native build: lz4js is plain JavaScript and writes and
// reads LZ4 frames (what Kafka's LZ4 codec carries), zstd-codec is zstd compiled to
// WebAssembly.
const LZ4Codec = () => ({
  async compress(encoder) {
    return Buffer.from(lz4js.compress(encoder.buffer))
  },
  async decompress(buffer) {
    return Buffer.from(lz4js.decompress(buffer))
  },
})

// zstd-codec starts its WebAssembly module asynchronously, once.
let zstd = null
const zstdReady = () => {
  if (!zstd) {
    zstd = new Promise(resolve => ZstdCodec.run(z => resolve({ simple: new z.Simple(), streaming: new z.Streaming() })))
  }
  return zstd
}
const ZstdCodecAdapter = () => ({
  async compress(encoder) {
    const { simple } = await zstdReady()
    const out = simple.compress(encoder.buffer, 3) // a frame with its content size
    if (!out) throw new Error('zstd-codec failed to compress')
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  },
  async decompress(buffer) {
    // Streaming: other producers' frames need not carry their content size.
    const { streaming } = await zstdReady()
    const out = streaming.decompress(buffer)
    if (!out) throw new Error('zstd-codec failed to decompress')
    return Buffer.from(out.buffer, out.byteOffset, out.byteLength)
  },
})

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec
CompressionCodecs[CompressionTypes.LZ4] = LZ4Codec
CompressionCodecs[CompressionTypes.ZSTD] = ZstdCodecAdapter

const CLIENT = 'kafkajs'
const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}
const CODEC_INDEX = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } // same timestamps as the other clients
const PER_CODEC = 200
const BASE_TS = 1700000000000
const GLOBAL_LIMIT_MS = 58000

const result = { client: CLIENT }
let step = 'start' // what the scenario is doing, for the failure reason

function finish(ok, reason) {
  result.ok = ok
  if (reason) result.error = reason
  process.stdout.write(JSON.stringify(result) + '\n')
  if (!ok) process.stderr.write(`FAIL ${CLIENT}: ${reason}\n`)
  process.exit(ok ? 0 : 1)
}

class Failed extends Error {
  constructor(message) {
    super(message)
    this.name = 'Failed'
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function withTimeout(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failed(`${what} did not finish within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

// kafkajs logs through console.info (stdout); send its warnings and errors to stderr.
const logCreator = () => ({ namespace, label, log }) => {
  process.stderr.write(`kafkajs ${label} [${namespace}] ${log.message} ${log.error || ''}\n`)
}

function filler(i) {
  const b = Buffer.alloc(100)
  for (let j = 0; j < 100; j++) b[j] = (i * 31 + j * 7) % 256
  return b
}

function expectedRecords() {
  const out = new Map() // "codec-i" -> {key, value, headers, timestamp}
  for (const codec of Object.keys(CODECS)) {
    for (let i = 0; i < PER_CODEC; i++) {
      out.set(`${codec}-${i}`, {
        codec,
        key: Buffer.from(`k${i}`),
        value: Buffer.concat([Buffer.from(`${codec}-${i}-`), filler(i)]),
        headers: [['codec', Buffer.from(codec)], ['i', Buffer.from(String(i))]],
        timestamp: BASE_TS + CODEC_INDEX[codec] * 1000 + i,
      })
    }
  }
  return out
}

async function createTopic(kafka, topic, numPartitions) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10000,
    })
    if (!created) throw new Failed(`topic ${topic} already exists`)
    const offsets = await admin.fetchTopicOffsets(topic)
    if (offsets.length !== numPartitions) {
      throw new Failed(`topic ${topic} has ${offsets.length} partitions, want ${numPartitions}`)
    }
  } finally {
    await admin.disconnect()
  }
}

function newProducer(kafka) {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    retry: { retries: Number.MAX_SAFE_INTEGER }, // kafkajs wants unlimited retries when idempotent; sends are bounded by withTimeout
    createPartitioner: Partitioners.DefaultPartitioner,
  })
}

function sameHeaders(got, want) {
  const entries = Object.entries(got || {})
  return (
    entries.length === want.length &&
    entries.every(([k, v], n) => k === want[n][0] && Buffer.isBuffer(v) && v.equals(want[n][1]))
  )
}

async function roundtrip(kafka, prefix) {
  const topic = `${prefix}-rt`
  Object.assign(result, {
    scenario: 'roundtrip', codecs: Object.keys(CODECS), produced: 0, consumed: 0,
    missing: null, duplicates: 0, mismatched: 0,
  })
  step = `create topic ${topic}`
  await createTopic(kafka, topic, 3)
  const expected = expectedRecords()

  const producer = newProducer(kafka)
  await producer.connect()
  for (const [codec, compression] of Object.entries(CODECS)) {
    step = `produce ${codec}`
    const messages = [...expected.values()]
      .filter(r => r.codec === codec)
      .map(r => ({
        key: r.key,
        value: r.value,
        headers: { codec, i: r.headers[1][1].toString() },
        timestamp: String(r.timestamp),
      }))
    const acks = await withTimeout(
      producer.send({ topic, acks: -1, compression, messages, timeout: 15000 }),
      25000, `produce (${codec})`
    )
    if (acks.some(a => a.errorCode !== 0)) throw new Failed(`produce (${codec}) failed: ${JSON.stringify(acks)}`)
    result.produced += messages.length
  }
  await producer.disconnect()

  step = 'read back'
  // High watermarks, then Fetch from offset 0 of every partition until we reach them.
  const admin = kafka.admin()
  await admin.connect()
  const high = {}
  for (const p of await admin.fetchTopicOffsets(topic)) high[p.partition] = Number(p.high)
  await admin.disconnect()

  const createCluster = kafka[
    Object.getOwnPropertySymbols(kafka).find(s => s.description === 'private:Kafka:createCluster')
  ]
  const cluster = createCluster({ allowAutoTopicCreation: false })
  await cluster.connect()
  await cluster.addTargetTopic(topic)
  const position = {}
  const leader = {}
  for (const pm of cluster.findTopicPartitionMetadata(topic)) {
    position[pm.partitionId] = 0
    leader[pm.partitionId] = pm.leader
  }

  const seen = new Set()
  const deadline = Date.now() + 30000
  const behind = () => Object.keys(position).filter(p => position[p] < high[p])
  while (behind().length > 0 && Date.now() < deadline) {
    for (const p of behind()) {
      const broker = await cluster.findBroker({ nodeId: leader[p] })
      const response = await broker.fetch({
        replicaId: -1, isolationLevel: 1, maxWaitTime: 200, minBytes: 1, maxBytes: 10485760,
        topics: [{ topic, partitions: [{ partition: Number(p), fetchOffset: String(position[p]), maxBytes: 1048576 }] }],
      })
      for (const t of response.responses) {
        for (const part of t.partitions) {
          if (part.errorCode !== 0) throw new Failed(`fetch partition ${p}: error code ${part.errorCode}`)
          for (const m of part.messages) {
            const offset = Number(m.offset)
            // Compressed batches may start before the requested offset.
            if (offset < position[p] || m.isControlRecord) continue
            position[p] = offset + 1
            result.consumed += 1
            const match = /^([a-z0-9]+)-(\d+)-/.exec((m.value || Buffer.alloc(0)).toString('latin1'))
            const id = match ? `${match[1]}-${Number(match[2])}` : null
            const want = id && expected.get(id)
            if (!want) { result.mismatched += 1; continue }
            if (seen.has(id)) { result.duplicates += 1; continue }
            seen.add(id)
            const ok =
              Buffer.isBuffer(m.key) && m.key.equals(want.key) &&
              m.value.equals(want.value) &&
              sameHeaders(m.headers, want.headers) &&
              Number(m.timestamp) === want.timestamp &&
              m.batchContext.timestampType === 0
            if (!ok) {
              result.mismatched += 1
              if (result.mismatched === 1) {
                process.stderr.write(`first mismatch ${id}: key=${m.key} headers=${JSON.stringify(m.headers)} ts=${m.batchContext.timestampType}/${m.timestamp}\n`)
              }
            }
          }
        }
      }
    }
  }
  await cluster.disconnect()
  result.missing = expected.size - seen.size
  const ok = result.missing === 0 && result.duplicates === 0 && result.mismatched === 0 &&
    result.consumed === result.produced && result.produced === expected.size
  if (!ok) {
    throw new Failed(`roundtrip check failed: produced=${result.produced} consumed=${result.consumed} ` +
      `missing=${result.missing} duplicates=${result.duplicates} mismatched=${result.mismatched}`)
  }
}

const SESSION_TIMEOUT_MS = 30000 // a member that did not leave holds up the next join this long
const JOIN_LIMIT_MS = 10000 // a join after the previous member left must take less than this

// A member of `groupId`; joins gets {partitions, ms since connect} of each assignment.
function groupConsumer(kafka, groupId, joins) {
  const consumer = kafka.consumer({
    groupId, sessionTimeout: SESSION_TIMEOUT_MS, heartbeatInterval: 1000,
    maxWaitTimeInMs: 500, retry: { retries: 2 },
  })
  const start = Date.now()
  consumer.on(consumer.events.GROUP_JOIN, e => {
    const partitions = Object.values(e.payload.memberAssignment).reduce((n, ps) => n + ps.length, 0)
    joins.push({ partitions, ms: Date.now() - start })
  })
  return consumer
}

// Fails unless the member's first assignment had every partition and came within
// JOIN_LIMIT_MS (a previous member that did not leave would hold it up for
// SESSION_TIMEOUT_MS).
function joined(name, joins, partitions, withinMs) {
  result.join_s.push(joins.length ? joins[0].ms / 1000 : null)
  if (!joins.length) {
    throw new Failed(`${name} was not assigned partitions within ${withinMs / 1000} s (did the previous member not leave the group?)`)
  }
  const { partitions: count, ms } = joins[0]
  if (count !== partitions) throw new Failed(`${name} was assigned ${count} partitions, want all ${partitions}`)
  if (ms > JOIN_LIMIT_MS) {
    throw new Failed(`${name} took ${ms / 1000} s to join (limit ${JOIN_LIMIT_MS / 1000} s): did the previous member not leave the group? (session timeout ${SESSION_TIMEOUT_MS / 1000} s)`)
  }
}

// Runs one group member until it processed `want` records (or limitMs passed),
// committing offset+1 of each processed record (commitOffsets resolves once the
// broker accepted it), then leaves the group (disconnect sends LeaveGroup).
// Records delivered after `want` are neither processed nor committed.
// A crash that kafkajs recovers from by itself (restart=true) is tolerated;
// one it gives up on ends the member at once.
async function groupMember(kafka, groupId, topic, want, limitMs, onRecord, joins) {
  const consumer = groupConsumer(kafka, groupId, joins)
  let got = 0
  let crash = null
  let fatal = false
  consumer.on(consumer.events.CRASH, e => {
    crash = e.payload.error
    fatal = fatal || !e.payload.restart
  })
  try {
    await withTimeout(consumer.connect(), 10000, 'consumer connect')
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await withTimeout(consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        if (got >= want) return
        got += 1
        onRecord(message)
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
        ])
      },
    }), limitMs, 'consumer run (join)')
    const deadline = Date.now() + limitMs
    while (got < want && !fatal && Date.now() < deadline) await sleep(100)
  } finally {
    await withTimeout(consumer.disconnect(), 10000, 'consumer disconnect').catch(() => {})
  }
  const why = crash ? ` (${fatal ? 'crashed' : 'last crash'}: ${crash.name}: ${crash.message})` : ''
  return { got, why }
}

async function group(kafka, prefix) {
  const topic = `${prefix}-g`
  const groupId = `${prefix}-grp`
  Object.assign(result, {
    scenario: 'group', first: 0, second: 0, duplicates: 0, missing: null, committed: null,
    after_commit: null, join_s: [],
  })
  step = `create topic ${topic}`
  await createTopic(kafka, topic, 4)
  step = 'produce'
  const producer = newProducer(kafka)
  await producer.connect()
  const messages = []
  for (let i = 0; i < 400; i++) messages.push({ key: `k${i}`, value: `v${i}` })
  await withTimeout(producer.send({ topic, acks: -1, messages, timeout: 15000 }), 25000, 'produce')
  await producer.disconnect()

  const seen = new Set()
  const record = m => {
    const v = m.value.toString()
    if (seen.has(v)) result.duplicates += 1
    seen.add(v)
  }
  step = 'consumer 1'
  let joins = []
  const first = await groupMember(kafka, groupId, topic, 150, 20000, record, joins)
  result.first = first.got
  joined('consumer 1', joins, 4, 20000)
  if (first.got !== 150) throw new Failed(`consumer 1 got ${first.got}/150 records within 20 s${first.why}`)
  step = 'consumer 2'
  joins = []
  const second = await groupMember(kafka, groupId, topic, 250, 20000, record, joins)
  result.second = second.got
  joined('consumer 2', joins, 4, 20000)
  let missing = 0
  for (let i = 0; i < 400; i++) if (!seen.has(`v${i}`)) missing += 1
  result.missing = missing
  if (second.got !== 250) throw new Failed(`consumer 2 got ${second.got}/250 records within 20 s${second.why}`)

  // What the group committed, read back through OffsetFetch by the admin client.
  step = 'committed offsets'
  const admin = kafka.admin()
  await admin.connect()
  let fetched
  try {
    fetched = await withTimeout(admin.fetchOffsets({ groupId, topics: [topic] }), 15000, 'fetchOffsets')
  } finally {
    await admin.disconnect()
  }
  const partitions = (fetched.find(t => t.topic === topic) || { partitions: [] }).partitions
    .slice().sort((a, b) => a.partition - b.partition)
  result.committed_by_partition = partitions.map(p => Number(p.offset))
  result.committed = result.committed_by_partition.filter(o => o >= 0).reduce((a, b) => a + b, 0)
  if (partitions.length !== 4 || result.committed !== 400 || result.committed_by_partition.some(o => o < 0)) {
    throw new Failed(`the group's committed offsets ${JSON.stringify(result.committed_by_partition)} do not add up to 400`)
  }

  step = 'consumer 3'
  // Consumer 3: wait (bounded) for its assignment, then 3 s more; it must see nothing.
  let extra = 0
  joins = []
  const consumer = groupConsumer(kafka, groupId, joins)
  let crash = null
  consumer.on(consumer.events.CRASH, e => { if (!e.payload.restart) crash = e.payload.error })
  try {
    await withTimeout(consumer.connect(), 10000, 'consumer 3 connect')
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await withTimeout(
      consumer.run({ autoCommit: false, eachMessage: async () => { extra += 1 } }),
      JOIN_LIMIT_MS, 'consumer 3 run (join)'
    )
    const deadline = Date.now() + JOIN_LIMIT_MS + 2000
    while (!joins.length && !crash && Date.now() < deadline) await sleep(100)
    if (crash) throw new Failed(`consumer 3 crashed: ${crash.name}: ${crash.message}`)
    joined('consumer 3', joins, 4, JOIN_LIMIT_MS + 2000)
    await sleep(3000)
  } finally {
    await withTimeout(consumer.disconnect(), 10000, 'consumer 3 disconnect').catch(() => {})
  }
  result.after_commit = extra
  const ok = result.first === 150 && result.second === 250 && result.duplicates === 0 &&
    result.missing === 0 && extra === 0
  if (!ok) {
    throw new Failed(`group check failed: first=${result.first} second=${result.second} ` +
      `duplicates=${result.duplicates} missing=${result.missing} after_commit=${extra}`)
  }
}

async function main() {
  const [bootstrap, scenario, prefix] = process.argv.slice(2)
  if (!prefix || !['roundtrip', 'group'].includes(scenario)) {
    process.stderr.write('usage: kafkajs_client.js BOOTSTRAP roundtrip|group PREFIX\n')
    process.exit(2)
  }
  setTimeout(() => finish(false, `scenario did not finish within ${GLOBAL_LIMIT_MS / 1000} s (stuck in ${step})`), GLOBAL_LIMIT_MS)
  const kafka = new Kafka({
    clientId: 'shale-kafkajs-test',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 3 },
  })
  try {
    await (scenario === 'roundtrip' ? roundtrip : group)(kafka, prefix)
  } catch (e) {
    const reason = e instanceof Failed ? e.message : `${e.name} during ${step}: ${e.message}`
    finish(false, String(reason).replace(/\n/g, ' '))
  }
  finish(true)
}

main()
