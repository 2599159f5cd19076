//! The answers to one request, read frame by frame over QUIC or HTTPS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use server::protocol::{self, Response};

use super::error::timed_out;
use super::{Client, ClientError, HTTP_FRAME_TIMEOUT};
use crate::sync::fallback::HttpAnswer;

/// The answers to one request, read frame by frame.
pub struct Responses {
    pub(super) reader: Reader,
    pub(super) client: Client,
}

pub(super) enum Reader {
    Quic {
        recv: quinn::RecvStream,
        _waiting: Waiting,
    },
    Http(HttpAnswer),
}

/// Counts a request as waiting for as long as its answers are being read.
pub(super) struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    pub(super) fn new(busy: &Arc<AtomicUsize>) -> Waiting {
        busy.fetch_add(1, Ordering::Relaxed);
        Waiting(busy.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Responses {
    /// The next answer; `None` when the origin has finished the stream.
    pub async fn next(&mut self) -> Result<Option<Response>, ClientError> {
        let bucket = self.client.bucket.as_deref();
        let pace = |bytes| async move {
            if let Some(bucket) = bucket {
                bucket.take(bytes).await;
            }
        };
        let read = match &mut self.reader {
            Reader::Quic { recv, .. } => {
                protocol::read_frame_paced::<Response, _, _>(recv, protocol::MAX_RESPONSE, pace)
                    .await
            }
            Reader::Http(answer) => {
                let read = protocol::read_frame_paced::<Response, _, _>(
                    &mut answer.body,
                    protocol::MAX_RESPONSE,
                    pace,
                );
                match tokio::time::timeout(HTTP_FRAME_TIMEOUT, read).await {
                    Ok(Ok(None)) => {
                        answer.finished();
                        Ok(None)
                    }
                    Ok(read) => read,
                    Err(_) => {
                        return Err(ClientError::Lost {
                            addr: self.client.addr,
                            cause: timed_out(format!(
                                "nothing arrived for {} s",
                                HTTP_FRAME_TIMEOUT.as_secs()
                            )),
                        });
                    }
                }
            }
        };
        read.map_err(|err| self.client.frame_error(err))
    }
}
