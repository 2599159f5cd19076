//! The download engine with LAN peers before the upstream (issue 14), on
//! in-memory sources.

use super::*;

/// The requests a source was sent.
fn requests(source: &MemorySource) -> usize {
    lock(&source.asked).len()
}

/// Issue 14: a peer that sends a chunk failing its check is dropped for the
/// lane (the pass) and never asked again; being unproven, it had only that
/// one request; everything comes from the upstream, and the lane's report
/// names the peer, the chunk and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_lying_peer_is_asked_once_and_dropped_for_the_pass() {
    let (_dir, store) = new_store();
    let chunk = 16 * 1024;
    let bytes = data(3 * 1024 * 1024, 7); // 192 chunks: several requests
    let job = job_of("c/l/video.mp4", &bytes, chunk, "video/mp4");
    let mut liar = MemorySource::new("peer 192.168.1.20:7450 (quic)", &[&bytes], chunk);
    liar.bad = job.manifest.chunks.iter().map(|c| c.hash).collect();
    let liar = Arc::new(liar);
    let more = data(256 * 1024, 8);
    let origin = Arc::new(MemorySource::new("origin", &[&bytes, &more], chunk));
    let engine = Engine::start(store.clone());
    let sync = lane("sync", vec![liar.clone(), origin.clone()]);
    assemble(&engine, &store, &job, &sync, &bytes).await;
    assert_eq!(requests(&liar), 1, "the lying peer is asked once");
    assert!(liar.total_asked() <= CHUNKS_PER_REQUEST);
    let count = job.manifest.chunks.len();
    assert_eq!(
        origin.total_asked(),
        count,
        "each chunk once from the origin"
    );
    let used = sync.sources_used();
    assert_eq!(used.len(), 2);
    assert!(used[0].peer && !used[1].peer);
    assert_eq!((used[0].chunks, used[1].chunks), (0, count as u64));
    assert_eq!(used[1].bytes, bytes.len() as u64);
    let why = used[0].dropped.clone().expect("the peer is dropped");
    assert!(why.contains("failed its check"), "{why}");
    assert!(
        job.manifest
            .chunks
            .iter()
            .any(|c| why.contains(&c.hash.to_string())),
        "{why}"
    );
    assert_eq!(used[1].dropped, None);

    // A second file on the same lane (the same pass): the peer is not asked.
    let second = job_of("c/l/page.html", &more, chunk, "text/html");
    assemble(&engine, &store, &second, &sync, &more).await;
    assert_eq!(requests(&liar), 1, "never asked again in this pass");
    assert_eq!(origin.total_asked(), count + second.manifest.chunks.len());
}

/// Issue 14: a chunk the peer does not hold is fetched upstream without
/// counting as a refusal (a peer lacking a chunk is normal): even a peer
/// lacking everything, asked more times than MAX_CHUNK_TRIES, fails nothing,
/// and the peer stays in use for what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_chunk_missing_at_the_peer_comes_from_upstream_without_failing() {
    let (_dir, store) = new_store();
    let chunk = 16 * 1024;
    let bytes = data(1024 * 1024, 9); // 64 chunks
    let job = job_of("c/l/film.mp4", &bytes, chunk, "video/mp4");
    let mut peer = MemorySource::new("peer half", &[&bytes], chunk);
    let lacking: Vec<Hash> = job
        .manifest
        .chunks
        .iter()
        .step_by(2)
        .map(|c| c.hash)
        .collect();
    for hash in &lacking {
        peer.chunks.remove(hash);
    }
    let peer = Arc::new(peer);
    let empty = Arc::new(MemorySource::new("peer empty", &[], chunk));
    let origin = Arc::new(MemorySource::new("origin", &[&bytes], chunk));
    let engine = Engine::start(store.clone());
    let sources: Vec<Arc<dyn ChunkSource>> = vec![empty.clone(), peer.clone(), origin.clone()];
    let sync = Lane::new("sync", sources, 1, CancellationToken::new(), None);
    assemble(&engine, &store, &job, &sync, &bytes).await;
    let count = job.manifest.chunks.len();
    assert_eq!(
        empty.total_asked(),
        count,
        "every chunk asked of the first peer"
    );
    assert_eq!(peer.total_asked(), count, "then of the second");
    assert_eq!(
        origin.total_asked(),
        lacking.len(),
        "only what no peer holds"
    );
    for hash in &lacking {
        assert_eq!(origin.asked_for(hash), 1);
    }
    let used = sync.sources_used();
    let taken: Vec<u64> = used.iter().map(|u| u.chunks).collect();
    assert_eq!(
        taken,
        [0, (count - lacking.len()) as u64, lacking.len() as u64]
    );
    assert!(used.iter().all(|u| u.dropped.is_none()), "{used:?}");
}

/// Issue 14: a peer that cannot be reached (or refuses the token) is left
/// out at once, without counting toward the lane's failures: a lane that
/// gives up after one failed request still completes from the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_an_unreachable_peer_is_skipped_without_failing_the_lane() {
    let (_dir, store) = new_store();
    let chunk = 16 * 1024;
    let bytes = data(3 * 1024 * 1024, 10);
    let job = job_of("c/l/slides.pdf", &bytes, chunk, "application/pdf");
    let mut down = MemorySource::new("peer down", &[&bytes], chunk);
    down.fails = Some(true);
    let down = Arc::new(down);
    let mut refusing = MemorySource::new("peer refusing", &[&bytes], chunk);
    refusing.fails = Some(false);
    let refusing = Arc::new(refusing);
    let origin = Arc::new(MemorySource::new("origin", &[&bytes], chunk));
    let engine = Engine::start(store.clone());
    let sources: Vec<Arc<dyn ChunkSource>> = vec![down.clone(), refusing.clone(), origin.clone()];
    let sync = Lane::new("sync", sources, 1, CancellationToken::new(), None);
    assemble(&engine, &store, &job, &sync, &bytes).await;
    assert_eq!(requests(&down), 1, "tried once, then left out");
    assert_eq!(requests(&refusing), 1);
    assert_eq!(origin.total_asked(), job.manifest.chunks.len());
    assert_eq!(sync.failures.load(Ordering::Relaxed), 0, "nothing counted");
    let used = sync.sources_used();
    let down_why = used[0].dropped.clone().expect("left out");
    assert_eq!(used[0].name, "peer down");
    assert!(down_why.contains("no answer"), "{down_why}");
    let refused_why = used[1].dropped.clone().expect("left out");
    assert!(refused_why.contains("token was refused"), "{refused_why}");
    assert_eq!(used[2].chunks, job.manifest.chunks.len() as u64);
}

/// Issue 14: the lane's rules for its sources: the last (the upstream) is
/// never left out; a peer that lied is out for the lane's life; one that
/// could not be reached is let back in once its time is up; picking skips
/// what is out, wrapping around.
#[test]
fn issue_14_a_lane_leaves_peers_out_but_never_its_upstream() {
    let source = |name| Arc::new(MemorySource::new(name, &[], 1024)) as Arc<dyn ChunkSource>;
    let lane = lane(
        "sync",
        vec![source("liar"), source("off"), source("origin")],
    );
    assert!(lane.on_probation(0) && lane.on_probation(1) && !lane.on_probation(2));
    lane.drop_source(0, "sent a bad chunk".into(), None);
    lane.drop_source(1, "no answer".into(), Some(Duration::from_secs(3600)));
    lane.drop_source(2, "the upstream stays".into(), None);
    assert_eq!(lane.pick(0), Some(2));
    assert_eq!(lane.pick(2), Some(2));
    assert!(!lane.usable(0) && !lane.usable(1) && lane.usable(2));
    let used = lane.sources_used();
    assert_eq!(used[0].dropped.as_deref(), Some("sent a bad chunk"));
    assert_eq!(used[1].dropped.as_deref(), Some("no answer"));
    assert_eq!(used[2].dropped, None);
    // A peer out for a while is back once its time is up (here: at once);
    // one that lied is not, even if it is later said to be unreachable.
    lane.drop_source(1, "no answer".into(), Some(Duration::ZERO));
    lane.drop_source(0, "no answer".into(), Some(Duration::ZERO));
    assert_eq!(lane.pick(0), Some(1));
    assert!(lane.on_probation(1), "back on probation");
    assert_eq!(
        lane.sources_used()[0].dropped.as_deref(),
        Some("sent a bad chunk")
    );
    lane.took(1, 100);
    assert!(!lane.on_probation(1));
    assert_eq!(
        (lane.sources_used()[1].chunks, lane.sources_used()[1].bytes),
        (1, 100)
    );
}

/// Issue 14: a peer is asked only for what it holds, until the lane's
/// upstream refuses a chunk (a county edge that lies, or lacks it): then the
/// peer is asked again and may fetch it from its own upstream. The file
/// completes with every chunk from the peer's relay, each refused chunk
/// asked of the lying upstream once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_peer_relays_only_what_the_upstream_refused() {
    let (_dir, store) = new_store();
    let chunk = 16 * 1024;
    let bytes = data(512 * 1024, 11); // 32 chunks
    let job = job_of("c/l/film.mp4", &bytes, chunk, "video/mp4");
    let mut peer = MemorySource::new("peer", &[], chunk);
    peer.behind = MemorySource::new("its origin", &[&bytes], chunk).chunks;
    let peer = Arc::new(peer);
    let mut county = MemorySource::new("county", &[&bytes], chunk);
    county.bad = job.manifest.chunks.iter().map(|c| c.hash).collect();
    let county = Arc::new(county);
    let engine = Engine::start(store.clone());
    let sync = lane("sync", vec![peer.clone(), county.clone()]);
    assemble(&engine, &store, &job, &sync, &bytes).await;
    let count = job.manifest.chunks.len();
    assert_eq!(
        county.total_asked(),
        count,
        "each refused once by the county"
    );
    assert_eq!(peer.total_asked(), 2 * count, "held? no; then relayed");
    let relayed = lock(&peer.relayed).clone();
    assert_eq!(relayed.first(), Some(&false), "first only what it holds");
    assert!(relayed.contains(&true), "{relayed:?}");
    for chunk in &job.manifest.chunks {
        assert_eq!(peer.asked_for(&chunk.hash), 2);
    }
    let used = sync.sources_used();
    assert_eq!((used[0].chunks, used[1].chunks), (count as u64, 0));
}
