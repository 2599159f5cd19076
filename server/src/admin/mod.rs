//! What administrators ask of the origin over the sync protocol (issue 15):
//! a connection whose hello carries an admin token (`admins.toml`) may send
//! [`AdminRequest`]s; every action is logged with the token's name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use catalog::Hash;

use serde::{Deserialize, Serialize};

use crate::protocol::{self, FrameError, Response};
use crate::serve::State;

mod bases;
pub mod delta;
pub mod edges;
pub mod log;
pub mod publish;
pub mod upload;
mod writer;

/// Chunks of one file in a [`AdminRequest::PutChunks`]: its manifest
/// object, and `(index in the manifest, bytes)` of each chunk.
pub type FileChunks = (Hash, Vec<IndexedChunk>);

/// One chunk in a [`FileChunks`]: its index in the file's manifest and its
/// bytes (encoded as one byte string: as a sequence of numbers, encoding and
/// decoding them byte by byte took a fifth of each end's time), which the
/// QUIC transport neither copies into the frame nor out of it
/// ([`crate::protocol::shared_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedChunk(
    pub u32,
    #[serde(with = "crate::protocol::shared_bytes")] pub bytes::Bytes,
);

/// An administrator's request. New variants go at the end (postcard
/// numbers variants by position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Who the origin takes this token for.
    Whoami,
    /// `shanlu origin add-edge --origin …`: a token (and join code) for a new edge.
    AddEdge {
        name: String,
        county: Option<String>,
    },
    /// `shanlu origin revoke NAME --origin …`.
    RevokeEdge { name: String },
    /// `shanlu origin edges --origin …`.
    ListEdges,
    /// Remote publish, step 1 (issue 15): encoded file-manifest objects,
    /// one per distinct file; the origin keeps them and answers
    /// [`AdminResponse::Needed`].
    PlanFiles { manifests: Vec<Vec<u8>> },
    /// Step 2: chunks of files, each named by its manifest object, by index
    /// in it: at most [`upload::MAX_PUT_FILES`] files and
    /// [`protocol::MAX_ADMIN_REQUEST`] in all.
    PutChunks { files: Vec<FileChunks> },
    /// Step 3: encoded lesson objects, whose files the origin holds whole.
    PutObjects { objects: Vec<Vec<u8>> },
    /// Step 4: the encoded course object (its version is ignored: the origin
    /// picks it as a local publish does), committed with a new signed catalog.
    Publish {
        #[serde(with = "serde_bytes")]
        course: Vec<u8>,
        min_sequence: Option<u64>,
    },
    /// `shanlu withdraw COURSE --origin …`.
    Withdraw {
        course: String,
        reason: String,
        min_sequence: Option<u64>,
    },
    /// Step 2½ (protocol revision [`protocol::REVISION_DELTAS`]): for chunks
    /// of course `course` the origin still lacks, at most
    /// [`delta::MAX_WANTS`], the previous version's overlapping chunks and
    /// their signature; answered [`AdminResponse::Bases`].
    Bases {
        course: String,
        wants: Vec<delta::WantBase>,
    },
    /// Step 3, for chunks with a base: each as a delta against it, at most
    /// [`delta::MAX_DELTA_CHUNKS`]; rebuilt and checked against the manifest
    /// before anything is written; answered [`AdminResponse::ChunksStored`].
    PutDeltas { chunks: Vec<delta::DeltaChunk> },
}

/// The origin's answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    Whoami {
        name: String,
    },
    EdgeAdded {
        token: String,
        /// `None` when the origin does not know the addresses edges reach it at.
        join_code: Option<String>,
    },
    EdgeRevoked {
        /// It was revoked already.
        already: bool,
    },
    /// The edges as JSON (what `shanlu origin edges --json` prints).
    Edges {
        json: String,
    },
    /// Per manifest of a [`AdminRequest::PlanFiles`], in order: the chunk
    /// indices the origin still lacks (none: it holds the whole file).
    Needed {
        files: Vec<Vec<u32>>,
    },
    /// Chunks of a [`AdminRequest::PutChunks`] written (verified and
    /// durable); `complete`: files now whole, verified and in the store.
    ChunksStored {
        stored: u32,
        complete: u32,
    },
    /// Lesson objects kept.
    ObjectsStored {
        count: u32,
    },
    /// The [`crate::PublishReport`] as JSON.
    Published {
        json: String,
    },
    /// The [`crate::history::HistoryReport`] as JSON.
    Withdrawn {
        json: String,
    },
    /// Per want of an [`AdminRequest::Bases`], in order: its base, or `None`
    /// (no previous version there, or the answer is full: send it whole).
    Bases {
        bases: Vec<Option<delta::Base>>,
    },
}

/// The origin's side of administrators' requests: its data folder. On a
/// county edge, the desk where its children's proposals wait to go
/// upstream ([`Desk::for_store`]).
pub struct Desk {
    dir: PathBuf,
    /// The origin, opened at the first request that needs its key or store.
    origin: Mutex<Option<Arc<crate::Origin>>>,
    /// A county edge's store, when the desk is not the origin's.
    store: Option<Arc<catalog::Store>>,
    /// Uploads in progress: one writer per file, chunks counted per admin.
    uploads: upload::Uploads,
}

/// The store a desk's uploads go into.
#[derive(Clone)]
pub(crate) enum Held {
    Origin(Arc<crate::Origin>),
    Store(Arc<catalog::Store>),
}

impl Held {
    pub(crate) fn store(&self) -> &catalog::Store {
        match self {
            Held::Origin(origin) => origin.store(),
            Held::Store(store) => store,
        }
    }
}

impl Desk {
    pub fn new(dir: &Path) -> Desk {
        Desk {
            dir: dir.to_owned(),
            origin: Mutex::new(None),
            store: None,
            uploads: upload::Uploads::default(),
        }
    }

    /// A desk over `store` (a county edge's), keeping its review queue in
    /// `dir`: it takes proposals, not administrators' requests.
    pub fn for_store(dir: &Path, store: Arc<catalog::Store>) -> Desk {
        Desk {
            store: Some(store),
            ..Desk::new(dir)
        }
    }

    /// The store uploads go into (blocking: the origin is opened once).
    pub(crate) fn held(&self) -> Result<Held, String> {
        match &self.store {
            Some(store) => Ok(Held::Store(store.clone())),
            None => self
                .origin()
                .map(Held::Origin)
                .map_err(|e| upload::store_error("opening the origin", e)),
        }
    }

    /// The origin (opened once; blocking).
    pub fn origin(&self) -> Result<Arc<crate::Origin>, crate::origin::OriginError> {
        let mut held = self.origin.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(origin) = &*held {
            return Ok(origin.clone());
        }
        let origin = Arc::new(crate::Origin::open(&self.dir)?);
        *held = Some(origin.clone());
        Ok(origin)
    }

    /// Waits until every chunk the upload writer was given is durable.
    pub fn settle_uploads(&self) -> Result<(), String> {
        self.uploads.writer(self)?.settle()
    }

    /// The origin's data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Runs `work` with the desk on the blocking pool; its error becomes the answer.
pub(crate) async fn on_desk(
    state: &Arc<State>,
    work: impl FnOnce(&Desk) -> Result<AdminResponse, String> + Send + 'static,
) -> Response {
    let state = state.clone();
    let done = tokio::task::spawn_blocking(move || match &state.desk {
        Some(desk) => work(desk),
        None => Err("this server takes no administrators' requests".to_owned()),
    })
    .await;
    match done {
        Ok(Ok(answer)) => Response::Admin(answer),
        Ok(Err(message)) => Response::Error { message },
        Err(_) => Response::Error {
            message: "the origin stopped answering this request; try again".to_owned(),
        },
    }
}

/// Answers one administrator's request from `admin` (the token's name).
pub async fn answer(
    request: AdminRequest,
    admin: &str,
    desk: &Desk,
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<(), FrameError> {
    match request {
        AdminRequest::Whoami => {
            let response = Response::Admin(AdminResponse::Whoami {
                name: admin.to_owned(),
            });
            protocol::write_frame(send, &response).await
        }
        request @ (AdminRequest::AddEdge { .. }
        | AdminRequest::RevokeEdge { .. }
        | AdminRequest::ListEdges) => edges::answer(request, admin, desk, send).await,
        request @ (AdminRequest::PlanFiles { .. }
        | AdminRequest::PutChunks { .. }
        | AdminRequest::PutObjects { .. }
        | AdminRequest::Bases { .. }
        | AdminRequest::PutDeltas { .. }) => {
            let response = upload::answer(request, admin, state).await;
            protocol::write_frame(send, &response).await
        }
        request @ (AdminRequest::Publish { .. } | AdminRequest::Withdraw { .. }) => {
            let response = publish::answer(request, admin, state).await;
            protocol::write_frame(send, &response).await
        }
    }
}
