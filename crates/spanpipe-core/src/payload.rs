//! An encoded OTLP request kept as a list of `Bytes` parts.
//!
//! Protobuf concatenation means the parts, sent one after another, are one valid `Export*ServiceRequest`, so
//! joining requests into a batch copies nothing: the batch holds the receivers' own buffers and the exporters send
//! them as consecutive body chunks / gRPC DATA frames. Each part is a whole request on its own, so a reader that
//! scans fields walks the parts one by one ([`Payload::parts`]); only a component that must hand one slice to a
//! decoder (JSON export, span-changing processors) asks for [`Payload::to_bytes`], which copies when there is more
//! than one part.

use std::sync::Arc;

use bytes::Bytes;

/// One or more encoded requests of one signal, concatenated.
#[derive(Clone, Default)]
pub struct Payload {
    repr: Repr,
    /// Total length of all parts.
    len: usize,
}

#[derive(Clone)]
enum Repr {
    One(Bytes),
    /// Two or more non-empty parts, shared: a fan-out clone is one reference count.
    Many(Arc<[Bytes]>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::One(Bytes::new())
    }
}

impl Payload {
    /// A payload of one part.
    pub fn new(bytes: Bytes) -> Self {
        Payload {
            len: bytes.len(),
            repr: Repr::One(bytes),
        }
    }

    /// The payloads one after another, without copying their bytes (empty parts are left out).
    pub fn join<I: IntoIterator<Item = Payload>>(payloads: I) -> Self {
        let mut parts: Vec<Bytes> = Vec::new();
        for p in payloads {
            parts.extend_from_slice(p.parts());
        }
        Self::from_parts(parts)
    }

    /// A payload of these parts, in order (empty parts are left out).
    pub fn from_parts(mut parts: Vec<Bytes>) -> Self {
        parts.retain(|b| !b.is_empty());
        let len = parts.iter().map(Bytes::len).sum();
        let repr = match parts.len() {
            0 => Repr::default(),
            1 => Repr::One(parts.pop().unwrap_or_default()),
            _ => Repr::Many(parts.into()),
        };
        Payload { repr, len }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts in order; each is a whole encoded request.
    pub fn parts(&self) -> &[Bytes] {
        match &self.repr {
            Repr::One(b) => std::slice::from_ref(b),
            Repr::Many(parts) => parts,
        }
    }

    /// The payload as one contiguous buffer: free for one part, a copy for more.
    pub fn to_bytes(&self) -> Bytes {
        match &self.repr {
            Repr::One(b) => b.clone(),
            Repr::Many(_) => Bytes::from(self.to_vec()),
        }
    }

    /// The payload copied into a `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }

    /// Applies a rewrite to every part; `edit` returns `None` for a part it left alone. The untouched parts are
    /// kept as they are (shared), so a batch of many requests costs a copy only of what changed. `None` when no
    /// part changed.
    pub fn try_map_parts<E>(
        &self,
        mut edit: impl FnMut(&Bytes) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<Payload>, E> {
        let mut parts: Option<Vec<Bytes>> = None;
        for (i, part) in self.parts().iter().enumerate() {
            match edit(part)? {
                Some(new) => parts
                    .get_or_insert_with(|| self.parts()[..i].to_vec())
                    .push(new.into()),
                None => {
                    if let Some(p) = parts.as_mut() {
                        p.push(part.clone());
                    }
                }
            }
        }
        Ok(parts.map(Payload::from_parts))
    }

    /// Decodes the message the parts form (protobuf merges concatenated messages), without joining them first.
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, prost::DecodeError> {
        let mut msg = M::default();
        for p in self.parts() {
            msg.merge(&p[..])?;
        }
        Ok(msg)
    }

    /// Whether the bytes equal `other` (parts compared in place, no copy).
    pub fn eq_bytes(&self, other: &[u8]) -> bool {
        if other.len() != self.len {
            return false;
        }
        let mut rest = other;
        for p in self.parts() {
            let (head, tail) = rest.split_at(p.len());
            if head != &p[..] {
                return false;
            }
            rest = tail;
        }
        true
    }
}

/// One or more encoded requests back to back: a [`Payload`] or a single buffer. Readers that scan fields take
/// this, so they read a batch of parts in place and a test's `&[u8]` alike.
pub trait WireParts {
    /// The parts in order; each is a whole encoded request.
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]>;
}

impl WireParts for Payload {
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]> {
        self.parts().iter().map(|b| &b[..])
    }
}

impl WireParts for [u8] {
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self)
    }
}

impl<const N: usize> WireParts for [u8; N] {
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self[..])
    }
}

impl WireParts for Vec<u8> {
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self[..])
    }
}

impl WireParts for Bytes {
    fn wire_parts(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self[..])
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::new(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::new(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Payload {
    fn from(s: &'static [u8]) -> Self {
        Payload::new(Bytes::from_static(s))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.eq_bytes(&other.to_bytes())
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.eq_bytes(other)
    }
}

impl PartialEq<Bytes> for Payload {
    fn eq(&self, other: &Bytes) -> bool {
        self.eq_bytes(other)
    }
}

impl PartialEq<Payload> for Bytes {
    fn eq(&self, other: &Payload) -> bool {
        other.eq_bytes(self)
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("len", &self.len)
            .field("parts", &self.parts().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_order_and_shares_the_buffers() {
        let a = Bytes::from_static(b"ab");
        let b = Bytes::from_static(b"cde");
        let joined = Payload::join([
            Payload::new(a.clone()),
            Payload::new(Bytes::new()),
            Payload::new(b.clone()),
        ]);
        assert_eq!(joined.len(), 5);
        assert_eq!(joined.parts().len(), 2);
        assert_eq!(joined.parts()[0].as_ptr(), a.as_ptr());
        assert_eq!(joined.parts()[1].as_ptr(), b.as_ptr());
        assert_eq!(&joined.to_bytes()[..], b"abcde");
        assert_eq!(joined.to_vec(), b"abcde");
        assert!(joined == b"abcde"[..]);
        assert!(joined != b"abcdf"[..]);
        assert!(joined != b"abcd"[..]);
    }

    #[test]
    fn join_flattens_nested_joins() {
        let ab = Payload::join([Payload::from(&b"a"[..]), Payload::from(&b"b"[..])]);
        let all = Payload::join([ab, Payload::from(&b"c"[..])]);
        assert_eq!(all.parts().len(), 3);
        assert_eq!(all, Payload::from(&b"abc"[..]));
    }

    #[test]
    fn one_part_is_not_copied() {
        let a = Bytes::from(vec![1u8; 64]);
        let p = Payload::new(a.clone());
        assert_eq!(p.to_bytes().as_ptr(), a.as_ptr());
        assert_eq!(Payload::join([p]).to_bytes().as_ptr(), a.as_ptr());
    }

    #[test]
    fn map_parts_copies_only_what_changed() {
        let (a, b, c) = (
            Bytes::from_static(b"aa"),
            Bytes::from_static(b"bb"),
            Bytes::from_static(b"cc"),
        );
        let p = Payload::from_parts(vec![a.clone(), b, c.clone()]);
        let none = p.try_map_parts(|_| Ok::<_, ()>(None)).unwrap();
        assert!(none.is_none());
        let changed = p
            .try_map_parts(|x| Ok::<_, ()>((&x[..] == b"bb").then(|| b"B".to_vec())))
            .unwrap()
            .unwrap();
        assert_eq!(changed.to_vec(), b"aaBcc");
        assert_eq!(changed.parts()[0].as_ptr(), a.as_ptr());
        assert_eq!(changed.parts()[2].as_ptr(), c.as_ptr());
        let dropped = p
            .try_map_parts(|x| Ok::<_, ()>((&x[..] == b"aa").then(Vec::new)))
            .unwrap()
            .unwrap();
        assert_eq!(dropped.parts().len(), 2);
        assert_eq!(
            p.try_map_parts(|_| Err::<Option<Vec<u8>>, _>(7)).err(),
            Some(7)
        );
    }

    #[test]
    fn empty_payloads() {
        assert!(Payload::default().is_empty());
        assert_eq!(Payload::default().parts().len(), 1);
        let none = Payload::join(Vec::new());
        assert!(none.is_empty());
        assert_eq!(none.to_vec(), Vec::<u8>::new());
    }
}
