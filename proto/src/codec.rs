//! The codec of every stowage service and client: prost's, except that a message which
//! cannot be decoded (invalid UTF-8 in a string field, a truncated or malformed message)
//! is `INVALID_ARGUMENT` naming the field prost names, not `INTERNAL`: the sender sent
//! bytes that are not the message, and a server has nothing to fix.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`ProstCodec`] with decode errors as `INVALID_ARGUMENT`; named by the generated code
/// through tonic-prost-build's `codec_path`.
#[derive(Debug, Clone)]
pub struct StowageCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for StowageCodec<T, U> {
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for StowageCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StowageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StowageDecoder {
            buffer_settings: self.prost.decoder().buffer_settings(),
            _message: PhantomData,
        }
    }
}

/// Decodes `U` with prost; a failure is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StowageDecoder<U> {
    buffer_settings: BufferSettings,
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StowageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        U::decode(buf).map(Some).map_err(decode_error)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.buffer_settings
    }
}

/// prost's message names the message and field (`GetBindingRequest.id: invalid string
/// value: data is not UTF-8 encoded`), never the bytes.
fn decode_error(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the message cannot be decoded: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_field_with_invalid_utf8_is_invalid_argument_naming_the_field() {
        // field 1 (`id`), length-delimited, two bytes that are not UTF-8
        let bytes: &[u8] = &[0x0a, 0x02, 0xff, 0xfe];
        let error = crate::migration::v1::GetBindingRequest::decode(bytes).unwrap_err();
        let status = decode_error(error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("GetBindingRequest.id"),
            "{status:?}"
        );
    }
}
