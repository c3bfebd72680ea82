//! Body compression for HTTP, both ways (the OTLP receiver decompresses, the exporters compress): gzip, zstd and
//! deflate, with a hard cap on the decompressed size so a decompression bomb costs at most `limit` bytes of
//! memory.

use std::io::Read;

/// A `Content-Encoding` we speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
    Deflate,
}

impl Compression {
    /// Parses a `Content-Encoding` header value (`identity` and empty mean none).
    pub fn from_header(value: &str) -> Option<Compression> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Compression::None),
            "gzip" | "x-gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "deflate" => Some(Compression::Deflate),
            _ => None,
        }
    }

    /// The header value to send, `None` for no compression.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::Deflate => Some("deflate"),
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("decompressed body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("invalid compressed body: {0}")]
    Invalid(String),
}

fn read_capped(mut r: impl Read, limit: usize, hint: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(hint.min(limit).min(64 << 20));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    (&mut r)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge(limit));
    }
    Ok(out)
}

/// Decompresses `body`, refusing to produce more than `limit` bytes.
pub fn decompress(c: Compression, body: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let hint = body.len().saturating_mul(4);
    match c {
        Compression::None => {
            if body.len() > limit {
                return Err(DecompressError::TooLarge(limit));
            }
            Ok(body.to_vec())
        }
        Compression::Gzip => read_capped(flate2::read::MultiGzDecoder::new(body), limit, hint),
        // HTTP "deflate" is zlib-wrapped (RFC 9110); accept raw deflate too, as many clients send it.
        Compression::Deflate => {
            match read_capped(flate2::read::ZlibDecoder::new(body), limit, hint) {
                Err(DecompressError::Invalid(_)) => {
                    read_capped(flate2::read::DeflateDecoder::new(body), limit, hint)
                }
                other => other,
            }
        }
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(body)
                .map_err(|e| DecompressError::Invalid(e.to_string()))?;
            read_capped(dec, limit, hint)
        }
    }
}

/// Compresses `body` (gzip and deflate at level 1: the fastest, and compression is the costliest stage).
pub fn compress(c: Compression, body: &[u8]) -> std::io::Result<Vec<u8>> {
    compress_parts(c, &[body])
}

/// Compresses the parts as one body, one after another, without joining them first.
pub fn compress_parts<P: AsRef<[u8]>>(c: Compression, parts: &[P]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let len: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let write_all = |w: &mut dyn Write| parts.iter().try_for_each(|p| w.write_all(p.as_ref()));
    match c {
        Compression::None => {
            let mut v = Vec::with_capacity(len);
            write_all(&mut v)?;
            Ok(v)
        }
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(len / 4),
                flate2::Compression::fast(),
            );
            write_all(&mut e)?;
            e.finish()
        }
        Compression::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(len / 4),
                flate2::Compression::fast(),
            );
            write_all(&mut e)?;
            e.finish()
        }
        Compression::Zstd => match parts {
            [one] => zstd::bulk::compress(one.as_ref(), 1),
            _ => {
                let mut e = zstd::stream::Encoder::new(Vec::with_capacity(len / 4), 1)?;
                write_all(&mut e)?;
                e.finish()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Deflate,
    ];

    #[test]
    fn round_trips_each_encoding() {
        let body = b"hello hello hello hello".repeat(100);
        for c in EVERY {
            let z = compress(c, &body).unwrap();
            assert_eq!(decompress(c, &z, body.len()).unwrap(), body, "{c:?}");
            assert!(matches!(
                decompress(c, &z, body.len() - 1),
                Err(DecompressError::TooLarge(_))
            ));
        }
    }

    #[test]
    fn parts_compress_as_one_body() {
        let parts = [b"hello ".repeat(50), Vec::new(), b"world".repeat(70)];
        let whole = parts.concat();
        for c in EVERY {
            let z = compress_parts(c, &parts).unwrap();
            assert_eq!(decompress(c, &z, whole.len()).unwrap(), whole, "{c:?}");
        }
    }

    #[test]
    fn bomb_is_capped_and_garbage_is_invalid() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = compress(Compression::Gzip, &zeros).unwrap();
        assert!(bomb.len() < 1_000_000, "a bomb is small: {}", bomb.len());
        assert!(matches!(
            decompress(Compression::Gzip, &bomb, 1 << 20),
            Err(DecompressError::TooLarge(_))
        ));
        for c in [Compression::Gzip, Compression::Zstd, Compression::Deflate] {
            assert!(matches!(
                decompress(c, b"not compressed at all", 1 << 20),
                Err(DecompressError::Invalid(_))
            ));
        }
        assert_eq!(Compression::from_header("GZIP"), Some(Compression::Gzip));
        assert_eq!(Compression::from_header("br"), None);
    }
}
