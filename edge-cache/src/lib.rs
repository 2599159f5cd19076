//! The school edge node: it will hold the sync client, the local store and the
//! classroom server. For now it re-exports the shared store it is built on.

pub use catalog::Store;
