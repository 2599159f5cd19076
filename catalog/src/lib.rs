//! shanlu's content model and store: the I/O-light core that the origin and
//! the edges share. No sockets here.
//!
//! # Layout
//! - [`hash`]: [`Hash`], the BLAKE3 name of every blob, chunk and object.
//! - [`chunker`]: FastCDC content-defined chunking, streaming over any reader.
//! - [`text`]: [`LocalizedText`] in Chinese, Yi, Tibetan, English, … with fallback.
//! - [`object`]: [`FileManifest`], [`Lesson`], [`Course`], [`Catalog`] and their
//!   deterministic, hash-addressed encoding.
//! - [`limits`]: limits on every metadata field and count (its `fields`), and
//!   BCP 47 tag checks (its `tags`), so that every published object fits the
//!   sync protocol's frames.
//! - [`sign`]: Ed25519 keys and the [`SignedCatalog`].
//! - [`roots`]: key rotation, the chain of signed key roots (issue 13).
//! - [`store`]: the on-disk [`Store`] of blobs, partial blobs and the redb index.
//! - [`testdata`]: deterministic bytes for tests and benchmarks.
//! - [`format`]: sizes, times and error chains for people.
//! - [`i18n`]: the words around them, from Fluent files translators edit.

pub mod chunker;
pub mod format;
pub mod hash;
pub mod i18n;
pub mod limits;
pub mod manifest;
pub mod object;
pub mod roots;
pub mod sign;
pub mod store;
pub mod testdata;
pub mod text;

pub use chunker::ChunkingProfile;
pub use hash::Hash;
pub use limits::LimitError;
pub use object::{
    Catalog, CatalogEntry, ChunkRef, Course, FileEntry, FileManifest, Lesson, LessonRef, Object,
    Tombstone,
};
pub use sign::{OriginKey, PublicKey, SignedCatalog};
pub use store::Store;
pub use text::LocalizedText;
