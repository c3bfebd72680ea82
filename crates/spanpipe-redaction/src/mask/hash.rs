//! What a masked match becomes: `****` (the OTel default) or the hex digest named by `hash_function`, so equal
//! values stay correlatable without being readable.

use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use sha3::Sha3_256;

use crate::config::HashFunction;

/// The fixed mask.
pub const MASK: &str = "****";

/// Replacement maker for one configuration.
pub struct Hasher {
    function: HashFunction,
    key: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

impl Hasher {
    pub fn new(function: HashFunction, key: &str) -> Self {
        Hasher {
            function,
            key: key.as_bytes().to_vec(),
        }
    }

    /// The replacement of `value`.
    pub fn replace(&self, value: &str) -> String {
        let v = value.as_bytes();
        match self.function {
            HashFunction::None => MASK.to_string(),
            HashFunction::Md5 => hex(&Md5::digest(v)),
            HashFunction::Sha1 => hex(&Sha1::digest(v)),
            HashFunction::Sha3 => hex(&Sha3_256::digest(v)),
            HashFunction::HmacSha256 => match Hmac::<Sha256>::new_from_slice(&self.key) {
                Ok(mut m) => {
                    m.update(v);
                    hex(&m.finalize().into_bytes())
                }
                Err(_) => MASK.to_string(),
            },
            HashFunction::HmacSha512 => match Hmac::<Sha512>::new_from_slice(&self.key) {
                Ok(mut m) => {
                    m.update(v);
                    hex(&m.finalize().into_bytes())
                }
                Err(_) => MASK.to_string(),
            },
        }
    }
}
