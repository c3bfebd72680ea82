//! A request body sent as a list of `Bytes` chunks with its exact length known, so a batch kept as parts
//! (`spanpipe_core::Payload`) goes out without being copied into one buffer: HTTP/1.1 gets a `Content-Length`, h2
//! sends the chunks as consecutive DATA frames.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The chunks of one body, in order.
#[derive(Debug)]
pub struct PartsBody {
    parts: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl PartsBody {
    pub fn new(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        PartsBody {
            parts: parts.into_iter(),
            remaining,
        }
    }
}

impl Body for PartsBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        loop {
            let Some(part) = self.parts.next() else {
                return Poll::Ready(None);
            };
            if part.is_empty() {
                continue;
            }
            self.remaining -= part.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn sends_every_part_in_order_with_the_exact_length() {
        let body = PartsBody::new(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"abcde");
        assert!(PartsBody::new(Vec::new()).is_end_stream());
    }
}
