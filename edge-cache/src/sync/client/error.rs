//! Why talking to the origin failed, with the typed cause kept underneath
//! (issue 12): a quinn, I/O, hyper or frame error, reachable through
//! `source()` for a caller to walk (`error_chain`, `{err:#}`) or downcast.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use catalog::Hash;
use server::protocol::{self, FrameError, Response};

use super::Client;
use super::quic::STALLED;

/// A typed cause, shared: an error is cloned to every lane and reader that
/// waited on the same download. `source()` of an error holding one gives the
/// cause itself (through `Deref`), so it downcasts to its own type.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    pub fn new(err: impl Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(err))
    }

    /// A cause that is only a description (nothing failed underneath).
    pub fn message(text: impl Into<String>) -> Cause {
        Cause::new(Message(text.into()))
    }
}

impl std::ops::Deref for Cause {
    type Target = dyn Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

/// The same cause, or two with the same message (outcomes are compared in tests).
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

impl From<String> for Cause {
    fn from(text: String) -> Cause {
        Cause::message(text)
    }
}

impl From<&str> for Cause {
    fn from(text: &str) -> Cause {
        Cause::message(text)
    }
}

impl From<ClientError> for Cause {
    fn from(err: ClientError) -> Cause {
        Cause::new(err)
    }
}

impl From<crate::sync::source::SourceError> for Cause {
    fn from(err: crate::sync::source::SourceError) -> Cause {
        Cause::new(err)
    }
}

/// A cause that is a description only.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

/// Why talking to the origin failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the origin at {addr} refused this edge's token; ask the administrator for a new one (`shanlu origin add-edge`) and put it in edge.toml"
    )]
    Unauthorized { addr: SocketAddr },
    #[error(
        "the origin at {addr} cannot check this edge's token because the origin's configuration is broken (its edges.toml); the token is fine: tell the origin's administrator, whose log names the fault"
    )]
    OriginConfig { addr: SocketAddr },
    #[error(
        "the origin at {addr} speaks another protocol version; upgrade shanlu on the edge or the origin"
    )]
    Version { addr: SocketAddr },
    /// The handshake or the first request failed (quinn, I/O, hyper).
    #[error("cannot reach the origin at {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        cause: Cause,
    },
    /// QUIC failed to connect, and so did the HTTPS fallback.
    #[error(
        "over QUIC: {}; nor over the HTTPS fallback",
        crate::sync::error_chain(&**.quic)
    )]
    NoTransport {
        quic: Box<ClientError>,
        /// The fallback's [`ClientError`].
        #[source]
        fallback: Cause,
    },
    /// The connection or a stream failed (quinn, I/O, hyper, a frame read).
    #[error("the connection to the origin at {addr} was lost")]
    Lost {
        addr: SocketAddr,
        #[source]
        cause: Cause,
    },
    /// The origin ended a stream before its answer was whole.
    #[error("the connection to the origin at {addr} was lost: {what}")]
    Ended {
        addr: SocketAddr,
        what: &'static str,
    },
    /// The stall watch replaced the connection.
    #[error(
        "the connection to the origin at {addr} {}",
        String::from_utf8_lossy(STALLED)
    )]
    Stalled { addr: SocketAddr },
    /// The fallback (or a proxy before it) answered with a server error.
    #[error("the origin's fallback at {addr} answered HTTP {status}: {text}")]
    ServerError {
        addr: SocketAddr,
        status: u16,
        text: String,
    },
    /// An answer did not decode or was over a limit (a frame error).
    #[error("the origin at {addr} answered something unexpected")]
    Protocol {
        addr: SocketAddr,
        #[source]
        cause: Cause,
    },
    /// An answer of the wrong kind.
    #[error("the origin at {addr} answered something unexpected: {answer}")]
    Unexpected { addr: SocketAddr, answer: String },
    /// The answer for one object could not be read.
    #[error("the answer for object {hash} from the origin at {addr} is unreadable")]
    ObjectAnswer {
        addr: SocketAddr,
        hash: Hash,
        /// The [`ClientError`] reading it.
        #[source]
        cause: Cause,
    },
    #[error("the origin at {addr} refused a request: {message}")]
    Refused { addr: SocketAddr, message: String },
    #[error("{url} has no /v1/sync (HTTP 404); is it the origin's --https address?")]
    NoSyncRoute { url: String },
    #[error("cannot resolve the fallback address {url}; check `fallback` in edge.toml")]
    Resolve {
        url: String,
        #[source]
        cause: Cause,
    },
    #[error("edge configuration: {0}")]
    Config(#[source] Arc<crate::config::ConfigError>),
    #[error("TLS: {0}")]
    Tls(#[source] Arc<server::tls::TlsError>),
}

impl From<crate::config::ConfigError> for ClientError {
    fn from(err: crate::config::ConfigError) -> ClientError {
        ClientError::Config(Arc::new(err))
    }
}

impl From<server::tls::TlsError> for ClientError {
    fn from(err: server::tls::TlsError) -> ClientError {
        ClientError::Tls(Arc::new(err))
    }
}

impl ClientError {
    /// Whether trying again later may help (the link, not the credentials, failed).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::NoTransport { .. }
                | ClientError::Lost { .. }
                | ClientError::Ended { .. }
                | ClientError::Stalled { .. }
                | ClientError::ServerError { .. }
        )
    }
}

/// A timeout as an I/O error of kind `TimedOut`, for a [`Cause`].
pub(crate) fn timed_out(what: String) -> Cause {
    Cause::new(std::io::Error::new(std::io::ErrorKind::TimedOut, what))
}

impl Client {
    pub(super) fn close_reason(&self) -> Option<quinn::ConnectionError> {
        match &self.wire {
            super::Wire::Quic { connection, .. } => connection.close_reason(),
            super::Wire::Http(_) => None,
        }
    }

    pub(super) fn connection_error(&self, err: quinn::ConnectionError) -> ClientError {
        let addr = self.addr;
        match &err {
            quinn::ConnectionError::ApplicationClosed(close) => {
                let code = close.error_code.into_inner();
                if code == u64::from(protocol::CLOSE_UNAUTHORIZED) {
                    return ClientError::Unauthorized { addr };
                }
                if code == u64::from(protocol::CLOSE_ORIGIN_CONFIG) {
                    return ClientError::OriginConfig { addr };
                }
                if code == u64::from(protocol::CLOSE_VERSION) {
                    return ClientError::Version { addr };
                }
            }
            // Only the stall watch closes a connection still in use.
            quinn::ConnectionError::LocallyClosed => return ClientError::Stalled { addr },
            _ => {}
        }
        ClientError::Lost {
            addr,
            cause: Cause::new(err),
        }
    }

    /// A frame that could not be read or written; the frame error itself
    /// is kept as the cause, whatever it holds.
    pub(super) fn frame_error(&self, err: FrameError) -> ClientError {
        // A closed connection shows up as a read or write error; ask the connection why.
        if let Some(reason) = self.close_reason() {
            return self.connection_error(reason);
        }
        let addr = self.addr;
        match err {
            FrameError::Read { .. } | FrameError::Write { .. } => ClientError::Lost {
                addr,
                cause: Cause::new(err),
            },
            other => ClientError::Protocol {
                addr,
                cause: Cause::new(other),
            },
        }
    }

    pub(super) fn unexpected(&self, response: &Response) -> ClientError {
        unexpected(self.addr, response)
    }

    /// The stream ended before `what` arrived: the connection's own
    /// failure if it has one, else [`ClientError::Ended`].
    pub(super) fn lost(&self, what: &'static str) -> ClientError {
        match self.close_reason() {
            Some(err) => self.connection_error(err),
            None => ClientError::Ended {
                addr: self.addr,
                what,
            },
        }
    }
}

/// An answer of the wrong kind from `addr`: a refusal, or something unexpected.
pub(crate) fn unexpected(addr: SocketAddr, response: &Response) -> ClientError {
    match response {
        Response::Error { message } => ClientError::Refused {
            addr,
            message: message.clone(),
        },
        other => ClientError::Unexpected {
            addr,
            answer: format!("{other:?}").chars().take(120).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::error_chain;
    use crate::sync::fallback::{FallbackUrl, HttpLink};
    use std::io;

    fn addr() -> SocketAddr {
        "192.0.2.1:4433".parse().expect("addr")
    }

    /// The first cause under `err`, as type `T`.
    fn cause<T: Error + 'static>(err: &dyn Error) -> Option<&T> {
        err.source()?.downcast_ref::<T>()
    }

    /// Issue 12: a refused HTTPS-fallback connection keeps hyper's error as
    /// the cause, with the refused connect under it, and stays transient.
    #[tokio::test]
    async fn issue_12_a_refused_fallback_connection_keeps_hypers_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = FallbackUrl::parse(&format!("http://127.0.0.1:{port}")).expect("url");
        let link = HttpLink::new(url, "", "token").await.expect("link");
        let Err(err) = link.post(vec![0; 4]).await else {
            panic!("nothing listens on port {port}")
        };
        assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        let hyper = cause::<hyper_util::client::legacy::Error>(&err).expect("hyper's error");
        assert!(hyper.is_connect());
        let chain = error_chain(&err);
        assert!(chain.contains("connecting failed"), "{chain}");
        assert!(chain.to_lowercase().contains("refused"), "{chain}");
    }

    /// Issue 12: a fallback name that does not resolve keeps the resolver's
    /// I/O error; it is not worth retrying (as before, when it was a
    /// configuration error).
    #[tokio::test]
    async fn issue_12_an_unresolvable_fallback_keeps_the_io_error() {
        let url = FallbackUrl::parse("https://no-such-origin.invalid:8443").expect("url");
        let err = match HttpLink::new(url, "", "token").await {
            Ok(_) => panic!("a .invalid name resolved"),
            Err(err) => err,
        };
        assert!(matches!(err, ClientError::Resolve { .. }), "{err:?}");
        assert!(!err.is_transient());
        assert!(
            err.to_string().contains("no-such-origin.invalid:8443"),
            "{err}"
        );
        assert!(cause::<io::Error>(&err).is_some(), "{err:?}");
    }

    /// Issue 12: the QUIC handshake's timeout is an I/O error of kind
    /// `TimedOut`, and a closed connection keeps quinn's error.
    #[test]
    fn issue_12_quic_failures_keep_quinns_and_io_errors() {
        let timeout = ClientError::Connect {
            addr: addr(),
            cause: timed_out("no answer within 10 s (is UDP to that port open?)".into()),
        };
        let io = cause::<io::Error>(&timeout).expect("an I/O error");
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            error_chain(&timeout),
            "cannot reach the origin at 192.0.2.1:4433: no answer within 10 s (is UDP to that port open?)"
        );

        let endpoint = {
            let _guard = tokio::runtime::Runtime::new().expect("runtime");
            let _enter = _guard.enter();
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint")
        };
        // No client configuration: quinn refuses before sending anything.
        let refused = endpoint
            .connect(addr(), "origin")
            .expect_err("no client config");
        let connect = ClientError::Connect {
            addr: addr(),
            cause: Cause::new(refused),
        };
        assert!(cause::<quinn::ConnectError>(&connect).is_some());
        assert!(connect.is_transient());

        let lost = ClientError::Lost {
            addr: addr(),
            cause: Cause::new(quinn::ConnectionError::TimedOut),
        };
        assert!(matches!(
            cause::<quinn::ConnectionError>(&lost),
            Some(quinn::ConnectionError::TimedOut)
        ));
        assert!(lost.is_transient());
    }

    /// Issue 12: a frame that does not decode keeps the frame error itself
    /// (whatever it holds) and is not retried; an answer of the wrong kind
    /// is not either.
    #[test]
    fn issue_12_a_malformed_answer_keeps_the_frame_error() {
        let frame =
            server::protocol::decode::<Response>(&[0xff, 0xff, 0xff]).expect_err("not a response");
        let err = ClientError::Protocol {
            addr: addr(),
            cause: Cause::new(frame),
        };
        assert!(cause::<FrameError>(&err).is_some());
        assert!(!err.is_transient());
        let object = ClientError::ObjectAnswer {
            addr: addr(),
            hash: catalog::Hash::of(b"x"),
            cause: Cause::new(err),
        };
        assert!(cause::<ClientError>(&object).is_some());
        assert!(!object.is_transient());
        let wrong = unexpected(addr(), &Response::Ok);
        assert!(matches!(wrong, ClientError::Unexpected { .. }) && !wrong.is_transient());
        let refused = unexpected(
            addr(),
            &Response::Error {
                message: "no".into(),
            },
        );
        assert!(matches!(refused, ClientError::Refused { .. }) && !refused.is_transient());
    }

    /// Issue 12: what was transient stays transient, and the rest not.
    #[test]
    fn issue_12_transient_errors_are_the_links_not_the_credentials() {
        let lost = || ClientError::Ended {
            addr: addr(),
            what: "the origin closed the hello stream",
        };
        for transient in [
            lost(),
            ClientError::Stalled { addr: addr() },
            ClientError::ServerError {
                addr: addr(),
                status: 502,
                text: "bad gateway".into(),
            },
            ClientError::NoTransport {
                quic: Box::new(lost()),
                fallback: Cause::new(lost()),
            },
        ] {
            assert!(transient.is_transient(), "{transient:?}");
        }
        for lasting in [
            ClientError::Unauthorized { addr: addr() },
            ClientError::OriginConfig { addr: addr() },
            ClientError::Version { addr: addr() },
            ClientError::NoSyncRoute {
                url: "https://o:8443".into(),
            },
            crate::config::ConfigError::Invalid("x".into()).into(),
        ] {
            assert!(!lasting.is_transient(), "{lasting:?}");
        }
        // Both transports' causes show in one line.
        let both = ClientError::NoTransport {
            quic: Box::new(ClientError::Connect {
                addr: addr(),
                cause: timed_out("no answer within 10 s".into()),
            }),
            fallback: Cause::new(ClientError::ServerError {
                addr: addr(),
                status: 503,
                text: "restarting".into(),
            }),
        };
        let chain = error_chain(&both);
        assert!(chain.contains("no answer within 10 s"), "{chain}");
        assert!(chain.contains("HTTP 503: restarting"), "{chain}");
        assert!(cause::<ClientError>(&both).is_some());
    }

    /// Issue 12: a shared cause downcasts to its own type through the
    /// errors that carry it to every asker (source, job, reader).
    #[test]
    fn issue_12_shared_causes_downcast_through_source_job_and_reader_errors() {
        use crate::sync::engine::JobError;
        use crate::sync::readthrough::Unavailable;
        use crate::sync::source::SourceError;
        let client = ClientError::Lost {
            addr: addr(),
            cause: Cause::new(quinn::ConnectionError::Reset),
        };
        let source = SourceError::Transient {
            source_name: "origin 192.0.2.1:4433 (quic)".into(),
            cause: Cause::new(client),
        };
        assert!(cause::<ClientError>(&source).is_some());
        assert!(
            error_chain(&source).contains("reset"),
            "{}",
            error_chain(&source)
        );
        let job = JobError::Offline(source.clone().into());
        // Transparent: the job error reads as the source error.
        assert_eq!(job.to_string(), source.to_string());
        assert!(cause::<ClientError>(&job).is_some());
        let reader = Unavailable::Offline(source.into());
        assert!(cause::<SourceError>(&reader).is_some());
        assert!(error_chain(&reader).starts_with("the origin cannot be reached: origin 192.0.2.1"));
    }
}
