//! The gRPC adapter: wire messages in, domain calls, wire messages out. Requests are
//! validated on receipt (`requests`), answered through `replies`; no SQL or store I/O here.

pub mod admin;
pub mod archive;
mod replies;
mod requests;

use std::pin::Pin;

use futures::Stream;
use stowage_shared::api::InvalidArgument;
use tonic::Status;
use uuid::Uuid;

/// A server-streaming response.
pub type ResponseStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidArgument::new(field, "must be a UUID"))
}
