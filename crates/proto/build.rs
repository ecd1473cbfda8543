//! Compiles `proto/shale/v1/*.proto` into tonic services and prost messages, plus a
//! file descriptor set for gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/shale/v1/log.proto",
        "proto/shale/v1/admin.proto",
        "proto/shale/v1/replica.proto",
        "proto/shale/v1/groups.proto",
        "proto/shale/v1/txn.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=proto/shale/v1/common.proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("shale_descriptor.bin"))
        .bytes(".")
        .compile_protos(&protos, &["proto"])
        .map_err(|e| {
            format!(
                "compiling protos failed: {e}\nhint: protoc is needed; run scripts/ensure-protoc.sh \
                 (installs Debian's protobuf-compiler) or set PROTOC"
            )
        })?;
    Ok(())
}
