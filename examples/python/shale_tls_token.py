"""Produce to and fetch from Shale with Python grpcio, over TLS with a bearer token.

The stubs come from the .proto files alone:

    python -m grpc_tools.protoc -I crates/proto/proto --python_out=OUT --grpc_python_out=OUT \
        crates/proto/proto/shale/v1/*.proto
    PYTHONPATH=OUT python examples/python/shale_tls_token.py 127.0.0.1:9392 ca.crt TOKEN topic

Fetch returns Kafka RecordBatch v2 bytes as stored; `records` below decodes uncompressed
batches (what the broker builds from plain records).
"""

import struct
import sys

import grpc

from shale.v1 import admin_pb2, admin_pb2_grpc, common_pb2, log_pb2, log_pb2_grpc

BATCH_HEADER = 61  # bytes before the first record of a RecordBatch v2


def varint(buf, i):
    """A zigzag varint at buf[i:]: (value, next index)."""
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), i


def records(batches):
    """(offset, value) of every record in back-to-back uncompressed batches."""
    i = 0
    while i < len(batches):
        base_offset, length = struct.unpack_from(">qi", batches, i)
        end = i + 12 + length
        attributes = struct.unpack_from(">h", batches, i + 21)[0]
        if attributes & 0x07:
            raise ValueError("compressed batch: decompress before decoding")
        count = struct.unpack_from(">i", batches, i + 57)[0]
        j = i + BATCH_HEADER
        for _ in range(count):
            _, j = varint(batches, j)  # record length
            j += 1  # attributes
            _, j = varint(batches, j)  # timestamp delta
            delta, j = varint(batches, j)
            key_len, j = varint(batches, j)
            j += max(key_len, 0)
            value_len, j = varint(batches, j)
            value = batches[j : j + value_len] if value_len >= 0 else None
            j += max(value_len, 0)
            headers, j = varint(batches, j)
            for _ in range(headers):
                n, j = varint(batches, j)
                j += n
                n, j = varint(batches, j)
                j += max(n, 0)
            yield base_offset + delta, value
        i = end


def main(broker, ca_file, token, topic):
    with open(ca_file, "rb") as f:
        tls = grpc.ssl_channel_credentials(root_certificates=f.read())
    credentials = grpc.composite_channel_credentials(
        tls, grpc.access_token_call_credentials(token)
    )
    with grpc.secure_channel(broker, credentials) as channel:
        admin = admin_pb2_grpc.AdminStub(channel)
        log = log_pb2_grpc.LogStub(channel)
        print("whoami:", admin.WhoAmI(admin_pb2.WhoAmIRequest()).principal)
        try:
            admin.CreateTopic(admin_pb2.CreateTopicRequest(name=topic, partitions=1))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        values = [f"python-{i}".encode() for i in range(100)]
        batch = log_pb2.Records(records=[common_pb2.Record(value=v) for v in values])
        produced = log.Produce(
            log_pb2.ProduceRequest(topic=topic, partition=0, acks=common_pb2.ACKS_ALL, records=batch)
        )
        print(f"produced offsets {produced.base_offset}..{produced.last_offset}")
        fetched = []
        request = log_pb2.FetchRequest(
            topic=topic, partition=0, offset=produced.base_offset, stop_at_end=True
        )
        for response in log.Fetch(request):
            fetched.extend(
                v for o, v in records(response.batches) if o >= produced.base_offset
            )
        assert fetched == values, f"fetched {len(fetched)} records, not the 100 produced"
        print(f"fetched {len(fetched)} records back")


if __name__ == "__main__":
    main(*sys.argv[1:5])
