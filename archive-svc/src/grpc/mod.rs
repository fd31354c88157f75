//! The gRPC adapter: wire messages in, domain calls, wire messages out. Requests are
//! validated on receipt (`requests`), answered through `replies`; no SQL or store I/O here.

pub mod admin;
pub mod archive;
mod replies;
mod requests;
