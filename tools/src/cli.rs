//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use edge_cache::sync::client::Transport;
use edge_cache::sync::schedule::Window;
use edge_cache::sync::throttle::Rate;

/// shanlu (山路): lessons travel the mountain road so that children don't have to.
///
/// A province origin publishes a signed, content-addressed catalog of courses;
/// school edges fetch what they subscribe to and serve it to classrooms.
#[derive(Debug, Parser)]
#[command(
    name = "shanlu",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, display_order = 100)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole job on this machine with the bundled sample courses.
    Demo(DemoArgs),
    /// Set up and run the origin (the bureau's server).
    Origin {
        #[command(subcommand)]
        command: OriginCommand,
    },
    /// Set up and run a school edge.
    Edge {
        #[command(subcommand)]
        command: EdgeCommand,
    },
    /// Publish a course folder: store its files and sign a new catalog.
    Publish(PublishArgs),
    /// List the courses, lessons and files held in a data folder.
    Ls(LsArgs),
    /// Re-hash every blob and object in a data folder; exit non-zero if anything is damaged.
    Verify(VerifyArgs),
    /// Withdraw a course: sign a new catalog without it, with a tombstone
    /// edges show (publishing the course again brings it back).
    Withdraw(WithdrawArgs),
    /// USB bundles (issue 14): carry a catalog and its files on a stick to an edge without a link.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Translations (issue 17): the classroom's and the dashboard's Fluent files.
    I18n {
        #[command(subcommand)]
        command: I18nCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum I18nCommand {
    /// List, per language, the keys the code uses that a file lacks and the keys no code
    /// uses; exit non-zero if a file does not parse, Chinese or English lacks a key, or a
    /// file holds an unused one.
    Check(I18nCheckArgs),
}

#[derive(Debug, Args)]
pub struct I18nCheckArgs {
    /// Check the classroom's files in DIR (e.g. edge-cache/locales, as edited) instead of
    /// the ones compiled in.
    #[arg(long, value_name = "DIR")]
    pub classroom: Option<PathBuf>,

    /// Check the dashboard's files in DIR (e.g. server/locales) instead of the ones
    /// compiled in.
    #[arg(long, value_name = "DIR")]
    pub dashboard: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum OriginCommand {
    /// Create an origin: signing key, TLS certificate, admin token, store and an empty signed catalog.
    Init(OriginInitArgs),
    /// Serve the sync protocol over QUIC and the same objects over HTTP until Ctrl-C.
    Serve(OriginServeArgs),
    /// Issue a token for a new school edge (printed once), with a join code and its QR code
    /// for `shanlu edge init --join`.
    AddEdge(AddEdgeArgs),
    /// Remove old catalogs and the blobs and objects only they reached.
    Gc(OriginGcArgs),
    /// Re-sign the catalog in force as the next sequence with a fresh expiry.
    Renew(OriginRenewArgs),
    /// Make a new origin key, signed over by the old one, and re-sign the catalog with it.
    RotateKey(OriginRotateKeyArgs),
    /// Issue 15: issue a token for a new administrator (printed once).
    AddAdmin(AddAdminArgs),
    /// Issue 15: list the edges: name, county, when added, whether revoked.
    Edges(OriginEdgesArgs),
    /// Issue 15: revoke an edge's token (or with --admin an administrator's): refused from
    /// the next connection on.
    Revoke(OriginRevokeArgs),
    /// Issue 16: move the origin's content into S3-compatible storage (resumable, verified);
    /// from its next start the origin serves and publishes through the bucket.
    Migrate(OriginMigrateArgs),
}

#[derive(Debug, Args)]
pub struct OriginMigrateArgs {
    /// The origin's data folder (made by `shanlu origin init`).
    #[arg(long, value_name = "ORIGIN_DIR")]
    pub data: PathBuf,

    /// The bucket: s3://BUCKET/PREFIX. The endpoint, region and credentials come from the
    /// AWS_* environment variables (docs/s3.md).
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where edges reach the origin, for join codes (issue 15).
#[derive(Debug, Args)]
pub struct PublicAddressArgs {
    /// The origin's QUIC address as edges reach it, quic://HOST:PORT (the origin cannot guess
    /// its public name); kept in origin.toml for join codes.
    #[arg(long, value_name = "URL")]
    pub public_quic: Option<String>,

    /// The origin's HTTPS address as edges reach it, https://HOST:PORT: the fallback where UDP
    /// is blocked; kept in origin.toml for join codes.
    #[arg(long, value_name = "URL")]
    pub public_https: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddAdminArgs {
    /// The origin's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// A name for the administrator, as for edges; every action is logged with it.
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct OriginEdgesArgs {
    /// This machine's origin folder, or a remote origin (issue 15).
    #[command(flatten)]
    pub at: crate::remote::OriginAt,

    /// Print {"edges": [{name, county, added_at, revoked, revoked_at}]} on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginRevokeArgs {
    /// This machine's origin folder, or a remote origin (issue 15).
    #[command(flatten)]
    pub at: crate::remote::OriginAt,

    /// The edge's name (or the administrator's, with --admin).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Revoke an administrator instead of an edge.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Debug, Args)]
pub struct OriginRenewArgs {
    /// The origin's data folder (made by `shanlu origin init`).
    #[arg(long, value_name = "ORIGIN_DIR")]
    pub data: PathBuf,

    /// The next catalog's sequence is at least N, and so is every later one.
    /// After restoring the origin from a backup, give one more than the
    /// highest sequence any edge saw (an edge's rollback error names it).
    #[arg(long, value_name = "N")]
    pub min_sequence: Option<u64>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginRotateKeyArgs {
    /// The origin's data folder (made by `shanlu origin init`).
    #[arg(long, value_name = "ORIGIN_DIR")]
    pub data: PathBuf,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The id of the course to withdraw (as `shanlu ls` shows it).
    #[arg(value_name = "COURSE_ID")]
    pub course: String,

    /// This machine's origin folder, or a remote origin (issue 15).
    #[command(flatten)]
    pub at: crate::remote::OriginAt,

    /// Why, shown on the status page of every edge subscribed to the course (one line).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,

    /// The new catalog's sequence is at least N (see `shanlu origin renew --min-sequence`).
    #[arg(long, value_name = "N")]
    pub min_sequence: Option<u64>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginGcArgs {
    /// The origin's data folder (made by `shanlu origin init`).
    #[arg(long, value_name = "ORIGIN_DIR")]
    pub data: PathBuf,

    /// How many of the latest catalogs to keep, with everything they reach. Keep
    /// a few: an edge still syncing from an older catalog (offline for a while,
    /// or mid-pass when you publish) finds its objects only while that catalog
    /// is kept. At least 1.
    #[arg(long, value_name = "N", default_value_t = server::gc::DEFAULT_KEEP_VERSIONS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_versions: u64,

    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginServeArgs {
    /// The origin's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Where to listen for QUIC (UDP).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:4433")]
    pub quic: std::net::SocketAddr,

    /// Where to listen for HTTP (TCP): the same catalog, objects and chunks over plain HTTP with
    /// the edge token (for tools and a caching proxy; edges sync over QUIC, or HTTPS).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8081")]
    pub http: std::net::SocketAddr,

    /// Where to listen for HTTPS (TCP) with the origin's certificate: the sync protocol for edges
    /// whose UDP is blocked (their `--fallback https://HOST:PORT`).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub https: std::net::SocketAddr,

    /// QUIC congestion control for what the origin sends: rural (shanlu's) and bbr cope with the
    /// random loss of rural links, and rural keeps the bottleneck's queue from overflowing; cubic
    /// and newreno slow down at every lost packet.
    #[arg(long, value_name = "NAME", default_value = "rural")]
    pub congestion: server::transport::Congestion,

    /// Serve the fleet dashboard (edges, course adoption, most-opened lessons, CSV, JSON and
    /// Prometheus /metrics) on this address, e.g. 127.0.0.1:8090; log in with an admin token.
    /// Plain HTTP: bind it to a private address, or put a TLS proxy in front (docs/dashboard.md).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,

    /// Issue 16: a file holding the secret (at least 32 characters) a CDN or caching proxy
    /// in front sends as `X-Shanlu-Cdn` to fetch objects and chunks without an edge token
    /// (docs/s3.md).
    #[arg(long, value_name = "FILE")]
    pub cdn_secret_file: Option<PathBuf>,

    /// Issue 16, an origin on a bucket: the most chunks read from the bucket kept in memory,
    /// in MiB (least recently used go first).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub bucket_cache_mib: u64,
}

#[derive(Debug, Args)]
pub struct AddEdgeArgs {
    /// This machine's origin folder, or a remote origin (issue 15).
    #[command(flatten)]
    pub at: crate::remote::OriginAt,

    /// A name for the edge, e.g. the school, in its own script (昭觉县测试小学,
    /// ꆈꌠꁱꂷ, བོད་ཡིག་སློབ་གྲྭ): letters and digits of any script and their
    /// combining marks, '-', '_', '.', up to 64 characters; no spaces or slashes.
    #[arg(long)]
    pub name: String,

    /// Issue 15: the county the edge belongs to (a name as for edges), for the fleet dashboard.
    #[arg(long)]
    pub county: Option<String>,

    /// For this join code only (origin.toml's otherwise).
    #[command(flatten)]
    pub public: PublicAddressArgs,
}

#[derive(Debug, Subcommand)]
pub enum EdgeCommand {
    /// Set up an edge's data folder, pinned to one origin.
    Init(EdgeInitArgs),
    /// Sync once with progress bars; exit 0 only when everything subscribed is held and verified.
    Sync(EdgeSyncArgs),
    /// Sync periodically and serve the classroom (pages, lesson files, search, status, JSON API, /metrics) until Ctrl-C.
    Run(EdgeRunArgs),
    /// Ask the running `edge run` for a sync pass now, even outside its sync windows.
    SyncNow(EdgeSyncNowArgs),
    /// What the edge holds and how its last sync went.
    Status(EdgeStatusArgs),
    /// Re-hash every held file now; a damaged one is taken out of service and fetched again by
    /// the next sync. Exit 2 when something was found.
    Scrub(EdgeScrubArgs),
    /// Issue 14: write what this edge holds to a file, for `shanlu bundle create --for`.
    Have(EdgeHaveArgs),
    /// Issue 14: import a USB bundle (STICK/ or STICK/shanlu-bundle/), verified as a sync is;
    /// rerun after an interruption to resume.
    Import(EdgeImportArgs),
    /// Issue 14: a token for an edge below this one (a county edge serving village edges with
    /// `edge run --serve-edges`); prints the token once and the certificate to pin.
    AddEdge(EdgeAddEdgeArgs),
    /// Issue 14: add a LAN peer (another edge running `edge run --serve-edges`) to edge.toml;
    /// its chunks are taken before the upstream's, each one verified.
    AddPeer(EdgeAddPeerArgs),
    /// Issue 17: the teachers' side of the classroom (/teach): their password and upload limit.
    Teachers {
        #[command(subcommand)]
        command: TeachersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TeachersCommand {
    /// Set the school's teacher password (kept only as an Argon2id hash in teachers.toml);
    /// read from --password-file, else from standard input. A running edge uses it at once.
    SetPassword(TeachersSetPasswordArgs),
    /// Set the largest file a teacher may upload (default 2048 MiB); `edge run` reads it when
    /// it starts.
    SetMaxUpload(TeachersSetMaxUploadArgs),
}

#[derive(Debug, Args)]
pub struct TeachersSetPasswordArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// A file whose first line is the password (else it is read from standard input).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TeachersSetMaxUploadArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The largest upload, in MiB.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub mib: u64,
}

#[derive(Debug, Args)]
pub struct EdgeAddEdgeArgs {
    /// This edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// A name for the edge below, as for `shanlu origin add-edge --name`.
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct EdgeInitArgs {
    /// The edge's data folder (created).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Issue 15: the join code `shanlu origin add-edge` printed (SL1-…): the origin's
    /// addresses, key, certificate and this edge's token in one line, checked before use.
    #[arg(
        long,
        value_name = "CODE",
        conflicts_with_all = ["origin", "origin_key", "origin_cert", "token", "fallback"]
    )]
    pub join: Option<String>,

    /// The origin, as quic://HOST:PORT.
    #[arg(long, value_name = "URL", required_unless_present = "join")]
    pub origin: Option<String>,

    /// The origin key `shanlu origin init` printed (64 hex digits).
    #[arg(long, value_name = "KEY", required_unless_present = "join")]
    pub origin_key: Option<String>,

    /// The origin certificate fingerprint `shanlu origin init` printed (64 hex digits).
    #[arg(long, value_name = "FINGERPRINT", required_unless_present = "join")]
    pub origin_cert: Option<String>,

    /// This edge's token from `shanlu origin add-edge`.
    #[arg(long, required_unless_present = "join")]
    pub token: Option<String>,

    /// Which courses' files to hold: `all`, or course ids separated by commas.
    #[arg(long, value_name = "all|COURSE_ID,…", default_value = "all")]
    pub subscribe: String,

    /// The origin's HTTPS fallback, https://HOST:PORT (its --https): used when QUIC cannot
    /// connect, e.g. where the carrier blocks UDP.
    #[arg(long, value_name = "URL")]
    pub fallback: Option<String>,

    /// Issue 16: a caching proxy or CDN in front of the origin, http://HOST:PORT: objects
    /// and chunks are fetched from it by hash (and checked); the catalog comes from the
    /// origin. The edge's token is never sent to it.
    #[arg(long, value_name = "URL")]
    pub cdn: Option<String>,

    /// Issue 13: the most the store may hold, a size (40GB, 500MB) or a share of the disk
    /// holding the data folder (80%); overrides max_store in edge.toml.
    #[arg(long, value_name = "SIZE|PERCENT")]
    pub max_store: Option<edge_cache::quota::limits::StoreLimit>,

    /// Issue 13: bytes to leave free on the disk (default 2GB); overrides min_free in edge.toml.
    #[arg(long, value_name = "SIZE")]
    pub min_free: Option<edge_cache::quota::limits::Size>,
}

#[derive(Debug, Args)]
pub struct EdgeSyncArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Bandwidth cap for this pass, e.g. 2Mbit, 500kbit, 1MB, 300KiB (Mbit = 10^6 bits,
    /// MB = 10^6 bytes, MiB = 2^20 bytes); overrides max_rate in edge.toml. A manual sync
    /// ignores the sync windows.
    #[arg(long, value_name = "RATE")]
    pub max_rate: Option<Rate>,

    /// auto: QUIC, or the HTTPS fallback when QUIC cannot connect; quic or http: only that.
    /// Overrides transport in edge.toml.
    #[arg(long, value_name = "auto|quic|http")]
    pub transport: Option<Transport>,

    /// Issue 13: the most the store may hold, a size (40GB, 500MB) or a share of the disk
    /// holding the data folder (80%); overrides max_store in edge.toml.
    #[arg(long, value_name = "SIZE|PERCENT")]
    pub max_store: Option<edge_cache::quota::limits::StoreLimit>,

    /// Issue 13: bytes to leave free on the disk (default 2GB); overrides min_free in edge.toml.
    #[arg(long, value_name = "SIZE")]
    pub min_free: Option<edge_cache::quota::limits::Size>,
}

#[derive(Debug, Args)]
pub struct EdgeSyncNowArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct EdgeRunArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Where the classroom server listens.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,

    /// Seconds between sync passes.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub interval: u64,

    /// Bandwidth cap for sync passes, e.g. 2Mbit, 500kbit, 1MB, 300KiB; overrides max_rate in
    /// edge.toml. Read-through for a lesson someone opened is not capped.
    #[arg(long, value_name = "RATE")]
    pub max_rate: Option<Rate>,

    /// Start sync passes only in this window of local time, HH:MM-HH:MM (may wrap midnight, e.g.
    /// 22:00-06:00); repeat for several. Overrides windows in edge.toml. A pass still running at
    /// the window's end stops there and the next window carries on.
    #[arg(long = "window", value_name = "HH:MM-HH:MM")]
    pub windows: Vec<Window>,

    /// auto: QUIC, or the HTTPS fallback when QUIC cannot connect (QUIC is tried again every
    /// 10 minutes); quic or http: only that. Overrides transport in edge.toml.
    #[arg(long, value_name = "auto|quic|http")]
    pub transport: Option<Transport>,

    /// Issue 13: the most the store may hold, a size (40GB, 500MB) or a share of the disk
    /// holding the data folder (80%); overrides max_store in edge.toml.
    #[arg(long, value_name = "SIZE|PERCENT")]
    pub max_store: Option<edge_cache::quota::limits::StoreLimit>,

    /// Issue 13: bytes to leave free on the disk (default 2GB); overrides min_free in edge.toml.
    #[arg(long, value_name = "SIZE")]
    pub min_free: Option<edge_cache::quota::limits::Size>,

    /// Issue 14: also serve the sync protocol to edges below this one (a county edge) on
    /// ADDR: QUIC and the HTTPS fallback, with tokens from `shanlu edge add-edge`.
    #[arg(long, value_name = "ADDR")]
    pub serve_edges: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct EdgeStatusArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Print the status as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EdgeScrubArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Cap the read rate, e.g. 8MiB or 20MB (the syntax of --max-rate); default: as fast as the
    /// disk reads. `edge run`'s background scrub keeps to scrub_rate in edge.toml instead.
    #[arg(long, value_name = "RATE")]
    pub rate: Option<Rate>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OriginInitArgs {
    /// The origin's data folder (created if missing; must not already be an origin).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Issue 15: where edges reach this origin, for the join codes `origin add-edge` prints.
    #[command(flatten)]
    pub public: PublicAddressArgs,

    /// Keep the origin's content in S3-compatible object storage (issue 16):
    /// `s3://BUCKET/PREFIX`, or `file:///PATH` for a folder. The endpoint,
    /// region and credentials come from the AWS_* environment variables
    /// (docs/s3.md), never from the command line.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The course folder: lesson sub-folders, optional course.toml and lesson.toml files.
    #[arg(value_name = "COURSE_DIR", required_unless_present = "revert")]
    pub folder: Option<PathBuf>,

    /// Instead of a folder: publish an older version again, as a new version
    /// pointing at its content (nothing is read or stored), e.g. `math@3`.
    #[arg(long, value_name = "COURSE_ID@VERSION", conflicts_with_all = ["folder", "rehash"])]
    pub revert: Option<String>,

    /// The new catalog's sequence is at least N (see `shanlu origin renew --min-sequence`).
    #[arg(long, value_name = "N")]
    pub min_sequence: Option<u64>,

    /// This machine's origin folder, or a remote origin (issue 15).
    #[command(flatten)]
    pub at: crate::remote::OriginAt,

    /// Read and hash every file, even those whose size, times and inode show
    /// them unchanged since the last publish.
    #[arg(long, conflicts_with = "origin")]
    pub rehash: bool,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// A data folder: an origin's or an edge's.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Print the whole tree as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A data folder (an origin's or an edge's) or a store folder.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's data in DIR (reused on the next run) instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// A folder of course folders to publish instead of the bundled sample courses.
    #[arg(long, value_name = "DIR")]
    pub courses: Option<PathBuf>,

    /// The classroom port on 127.0.0.1; if it is taken, the next free one is used. 0 lets the
    /// system choose.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Write the catalog, its metadata and the chosen courses' files from an origin's or an
    /// edge's data folder into STICK/shanlu-bundle/ (packs of at most 256 MiB).
    Create(BundleCreateArgs),
}

#[derive(Debug, Args)]
pub struct BundleCreateArgs {
    /// The origin's or edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The stick (or any folder): the bundle goes in OUT/shanlu-bundle/, replacing one there.
    #[arg(long, value_name = "STICK")]
    pub out: PathBuf,

    /// Only these courses' files (ids separated by commas); default: every course held.
    #[arg(long, value_name = "COURSE_ID,…", value_delimiter = ',')]
    pub courses: Option<Vec<String>>,

    /// Leave out what this have list (`shanlu edge have`) says the edge holds.
    #[arg(long = "for", value_name = "HAVE_FILE")]
    pub for_have: Option<PathBuf>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EdgeHaveArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// Where to write the have list.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EdgeImportArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The stick holding shanlu-bundle/, or that folder itself.
    #[arg(value_name = "STICK")]
    pub stick: PathBuf,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EdgeAddPeerArgs {
    /// The edge's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,

    /// The peer's `--serve-edges` address, quic://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub url: String,

    /// This edge's token on the peer (`shanlu edge add-edge --name …` printed it there).
    #[arg(long)]
    pub token: String,

    /// The fingerprint of the peer's certificate (its `edge run --serve-edges` prints it).
    #[arg(long, value_name = "FINGERPRINT")]
    pub cert: String,

    /// The peer's HTTPS fallback, https://HOST:PORT, for a LAN that blocks UDP.
    #[arg(long, value_name = "URL")]
    pub fallback: Option<String>,
}
