//! The gRPC adapter: wire messages in, domain calls, wire messages out.

pub mod archive;
