//! Compiles every contract under `proto/pos/v1` with `protox` (pure Rust, no system `protoc`)
//! and generates the prost messages and tonic clients and servers. The encoded descriptor set is
//! written beside the generated code so that services can serve gRPC reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled in another checkout sharing the target
    // directory must still find this checkout's contracts.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let dir = proto_root.join("pos/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("pos_descriptor.bin"), fds.encode_to_vec())?;

    // `build_transport(false)`: no generated `Client::connect` constructor, which would clash
    // with the `TerminalGateway.Connect` rpc; clients are made with `Client::new(channel)` over
    // a long-lived `tonic::transport::Channel` anyway.
    tonic_prost_build::configure()
        .build_transport(false)
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
