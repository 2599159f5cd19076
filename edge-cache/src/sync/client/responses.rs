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
    /// Answers from a CDN (issue 16), then the origin's for what it lacked.
    Cdn {
        answers: Box<crate::sync::cdn::CdnAnswers>,
        rest: Option<Box<Responses>>,
    },
}

/// The bytes an answer carries, for pacing.
fn answer_len(response: &Response) -> usize {
    match response {
        Response::Object { bytes, .. } | Response::Chunk { bytes, .. } => bytes.len(),
        _ => 0,
    }
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
        if let Reader::Cdn { answers, rest } = &mut self.reader {
            if let Some(rest) = rest {
                return Box::pin(rest.next()).await;
            }
            if let Some(response) = answers.next().await {
                if let Some(bucket) = bucket {
                    bucket.take(answer_len(&response)).await;
                }
                return Ok(Some(response));
            }
            let Some(request) = answers.rest() else {
                return Ok(None);
            };
            let origin = self.client.request_origin(&request).await?;
            *rest = Some(Box::new(origin));
            return Box::pin(self.next()).await;
        }
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
            // Answered above.
            Reader::Cdn { .. } => Ok(None),
        };
        read.map_err(|err| self.client.frame_error(err))
    }
}
