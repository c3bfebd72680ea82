//! A tonic codec that moves raw bytes, so the receiver gets the encoded request as it arrived (no prost decode)
//! and exporters send a batch's bytes unchanged.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The 5-byte prefix of one uncompressed gRPC message of `len` bytes (flag 0, big-endian length), for the paths
/// that frame messages themselves; `None` past 4 GiB, which gRPC cannot carry.
pub fn message_prefix(len: usize) -> Option<[u8; 5]> {
    let len = u32::try_from(len).ok()?;
    let mut prefix = [0u8; 5];
    prefix[1..].copy_from_slice(&len.to_be_bytes());
    Some(prefix)
}

/// Encodes and decodes messages as opaque `Bytes`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// The encoder half of [`RawCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

/// The decoder half of [`RawCodec`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
