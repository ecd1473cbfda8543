"""Shale from Python with nothing but grpcio and the .proto files, over TLS with a token.

Creates a topic, produces records with a key and headers (the broker compresses them with
zstd), reads them back decoded, then joins a consumer group, reads what it was assigned and
commits. With a fifth argument it also prints every record of that topic, decoded by the
broker whatever codec its producer used, as JSON lines.

    pip install grpcio==1.85.3 grpcio-tools==1.85.1
    python examples/python/quickstart.py 127.0.0.1:9393 ca.crt TOKEN orders-py [TOPIC]

The stubs are made from crates/proto/proto at start-up (grpc.protos_and_services), so
there is no generated code to keep in step. Calls go to the one broker given; on a cluster,
send Produce and Fetch to the partition's leader (Admin.GetMetadata says which).
"""

import base64
import json
import os
import sys
import time

import grpc

PROTOS = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "proto", "proto")
sys.path.insert(0, os.path.abspath(PROTOS))
common = grpc.protos("shale/v1/common.proto")
log, log_grpc = grpc.protos_and_services("shale/v1/log.proto")
admin, admin_grpc = grpc.protos_and_services("shale/v1/admin.proto")
groups, groups_grpc = grpc.protos_and_services("shale/v1/groups.proto")


def read(log_stub, topic, partition, offset):
    """Every record of a partition from `offset` to its end, decoded by the broker."""
    request = log.FetchRequest(
        topic=topic,
        partition=partition,
        offset=offset,
        stop_at_end=True,
        format=log.FETCH_FORMAT_RECORDS,
    )
    for response in log_stub.Fetch(request):
        yield from response.records


def as_json(record):
    """A record as one JSON line: bytes as base64, absent ones as null."""
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return json.dumps(
        {
            "offset": record.offset,
            "timestamp_ms": record.timestamp_ms,
            "key": b64(record.key) if record.HasField("key") else None,
            "value": b64(record.value) if record.HasField("value") else None,
            "headers": [[h.key, b64(h.value)] for h in record.headers],
        }
    )


def main(broker, ca_file, token, topic, dump_topic=None):
    with open(ca_file, "rb") as f:
        tls = grpc.ssl_channel_credentials(root_certificates=f.read())
    credentials = grpc.composite_channel_credentials(
        tls, grpc.access_token_call_credentials(token)
    )
    with grpc.secure_channel(broker, credentials) as channel:
        admin_stub = admin_grpc.AdminStub(channel)
        log_stub = log_grpc.LogStub(channel)
        groups_stub = groups_grpc.GroupsStub(channel)
        print("whoami:", admin_stub.WhoAmI(admin.WhoAmIRequest()).principal)

        try:
            admin_stub.CreateTopic(admin.CreateTopicRequest(name=topic, partitions=1))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise

        records = [
            common.Record(
                key=f"user-{i % 3}".encode(),
                value=f"order {i}".encode(),
                headers=[common.Header(key="source", value=b"python")],
            )
            for i in range(100)
        ]
        produced = log_stub.Produce(
            log.ProduceRequest(
                topic=topic,
                partition=0,
                acks=common.ACKS_ALL,
                records=log.Records(records=records, compression=log.COMPRESSION_ZSTD),
            )
        )
        print(f"produced offsets {produced.base_offset}..{produced.last_offset}")

        back = list(read(log_stub, topic, 0, produced.base_offset))
        assert [r.value for r in back] == [r.value for r in records], "read back as produced"
        assert all(r.headers[0].value == b"python" for r in back)
        print(f"read {len(back)} records back; the first: {back[0].key.decode()}={back[0].value.decode()}")

        # A consumer group: join, read the assignment, commit, leave.
        group = f"{topic}-readers"
        member = groups_stub.Heartbeat(
            groups.HeartbeatRequest(group=group, member_epoch=0, topics=[topic])
        )
        while not member.assignment:  # the coordinator may take a heartbeat to assign
            time.sleep(member.heartbeat_interval_ms / 1000 / 10)
            member = groups_stub.Heartbeat(
                groups.HeartbeatRequest(
                    group=group, member_id=member.member_id, member_epoch=member.member_epoch
                )
            )
        commits = []
        for owned in member.assignment:
            for partition in owned.partitions:
                n = next_offset = 0
                for record in read(log_stub, owned.topic, partition, 0):
                    n, next_offset = n + 1, record.offset + 1
                commits.append(
                    groups.OffsetCommit(topic=owned.topic, partition=partition, offset=next_offset)
                )
                print(f"group {group}: read {n} records of {owned.topic}-{partition}")
        groups_stub.CommitOffsets(
            groups.CommitOffsetsRequest(
                group=group,
                member_id=member.member_id,
                member_epoch=member.member_epoch,
                offsets=commits,
            )
        )
        groups_stub.Heartbeat(
            groups.HeartbeatRequest(group=group, member_id=member.member_id, member_epoch=-1)
        )
        committed = groups_stub.FetchOffsets(groups.FetchOffsetsRequest(group=group))
        print("committed:", ", ".join(f"{c.topic}-{c.partition}@{c.offset}" for c in committed.offsets))

        if dump_topic:
            for record in read(log_stub, dump_topic, 0, 0):
                print(as_json(record))


if __name__ == "__main__":
    main(*sys.argv[1:6])
