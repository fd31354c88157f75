//! Generated gRPC types and clients/servers of stowage, the codec they use (prost's, with
//! undecodable messages as `INVALID_ARGUMENT`), and the encoded file descriptor set that
//! servers register for reflection.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod codec;

/// `stowage.migration.v1`: bindings, artifacts, migration runs and evidence.
pub mod migration {
    pub mod v1 {
        tonic::include_proto!("stowage.migration.v1");
    }
}

/// `stowage.integrity.v1`: what both services' integrity sweeps report.
pub mod integrity {
    pub mod v1 {
        tonic::include_proto!("stowage.integrity.v1");
    }
}

/// `stowage.archive.v1`: the scan archive and its admin surface.
pub mod archive {
    pub mod v1 {
        tonic::include_proto!("stowage.archive.v1");
    }
}

/// Encoded `FileDescriptorSet` of every stowage proto file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/stowage_descriptor.bin"));
