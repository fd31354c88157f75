//! Calls any gRPC method by its path with pre-encoded request bytes, so tests can walk a
//! descriptor set and send what no typed client would (wrong fields, invalid UTF-8,
//! repeated fields), with a deadline on every call.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    metadata::MetadataValue,
    transport::Channel,
};

/// How a method streams, as its descriptor says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ServerStreaming,
    ClientStreaming,
    Bidi,
}

impl Shape {
    pub fn of(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (false, true) => Self::ServerStreaming,
            (true, false) => Self::ClientStreaming,
            (true, true) => Self::Bidi,
        }
    }
}

/// What a call ended with: its code (`Ok` when every message read arrived without an
/// error), the status message, and the raw reply messages read.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: Code,
    pub message: String,
    pub messages: Vec<Vec<u8>>,
    pub elapsed: Duration,
}

impl Reply {
    fn status(status: &Status, messages: Vec<Vec<u8>>, started: Instant) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            messages,
            elapsed: started.elapsed(),
        }
    }

    /// Whether any reply message holds `needle` (protobuf strings are their UTF-8 bytes).
    pub fn contains(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        !needle.is_empty()
            && self
                .messages
                .iter()
                .any(|m| m.windows(needle.len()).any(|w| w == needle))
    }
}

/// One call: `path` (`/package.Service/Method`), its shape, the request messages (one for
/// unary and server-streaming calls), an optional bearer token (sent verbatim after
/// `Bearer `), and a deadline for the whole call. Server streams are read to their end or
/// `max_messages`, whichever comes first. A call past the deadline is `DEADLINE_EXCEEDED`.
pub struct Call<'a> {
    pub path: &'a str,
    pub shape: Shape,
    pub messages: Vec<Vec<u8>>,
    pub token: Option<&'a str>,
    pub deadline: Duration,
    pub max_messages: usize,
}

impl Call<'_> {
    pub async fn send(self, channel: Channel) -> Reply {
        let started = Instant::now();
        let deadline = self.deadline;
        match tokio::time::timeout(deadline, self.run(channel, started)).await {
            Ok(reply) => reply,
            Err(_) => Reply::status(
                &Status::deadline_exceeded("the test's deadline passed"),
                Vec::new(),
                started,
            ),
        }
    }

    async fn run(self, channel: Channel, started: Instant) -> Reply {
        let path = match PathAndQuery::try_from(self.path) {
            Ok(path) => path,
            Err(e) => return Reply::status(&Status::internal(e.to_string()), vec![], started),
        };
        let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
        if let Err(e) = grpc.ready().await {
            return Reply::status(&Status::unavailable(e.to_string()), vec![], started);
        }
        let token = self
            .token
            .and_then(|t| MetadataValue::try_from(format!("Bearer {t}")).ok());
        let deadline = self.deadline;
        let prepare = |message| prepare(message, token.as_ref(), deadline);
        let prepare_stream = |messages| prepare_stream(messages, token.as_ref(), deadline);
        let first = self.messages.first().cloned().unwrap_or_default();
        let stream = tokio_stream::iter(self.messages.clone());
        let result = match self.shape {
            Shape::Unary => grpc
                .unary(prepare(first), path, RawCodec)
                .await
                .map(|r| Streamed::One(r.into_inner())),
            Shape::ClientStreaming => grpc
                .client_streaming(prepare_stream(stream), path, RawCodec)
                .await
                .map(|r| Streamed::One(r.into_inner())),
            Shape::ServerStreaming => grpc
                .server_streaming(prepare(first), path, RawCodec)
                .await
                .map(|r| Streamed::Many(Box::new(r.into_inner()))),
            Shape::Bidi => grpc
                .streaming(prepare_stream(stream), path, RawCodec)
                .await
                .map(|r| Streamed::Many(Box::new(r.into_inner()))),
        };
        match result {
            Err(status) => Reply::status(&status, vec![], started),
            Ok(Streamed::One(message)) => Reply {
                code: Code::Ok,
                message: String::new(),
                messages: vec![message],
                elapsed: started.elapsed(),
            },
            Ok(Streamed::Many(mut stream)) => {
                let mut messages = Vec::new();
                while messages.len() < self.max_messages {
                    match stream.message().await {
                        Ok(Some(message)) => messages.push(message),
                        Ok(None) => break,
                        Err(status) => return Reply::status(&status, messages, started),
                    }
                }
                Reply {
                    code: Code::Ok,
                    message: String::new(),
                    messages,
                    elapsed: started.elapsed(),
                }
            }
        }
    }
}

type Token = MetadataValue<tonic::metadata::Ascii>;

fn prepare(message: Vec<u8>, token: Option<&Token>, deadline: Duration) -> Request<Vec<u8>> {
    authorize(Request::new(message), token, deadline)
}

fn prepare_stream<S>(messages: S, token: Option<&Token>, deadline: Duration) -> Request<S> {
    authorize(Request::new(messages), token, deadline)
}

fn authorize<T>(mut request: Request<T>, token: Option<&Token>, deadline: Duration) -> Request<T> {
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.clone());
    }
    request.set_timeout(deadline);
    request
}

enum Streamed {
    One(Vec<u8>),
    Many(Box<tonic::Streaming<Vec<u8>>>),
}

/// Sends and receives messages as the bytes they are encoded to.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
