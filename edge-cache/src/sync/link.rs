//! The connection a pass uses, re-made with backoff when it drops.

use super::{MAX_ATTEMPTS, MAX_CONNECT_ATTEMPTS, SyncError, error_chain};
use crate::config::EdgeConfig;
use crate::sync::client::{Client, ClientError, SinceAnswer, SinceAsk, Transport};
use crate::sync::memory::TransportMemory;
use crate::sync::throttle::TokenBucket;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The connection to the origin, re-made with backoff when it drops.
pub(super) struct Link {
    pub(super) config: EdgeConfig,
    pub(super) client: Client,
    /// The pass's bandwidth cap, kept across reconnections.
    pub(super) bucket: Option<Arc<TokenBucket>>,
    pub(super) transport: Transport,
    pub(super) reconnects: u32,
    /// The edge's memory of which transport works, shared with read-through.
    pub(super) memory: Arc<TransportMemory>,
}

impl Link {
    /// Connects and asks `ask` as early as the protocol allows (see
    /// [`Client::connect_asking`]); the question's answer, or why it failed,
    /// comes with the link, for [`Link::retry_after`].
    pub(super) async fn connect_asking(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        transport: Transport,
        memory: Arc<TransportMemory>,
        ask: &SinceAsk,
    ) -> Result<(Link, Result<SinceAnswer, ClientError>), SyncError> {
        let mut attempt = 0;
        loop {
            match Client::connect_asking(config, bucket.clone(), transport, &memory, ask).await {
                Ok((client, answer)) => {
                    let link = Link {
                        config: config.clone(),
                        client,
                        bucket,
                        transport,
                        reconnects: 0,
                        memory,
                    };
                    return Ok((link, answer));
                }
                Err(err) if err.is_transient() && attempt + 1 < MAX_CONNECT_ATTEMPTS => {
                    attempt += 1;
                    warn!(cause = %error_chain(&err), attempt, "cannot reach the origin; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) if err.is_transient() => {
                    return Err(SyncError::Unreachable {
                        attempts: attempt + 1,
                        last: err,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    pub(super) async fn reconnect(&mut self, attempt: u32) -> Result<(), SyncError> {
        tokio::time::sleep(backoff(attempt)).await;
        match Client::connect_paced(
            &self.config,
            self.bucket.clone(),
            self.transport,
            &self.memory,
        )
        .await
        {
            Ok(client) => {
                if client.transport_name() != self.client.transport_name() {
                    info!(
                        transport = client.transport_name(),
                        "reconnected over another transport"
                    );
                }
                self.client = client;
                self.reconnects += 1;
                Ok(())
            }
            Err(err) if err.is_transient() => {
                warn!(cause = %error_chain(&err), attempt, "reconnecting failed");
                Ok(()) // the next request fails fast and counts another attempt
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Runs a request, reconnecting and retrying on a lost connection.
    pub(super) async fn retry<T, F, Fut>(&mut self, request: F) -> Result<T, SyncError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        self.retry_after(None, request).await
    }

    /// Like [`Link::retry`], where `first` (if any) is the outcome of the
    /// first attempt, already made (a question sent with the hello).
    pub(super) async fn retry_after<T, F, Fut>(
        &mut self,
        mut first: Option<Result<T, ClientError>>,
        mut request: F,
    ) -> Result<T, SyncError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            let outcome = match first.take() {
                Some(outcome) => outcome,
                None => request(self.client.clone()).await,
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    warn!(cause = %error_chain(&err), attempt, "request failed; reconnecting");
                    self.reconnect(attempt).await?;
                }
                Err(err) if err.is_transient() => {
                    return Err(SyncError::Unreachable {
                        attempts: attempt + 1,
                        last: err,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// 0.5 s, 1 s, 2 s, … up to 30 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6).saturating_sub(1)))
        .min(Duration::from_secs(30))
}
