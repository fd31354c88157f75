//! Compiles the stowage `.proto` files in-process (no system `protoc`) and writes the
//! file descriptor set next to the generated code for server reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "stowage/integrity/v1/integrity.proto",
    "stowage/migration/v1/bindings.proto",
    "stowage/migration/v1/artifacts.proto",
    "stowage/migration/v1/runs.proto",
    "stowage/migration/v1/evidence.proto",
    "stowage/archive/v1/archive.proto",
];

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=stowage");

    let file_descriptors = protox::compile(PROTOS, ["."])?;
    std::fs::write(
        out_dir.join("stowage_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        // Artifact chunks pass through without copies.
        .bytes(".stowage.migration")
        // A watch stream's events are moved through several stream adapters each: the
        // rare whole-run events are boxed so that an outcome's event stays small.
        .boxed(".stowage.migration.v1.RunEvent.event.snapshot")
        .boxed(".stowage.migration.v1.RunEvent.event.update")
        // Undecodable requests are INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::StowageCodec")
        .compile_fds(file_descriptors)?;
    Ok(())
}
