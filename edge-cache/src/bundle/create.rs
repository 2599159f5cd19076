//! `shanlu bundle create`: a bundle from an origin's or an edge's data folder.
//!
//! The catalog in force, every metadata object it reaches
//! (`catalog::store::reachable`), and the chunks of the files of the chosen
//! courses that the folder holds, each chunk hashed as it is read (a damaged
//! blob on the source is never copied to a stick). With a have list, only
//! the objects and chunks it does not name.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use catalog::store::{StoreError, reachable};
use catalog::{Hash, Object, PublicKey, Store};
use indicatif::ProgressBar;
use serde::Serialize;
use tracing::warn;

use super::have::HaveList;
use super::pack::{Kind, MAX_PACK_BYTES, PackError, PackWriter};
use super::{BundleIndex, FOLDER, INDEX, PackEntry, pack_name};
use crate::sync::plan::{PlanError, file_jobs};

/// Test hook only: `SHANLU_TEST_BUNDLE_PACK_BYTES=N` makes packs of at
/// most N bytes (never more than 256 MiB), so tests get several packs from
/// a small course.
const TEST_PACK_BYTES: &str = "SHANLU_TEST_BUNDLE_PACK_BYTES";

/// What to put on the stick.
pub struct CreateOptions<'a> {
    /// The origin's or edge's data folder.
    pub data: &'a Path,
    /// The stick (or any folder); the bundle goes in `OUT/shanlu-bundle/`.
    pub out: &'a Path,
    /// Course ids whose files to carry; `None`: every course.
    pub courses: Option<Vec<String>>,
    /// Leave out what this have list names.
    pub have: Option<HaveList>,
    /// Where the have list's reports go (issue 15): the origin's fleet, or
    /// on a county edge its queue of reports to forward; `None` leaves them
    /// on the edge.
    pub reports: Option<&'a dyn server::report::ReportSink>,
}

/// What a create wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CreateReport {
    /// `origin` or `edge`.
    pub source: &'static str,
    pub folder: PathBuf,
    pub sequence: u64,
    pub packs: u64,
    pub bytes: u64,
    pub objects: u64,
    pub chunks: u64,
    /// Chunk bytes (file content) written.
    pub chunk_bytes: u64,
    /// Files of the chosen courses the folder does not hold whole (an edge
    /// that has not finished syncing): their chunks are not on the stick.
    pub files_not_held: u64,
    /// Reports taken from the have list, acknowledged in the bundle (issue 15).
    pub reports_taken: u64,
    /// The have list's proposals, filed or answered (issue 17): on the
    /// origin, or on a county edge for the schools below it.
    pub proposals: super::proposals::Taken,
    pub seconds: f64,
}

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(
        "{dir} is neither an origin (origin.toml) nor an edge (edge.toml) data folder with a store/; give the folder made by `shanlu origin init` or `shanlu edge init`"
    )]
    NotADataFolder { dir: PathBuf },
    #[error("reading the configuration of {dir}")]
    Config {
        dir: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Pack(#[from] PackError),
    #[error("{dir} holds no catalog yet: publish (origin) or sync (edge) first")]
    NoCatalog { dir: PathBuf },
    #[error(
        "the catalog in {dir} does not verify against its origin key; run `shanlu verify` there"
    )]
    BadCatalog {
        dir: PathBuf,
        #[source]
        source: catalog::sign::CatalogError,
    },
    #[error("course {course} is not in the catalog of {dir} (sequence {sequence})")]
    UnknownCourse {
        course: String,
        dir: PathBuf,
        sequence: u64,
    },
    #[error("{action} {path}; check the stick is mounted writable and has room")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CreateError {
    let path = path.to_owned();
    move |source| CreateError::Io {
        action,
        path,
        source,
    }
}

/// The origin key and whether `dir` is an origin.
fn source_of(dir: &Path) -> Result<(PublicKey, &'static str), CreateError> {
    let config = |source: Box<dyn std::error::Error + Send + Sync>| CreateError::Config {
        dir: dir.to_owned(),
        source,
    };
    if !dir.join("store").join("index.redb").is_file() {
        return Err(CreateError::NotADataFolder {
            dir: dir.to_owned(),
        });
    }
    if let Some(key) = server::origin::read_public_key(dir).map_err(|e| config(Box::new(e)))? {
        return Ok((key, "origin"));
    }
    if crate::config::config_path(dir).is_file() {
        let edge = crate::EdgeConfig::load(dir).map_err(|e| config(Box::new(e)))?;
        return Ok((edge.origin_key, "edge"));
    }
    Err(CreateError::NotADataFolder {
        dir: dir.to_owned(),
    })
}

/// Packs in the making: starts a new one when the next record does not fit.
struct Packs {
    folder: PathBuf,
    current: Option<PackWriter>,
    done: Vec<PackEntry>,
    progress: ProgressBar,
    limit: u64,
}

impl Packs {
    fn record(&mut self, kind: Kind, hash: &Hash, bytes: &[u8]) -> Result<(), CreateError> {
        if self
            .current
            .as_ref()
            .is_some_and(|pack| !pack.fits(bytes.len()))
        {
            self.close()?;
        }
        if self.current.is_none() {
            let name = pack_name(self.done.len() + 1);
            self.current = Some(PackWriter::create(&self.folder.join(name), self.limit)?);
        }
        if let Some(pack) = &mut self.current {
            pack.record(kind, hash, bytes)?;
        }
        self.progress.inc(bytes.len() as u64);
        Ok(())
    }

    /// Finishes the pack being written, if any.
    fn close(&mut self) -> Result<(), CreateError> {
        let Some(pack) = self.current.take() else {
            return Ok(());
        };
        let (catalogs, objects, chunks) = (pack.catalogs, pack.objects, pack.chunks);
        let (hash, size) = pack.finish()?;
        self.done.push(PackEntry {
            name: pack_name(self.done.len() + 1),
            size,
            blake3: hash.to_string(),
            catalogs,
            objects,
            chunks,
        });
        Ok(())
    }
}

/// Writes a bundle; `progress` counts bytes put in packs.
pub fn create(
    options: CreateOptions<'_>,
    progress: &ProgressBar,
) -> Result<CreateReport, CreateError> {
    let started = Instant::now();
    let (key, source) = source_of(options.data)?;
    let store = Store::open_existing(options.data.join("store"))?;
    let catalog_bytes = store
        .signed_catalog_bytes()?
        .ok_or_else(|| CreateError::NoCatalog {
            dir: options.data.to_owned(),
        })?;
    let signed = store
        .signed_catalog()?
        .ok_or_else(|| CreateError::NoCatalog {
            dir: options.data.to_owned(),
        })?;
    let catalog = signed
        .verify(&key)
        .map_err(|source| CreateError::BadCatalog {
            dir: options.data.to_owned(),
            source,
        })?;
    if let Some(courses) = &options.courses {
        for course in courses {
            if !catalog.courses.contains_key(course) {
                return Err(CreateError::UnknownCourse {
                    course: course.clone(),
                    dir: options.data.to_owned(),
                    sequence: catalog.sequence,
                });
            }
        }
    }
    let catalog_hash = Hash::of(&Object::Catalog(catalog.clone()).encode());
    let reached = reachable(
        &[(catalog_hash, catalog.clone())],
        |hash| store.object(hash),
        |hash| StoreError::MissingObject { hash },
    )?;

    // A fresh folder: an interrupted create's packs are removed first.
    let folder = if options.out.file_name().is_some_and(|name| name == FOLDER) {
        options.out.to_owned()
    } else {
        options.out.join(FOLDER)
    };
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(io_err("emptying", &folder))?;
    }
    std::fs::create_dir_all(&folder).map_err(io_err("creating", &folder))?;

    let wanted = |id: &str| {
        options
            .courses
            .as_ref()
            .is_none_or(|courses| courses.iter().any(|course| course == id))
    };
    let jobs = file_jobs(&catalog, wanted, &store)?;
    progress.set_length(jobs.iter().map(|job| job.manifest.size).sum());

    let mut packs = Packs {
        folder: folder.clone(),
        current: None,
        done: Vec::new(),
        progress: progress.clone(),
        limit: std::env::var(TEST_PACK_BYTES)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(MAX_PACK_BYTES),
    };
    let mut report = CreateReport {
        source,
        folder: folder.clone(),
        sequence: catalog.sequence,
        ..CreateReport::default()
    };
    let have = options.have.unwrap_or_default();
    // Issue 15: the stick's reports, taken and acknowledged.
    // On an origin the sender is in its `edges.toml`; on a county edge,
    // in the `edges.toml` of the edges it serves (`downstream/`).
    let receipts = match options.reports {
        Some(sink) if source == "origin" => {
            super::receipts::take_reports(options.data, &have, sink)
        }
        Some(sink) => super::receipts::take_reports(&options.data.join("downstream"), &have, sink),
        None => Vec::new(),
    };
    report.reports_taken = receipts.iter().map(|r| r.seqs.len() as u64).sum();
    // Issue 17: the teachers' proposals on the stick go to the review
    // queue: the origin's, or a county edge's for the schools below it.
    let below = options.data.join(crate::downstream::DOWNSTREAM_DIR);
    let answers = if source == "origin" {
        let desk = server::admin::Desk::new(options.data);
        let (answers, taken) = super::proposals::take_proposals(options.data, &desk, &have);
        report.proposals = taken;
        answers
    } else if have.proposals.is_empty() {
        None
    } else if below.join("edges.toml").is_file() {
        let store = Arc::new(Store::open_existing(options.data.join("store"))?);
        let desk = server::admin::Desk::for_store(&below, store);
        let (answers, taken) = super::proposals::take_proposals(&below, &desk, &have);
        report.proposals = taken;
        answers
    } else {
        warn!(
            proposals = have.proposals.len(),
            "the have list carries teachers' proposals; only the origin or a county edge above the school takes them, they stay on the edge"
        );
        None
    };
    packs.record(Kind::Catalog, &Hash::of(&catalog_bytes), &catalog_bytes)?;
    // Courses, lessons, manifests: in hash order, so two creates write the same packs.
    let mut objects: Vec<&Hash> = reached.objects.iter().collect();
    objects.sort();
    for hash in objects {
        if *hash == catalog_hash || have.objects.contains(hash) {
            continue;
        }
        let bytes = store
            .object_bytes(hash)?
            .ok_or(StoreError::MissingObject { hash: *hash })?;
        packs.record(Kind::Object, hash, &bytes)?;
        report.objects += 1;
    }
    // Chunks start in a pack of their own: import reads metadata packs first.
    packs.close()?;

    let mut sent: HashSet<Hash> = HashSet::new();
    let mut seen_blobs: HashSet<Hash> = HashSet::new();
    for job in &jobs {
        let manifest = &job.manifest;
        if !seen_blobs.insert(manifest.blob) {
            continue;
        }
        if manifest
            .chunks
            .iter()
            .all(|c| have.chunks.contains(&c.hash) || sent.contains(&c.hash))
        {
            continue;
        }
        let path = store.blob_path(&manifest.blob);
        let mut file = match store.has_blob(&manifest.blob)? {
            true => std::fs::File::open(&path).ok(),
            false => None,
        };
        let mut buffer = Vec::new();
        let mut lacking = false;
        for chunk in &manifest.chunks {
            buffer.resize(chunk.len as usize, 0);
            // Read in order even when the chunk is skipped, to stay aligned.
            let from_file = match &mut file {
                Some(reader) => reader.read_exact(&mut buffer).is_ok(),
                None => false,
            };
            if have.chunks.contains(&chunk.hash) || !sent.insert(chunk.hash) {
                continue;
            }
            if from_file && Hash::of(&buffer) == chunk.hash {
                packs.record(Kind::Chunk, &chunk.hash, &buffer)?;
            } else if let Ok(Some(bytes)) = store.chunk_bytes(&chunk.hash) {
                // Held in another blob (or a chunk pack on an origin).
                packs.record(Kind::Chunk, &chunk.hash, &bytes)?;
            } else {
                sent.remove(&chunk.hash);
                lacking = true;
                warn!(file = %job.label, chunk = %chunk.hash, "chunk not held here; left out of the bundle");
                continue;
            }
            report.chunks += 1;
            report.chunk_bytes += u64::from(chunk.len);
        }
        report.files_not_held += u64::from(lacking);
    }
    packs.close()?;

    let index = BundleIndex {
        format: super::FORMAT,
        origin_key: key.to_string(),
        sequence: catalog.sequence,
        catalog: hex::encode(&catalog_bytes),
        packs: packs.done,
    };
    let text = serde_json::to_vec_pretty(&index).map_err(|err| CreateError::Io {
        action: "encoding",
        path: folder.join(INDEX),
        source: err.into(),
    })?;
    if !receipts.is_empty() {
        let receipts = serde_json::to_vec(&receipts).map_err(|err| CreateError::Io {
            action: "encoding",
            path: folder.join(super::receipts::RECEIPTS),
            source: err.into(),
        })?;
        write_synced(&folder.join(super::receipts::RECEIPTS), &receipts)?;
    }
    if let Some(answers) = answers {
        let path = folder.join(super::proposals::ANSWERS);
        let bytes = serde_json::to_vec(&answers).map_err(|err| CreateError::Io {
            action: "encoding",
            path: path.clone(),
            source: err.into(),
        })?;
        write_synced(&path, &bytes)?;
    }
    write_synced(&folder.join(INDEX), &text)?;
    report.packs = index.packs.len() as u64;
    report.bytes = index.packs.iter().map(|pack| pack.size).sum::<u64>() + text.len() as u64;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Writes `bytes` to `path` through a temporary name, synced, and syncs the folder.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CreateError> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
    file.write_all(bytes).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("renaming", &tmp))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}
