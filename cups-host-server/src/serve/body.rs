//! The response body: the head bytes, then the update streamed chunk by chunk from the store,
//! with an exact length known up front (hyper writes it as `Content-Length`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use http_body::{Body, Frame, SizeHint};

use super::ServeMetrics;
use crate::store::{ObjectStream, StoreError};

/// Why a streamed update was cut off. The connection is then aborted: the station sees a
/// short body, counts a protocol error and retries (with nothing committed but what came
/// before the update, as always).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseBodyError {
    /// The store failed while streaming.
    #[error("update stream failed after {sent} of {len} bytes: {source}")]
    Store {
        /// Update bytes sent.
        sent: u64,
        /// Update length announced.
        len: u64,
        /// The store's error.
        source: StoreError,
    },
    /// The stream ended before its announced length.
    #[error("update stream ended after {sent} of {len} bytes")]
    Short {
        /// Update bytes sent.
        sent: u64,
        /// Update length announced.
        len: u64,
    },
    /// The stream yielded more bytes than its announced length.
    #[error("update stream exceeded its length of {len} bytes")]
    Long {
        /// Update length announced.
        len: u64,
    },
}

/// A response body of exactly known length: a fixed prefix (the CUPS response head, or a text
/// body) followed by an optional streamed update. Never buffers the update.
pub struct ResponseBody {
    /// The prefix, until it was yielded.
    head: Option<Bytes>,
    /// The update chunks, until they are exhausted.
    update: Option<BoxStream<'static, Result<Bytes, StoreError>>>,
    /// Announced update length.
    update_len: u64,
    /// Update bytes yielded so far.
    sent: u64,
    /// Where stream failures are counted.
    metrics: Option<Arc<ServeMetrics>>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("head_len", &self.head.as_ref().map(Bytes::len))
            .field("update_len", &self.update_len)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// A body of exactly these bytes.
    #[must_use]
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            head: Some(bytes.into()),
            update: None,
            update_len: 0,
            sent: 0,
            metrics: None,
        }
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// `head` followed by the whole of `update`.
    pub(super) fn streamed(
        head: Bytes,
        update: ObjectStream,
        metrics: Option<Arc<ServeMetrics>>,
    ) -> Self {
        Self {
            head: Some(head),
            update: (update.len > 0).then_some(update.chunks),
            update_len: update.len,
            sent: 0,
            metrics,
        }
    }

    /// Total body length.
    #[must_use]
    pub fn len(&self) -> u64 {
        let head = self.head.as_ref().map_or(0, Bytes::len);
        u64::try_from(head)
            .unwrap_or(u64::MAX)
            .saturating_add(self.update_len.saturating_sub(self.sent))
    }

    /// Whether nothing (more) is to be sent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fail(
        &mut self,
        e: ResponseBodyError,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        self.update = None;
        if let Some(m) = &self.metrics {
            m.update_stream_errors.inc();
        }
        tracing::warn!(error = %e, "update stream aborted");
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        let this = self.get_mut();
        if let Some(head) = this.head.take()
            && !head.is_empty()
        {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        loop {
            let Some(stream) = this.update.as_mut() else {
                return Poll::Ready(None);
            };
            let (sent, len) = (this.sent, this.update_len);
            match Pin::new(stream).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                    let Some(total) = sent.checked_add(n).filter(|t| *t <= len) else {
                        return this.fail(ResponseBodyError::Long { len });
                    };
                    this.sent = total;
                    if total == len {
                        // Release the store's resources as soon as the last byte is out.
                        this.update = None;
                    }
                    if let Some(m) = &this.metrics {
                        m.update_bytes_sent.add(n);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                Poll::Ready(Some(Err(source))) => {
                    return this.fail(ResponseBodyError::Store { sent, len, source });
                }
                Poll::Ready(None) => {
                    return this.fail(ResponseBodyError::Short { sent, len });
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.as_ref().is_none_or(Bytes::is_empty) && self.update.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ETag;
    use futures_util::stream;
    use http_body_util::BodyExt;

    fn update(chunks: Vec<Result<Bytes, StoreError>>, len: u64) -> ObjectStream {
        ObjectStream {
            len,
            etag: ETag("e".into()),
            chunks: Box::pin(stream::iter(chunks)),
        }
    }

    #[tokio::test]
    async fn head_then_chunks_with_exact_length() {
        let body = ResponseBody::streamed(
            Bytes::from_static(b"head"),
            update(
                vec![
                    Ok(Bytes::from_static(b"ab")),
                    Ok(Bytes::new()),
                    Ok(Bytes::from_static(b"cde")),
                ],
                5,
            ),
            None,
        );
        assert_eq!(body.size_hint().exact(), Some(9));
        let got = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(got.ok(), Some(Bytes::from_static(b"headabcde")));
    }

    #[tokio::test]
    async fn short_and_long_streams_fail() {
        let short = ResponseBody::streamed(
            Bytes::from_static(b"h"),
            update(vec![Ok(Bytes::from_static(b"ab"))], 3),
            None,
        );
        assert!(matches!(
            short.collect().await,
            Err(ResponseBodyError::Short { sent: 2, len: 3 })
        ));
        let long = ResponseBody::streamed(
            Bytes::from_static(b"h"),
            update(vec![Ok(Bytes::from_static(b"abcd"))], 3),
            None,
        );
        assert!(matches!(
            long.collect().await,
            Err(ResponseBodyError::Long { len: 3 })
        ));
    }

    #[test]
    fn full_and_empty() {
        let b = ResponseBody::full(Bytes::from_static(b"ok\n"));
        assert_eq!(b.size_hint().exact(), Some(3));
        assert!(!b.is_end_stream());
        let e = ResponseBody::empty();
        assert!(e.is_end_stream());
        assert!(e.is_empty());
    }
}
