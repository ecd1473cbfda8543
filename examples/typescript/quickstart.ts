// Shale from TypeScript with @grpc/grpc-js, the .proto files loaded at run time by
// @grpc/proto-loader (no generated code), over TLS with a token.
//
// Creates a topic, produces records with a key and headers (the broker compresses them with
// zstd), reads them back decoded, then joins a consumer group, reads what it was assigned
// and commits. With a fifth argument it also prints every record of that topic, decoded by
// the broker whatever codec its producer used, as JSON lines.
//
//   npm ci && npx tsc -p .
//   node dist/quickstart.js 127.0.0.1:9393 ca.crt TOKEN orders-ts [TOPIC]
//
// Calls go to the one broker given; on a cluster, send Produce and Fetch to the partition's
// leader (Admin.GetMetadata says which).

import * as fs from "fs";
import * as path from "path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

// Compiled to examples/typescript/dist/, three levels below the repository root.
const PROTOS = process.env.SHALE_PROTO_DIR ?? path.resolve(__dirname, "..", "..", "..", "crates", "proto", "proto");
const definition = protoLoader.loadSync(
  ["shale/v1/log.proto", "shale/v1/admin.proto", "shale/v1/groups.proto"],
  // int64 as strings. Absent fields stay absent (so a null key is told apart from an empty
  // one), which for numbers means 0: hence the `?? 0` below.
  { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: false, arrays: true },
);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const shale = (grpc.loadPackageDefinition(definition) as any).shale.v1;

interface Header { key: string; value?: Buffer }
interface FetchedRecord { offset?: string; timestamp_ms?: string; key?: Buffer; value?: Buffer; headers: Header[] }

/** A unary call as a promise. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function call<T>(client: any, method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, (err: grpc.ServiceError | null, answer: T) => (err ? reject(err) : resolve(answer))),
  );
}

/** Every record of a partition from `offset` to its end, decoded by the broker. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function read(log: any, topic: string, partition: number, offset: number): Promise<FetchedRecord[]> {
  const out: FetchedRecord[] = [];
  const stream = log.Fetch({ topic, partition, offset, stop_at_end: true, format: "FETCH_FORMAT_RECORDS" });
  for await (const response of stream) out.push(...response.records);
  return out;
}

/** A record as one JSON line: bytes as base64, absent ones as null. */
function asJson(r: FetchedRecord): string {
  const b64 = (b?: Buffer) => (b === undefined ? null : b.toString("base64"));
  return JSON.stringify({
    offset: Number(r.offset ?? 0),
    timestamp_ms: Number(r.timestamp_ms ?? 0),
    key: b64(r.key),
    value: b64(r.value),
    headers: r.headers.map((h) => [h.key, b64(h.value)]),
  });
}

async function main(broker: string, caFile: string, token: string, topic: string, dumpTopic?: string) {
  const tokenCredentials = grpc.credentials.createFromMetadataGenerator((_params, done) => {
    const metadata = new grpc.Metadata();
    metadata.add("authorization", `Bearer ${token}`);
    done(null, metadata);
  });
  const credentials = grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(fs.readFileSync(caFile)),
    tokenCredentials,
  );
  const admin = new shale.Admin(broker, credentials);
  const log = new shale.Log(broker, credentials);
  const groups = new shale.Groups(broker, credentials);
  console.log("whoami:", (await call<{ principal: string }>(admin, "WhoAmI", {})).principal);

  try {
    await call(admin, "CreateTopic", { name: topic, partitions: 1 });
  } catch (e) {
    if ((e as grpc.ServiceError).code !== grpc.status.ALREADY_EXISTS) throw e;
  }

  const records = Array.from({ length: 100 }, (_, i) => ({
    key: Buffer.from(`user-${i % 3}`),
    value: Buffer.from(`order ${i}`),
    headers: [{ key: "source", value: Buffer.from("typescript") }],
  }));
  const produced = await call<{ base_offset?: string; last_offset?: string }>(log, "Produce", {
    topic,
    partition: 0,
    acks: "ACKS_ALL",
    records: { records, compression: "COMPRESSION_ZSTD" },
  });
  console.log(`produced offsets ${produced.base_offset ?? 0}..${produced.last_offset}`);

  const back = await read(log, topic, 0, Number(produced.base_offset ?? 0));
  if (back.map((r) => String(r.value)).join() !== records.map((r) => String(r.value)).join()) {
    throw new Error(`read ${back.length} records back, not the 100 produced`);
  }
  console.log(`read ${back.length} records back; the first: ${back[0].key}=${back[0].value}`);

  // A consumer group: join, read the assignment, commit, leave.
  const group = `${topic}-readers`;
  type Member = {
    member_id: string;
    member_epoch?: number;
    heartbeat_interval_ms?: number;
    assignment: { topic: string; partitions: number[] }[];
  };
  let member = await call<Member>(groups, "Heartbeat", { group, member_epoch: 0, topics: [topic] });
  while (member.assignment.length === 0) {
    await new Promise((r) => setTimeout(r, (member.heartbeat_interval_ms ?? 1000) / 10));
    member = await call<Member>(groups, "Heartbeat", { group, member_id: member.member_id, member_epoch: member.member_epoch });
  }
  const offsets = [];
  for (const owned of member.assignment) {
    for (const partition of owned.partitions) {
      const all = await read(log, owned.topic, partition, 0);
      const next = all.length ? Number(all[all.length - 1].offset ?? 0) + 1 : 0;
      offsets.push({ topic: owned.topic, partition, offset: next });
      console.log(`group ${group}: read ${all.length} records of ${owned.topic}-${partition}`);
    }
  }
  await call(groups, "CommitOffsets", { group, member_id: member.member_id, member_epoch: member.member_epoch, offsets });
  await call(groups, "Heartbeat", { group, member_id: member.member_id, member_epoch: -1 });
  const committed = await call<{ offsets: { topic: string; partition?: number; offset?: string }[] }>(
    groups,
    "FetchOffsets",
    { group },
  );
  const done = committed.offsets.map((c) => `${c.topic}-${c.partition ?? 0}@${c.offset ?? 0}`);
  console.log("committed:", done.join(", "));

  if (dumpTopic) {
    for (const r of await read(log, dumpTopic, 0, 0)) console.log(asJson(r));
  }
  for (const client of [admin, log, groups]) client.close();
}

const [broker, caFile, token, topic, dumpTopic] = process.argv.slice(2);
main(broker, caFile, token, topic, dumpTopic).catch((e) => {
  console.error(e);
  process.exit(1);
});
