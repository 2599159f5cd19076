//! One module per subcommand.

pub mod bundle;
pub mod demo;
pub mod edge;
pub mod enroll;
pub mod i18n;
pub mod ls;
pub mod origin;
pub mod publish;
pub mod verify;
pub mod withdraw;

use std::path::{Path, PathBuf};

use anyhow::Context;
use catalog::{PublicKey, Store};

/// A data folder as the read-only commands see it: its store and, when known, the origin key.
pub struct DataFolder {
    pub store: Store,
    /// The key catalogs in this folder must be signed with.
    pub key: Option<PublicKey>,
    /// An origin holds every blob its catalog names.
    pub is_origin: bool,
    /// An origin on a bucket (issue 16): the bucket holds the content, the
    /// folder only a copy of the catalog and its metadata.
    pub bucket: Option<String>,
}

impl DataFolder {
    /// Opens an origin or edge data folder, or a bare store folder.
    pub fn open(dir: &Path) -> anyhow::Result<DataFolder> {
        let store_dir: PathBuf = if dir.join("store").join("index.redb").is_file() {
            dir.join("store")
        } else if dir.join("index.redb").is_file() {
            dir.to_owned()
        } else {
            anyhow::bail!(
                "{} is not a shanlu data folder (no store/index.redb); give the folder made by `shanlu origin init` or `shanlu edge init`",
                dir.display()
            );
        };
        let store = Store::open_existing(&store_dir)
            .with_context(|| format!("opening the store in {}", store_dir.display()))?;
        let origin_key = server::origin::read_public_key(dir)?;
        let is_origin = origin_key.is_some();
        let key = match origin_key {
            Some(key) => Some(key),
            None if edge_cache::config::config_path(dir).is_file() => {
                Some(edge_cache::EdgeConfig::load(dir)?.origin_key)
            }
            None => None,
        };
        let bucket = if is_origin {
            server::origin::store_url(dir)?
        } else {
            None
        };
        Ok(DataFolder {
            store,
            is_origin,
            key,
            bucket,
        })
    }
}
