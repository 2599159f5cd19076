//! The engine's actor loop: takes askers' commands, keeps the queue, sends
//! requests to sources, hands what arrives to the writer, tells askers.

use super::*;

impl Actor {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut delivered: mpsc::Receiver<Event>,
        mut from_writer: mpsc::UnboundedReceiver<Vec<WriterEvent>>,
    ) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                Some(event) = delivered.recv() => self.event(event).await,
                Some(events) = from_writer.recv() => self.writer_events(events).await,
                _ = tick.tick() => {
                    let _ = self.to_writer.send(WriterCommand::Tick).await;
                    self.sweep_stopped().await;
                }
            }
            self.dispatch();
        }
        // Dropping the writer's sender lets it flush everything and end.
    }

    pub(super) async fn command(&mut self, command: Command) {
        match command {
            Command::Want {
                job,
                priority,
                lane,
                state,
            } => {
                let blob = job.manifest.blob;
                if let Some(existing) = self.jobs.get_mut(&blob) {
                    existing.lanes.push((priority, lane.clone()));
                    if let Some(first) = existing.watchers.first() {
                        state.send_replace(first.borrow().clone());
                    }
                    existing.watchers.push(state);
                    if existing.opened {
                        let missing: Vec<usize> = (0..existing.chunks.len())
                            .filter(|&i| existing.chunks[i] == ChunkState::Missing)
                            .collect();
                        self.queue(blob, &missing, priority, &lane);
                    }
                    return;
                }
                let manifest = Arc::new(job.manifest.clone());
                let mut by_hash: HashMap<Hash, Vec<usize>> = HashMap::new();
                for (index, chunk) in manifest.chunks.iter().enumerate() {
                    by_hash.entry(chunk.hash).or_default().push(index);
                }
                let open = WriterCommand::Open {
                    manifest_hash: job.manifest_hash,
                    manifest: manifest.clone(),
                    previous: job.previous.clone(),
                };
                let head_chunks = head_chunks(&manifest);
                self.insert_job(
                    blob,
                    Job {
                        job: *job,
                        chunks: vec![ChunkState::Missing; manifest.chunks.len()],
                        manifest,
                        watchers: vec![state],
                        wants: HashMap::new(),
                        by_hash,
                        lanes: vec![(priority, lane)],
                        early: Vec::new(),
                        head_chunks,
                        opened: false,
                        finishing: false,
                        delta_saved: 0,
                    },
                );
                if self.to_writer.send(open).await.is_err() {
                    self.fail(blob, JobError::Failed("the file writer stopped".into()))
                        .await;
                }
            }
            Command::Urgent { blob, chunks, lane } => {
                let Some(job) = self.jobs.get_mut(&blob) else {
                    return;
                };
                if !job.opened {
                    job.early.push((chunks, lane));
                    return;
                }
                let indices: Vec<usize> = chunks
                    .filter(|&i| job.chunks.get(i) == Some(&ChunkState::Missing))
                    .collect();
                self.queue(blob, &indices, Priority::Reader, &lane);
            }
            Command::StopLane { lane } => {
                for job in self.jobs.values_mut() {
                    job.lanes.retain(|(_, l)| !Arc::ptr_eq(l, &lane));
                }
                self.sweep_stopped().await;
            }
        }
    }

    /// Files no live lane wants any more are put aside, keeping what arrived.
    pub(super) async fn sweep_stopped(&mut self) {
        let idle: Vec<Hash> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.opened && !job.finishing && job.best().is_none())
            .map(|(blob, _)| *blob)
            .collect();
        for blob in idle {
            if let Some(job) = self.remove_job(&blob) {
                debug!(file = %job.job.label, "put aside: nobody waits for it now");
                job.publish(|state| state.outcome = Some(Outcome::Stopped));
                let _ = self.to_writer.send(WriterCommand::Close { blob }).await;
            }
        }
    }

    /// Puts chunks of `blob` in the queue for `lane`.
    pub(super) fn queue(
        &mut self,
        blob: Hash,
        indices: &[usize],
        priority: Priority,
        lane: &Arc<Lane>,
    ) {
        let Some(job) = self.jobs.get(&blob) else {
            return;
        };
        for &index in indices {
            self.seq += 1;
            self.heap.push(Entry {
                priority: job.chunk_priority(index, priority),
                seq: self.seq,
                blob,
                index,
                lane: lane.clone(),
            });
        }
    }

    /// Sends requests while there is room and something to ask for.
    pub(super) fn dispatch(&mut self) {
        while self.requests.len() < REQUESTS_IN_FLIGHT {
            let mut batch: Vec<Entry> = Vec::new();
            let mut hashes = HashSet::new();
            let mut source = 0;
            // Chunks the lane's upstream already refused: a peer may relay them.
            let mut relay = false;
            let mut batch_bytes = 0u64;
            while batch.len() < CHUNKS_PER_REQUEST {
                let Some(top) = self.heap.peek() else { break };
                // The last request slots are kept for classes and readers,
                // and the very last for readers: a seek is asked for at once.
                let limit = match top.priority {
                    Priority::Reader => REQUESTS_IN_FLIGHT,
                    Priority::OpenedInClass => REQUESTS_IN_FLIGHT - 1,
                    _ => REQUESTS_IN_FLIGHT - RESERVED_FOR_CLASS,
                };
                if self.requests.len() >= limit {
                    break;
                }
                // Only a reader's request may be large: little else is committed ahead.
                let capped = top.priority < Priority::Reader;
                let usable = !top.lane.stop.is_cancelled()
                    && self.jobs.get(&top.blob).is_some_and(|job| {
                        job.opened && job.chunks.get(top.index) == Some(&ChunkState::Missing)
                    });
                let hash = self
                    .jobs
                    .get(&top.blob)
                    .map(|job| job.manifest.chunks[top.index].hash);
                let Some(hash) = hash.filter(|h| usable && !self.in_flight.contains_key(h)) else {
                    self.heap.pop();
                    continue;
                };
                if hashes.contains(&hash) {
                    self.heap.pop();
                    continue;
                }
                // The next source that may be asked (a peer left out is skipped).
                let (refusals, from) = self.tries.get(&hash).copied().unwrap_or((0, 0));
                let Some(next_source) = top.lane.pick(from) else {
                    self.heap.pop();
                    continue;
                };
                let refused_upstream = refusals > 0;
                if let Some(first) = batch.first()
                    && (!Arc::ptr_eq(&first.lane, &top.lane)
                        || next_source != source
                        || refused_upstream != relay)
                {
                    break;
                }
                // A peer not yet proven has one request at a time, its
                // chunks checked before the next: one that lies from the
                // start is asked once.
                if batch.is_empty()
                    && top.lane.on_probation(next_source)
                    && self.probing(&top.lane, next_source)
                {
                    break;
                }
                let len = self
                    .jobs
                    .get(&top.blob)
                    .map_or(0, |job| u64::from(job.manifest.chunks[top.index].len));
                if capped && !batch.is_empty() && batch_bytes + len > BACKGROUND_REQUEST_BYTES {
                    break;
                }
                batch_bytes += len;
                source = next_source;
                relay = refused_upstream;
                hashes.insert(hash);
                if let Some(entry) = self.heap.pop() {
                    batch.push(entry);
                }
            }
            let Some(first) = batch.first() else { return };
            let lane = first.lane.clone();
            let Some(chosen) = lane.sources.get(source).cloned() else {
                return;
            };
            self.next_request += 1;
            let request = self.next_request;
            let mut wants = Vec::new();
            let mut files: Vec<FileWants> = Vec::new();
            let mut queued = HashMap::new();
            for entry in &batch {
                let Some(job) = self.jobs.get_mut(&entry.blob) else {
                    continue;
                };
                if files.last().is_none_or(|f| f.file != job.job.manifest_hash) {
                    files.push(FileWants {
                        file: job.job.manifest_hash,
                        wants: Vec::new(),
                    });
                }
                let hash = job.manifest.chunks[entry.index].hash;
                let want = job.wants.get(&entry.index).cloned().unwrap_or(ChunkWant {
                    hash,
                    bases: Vec::new(),
                });
                for &i in job.by_hash.get(&hash).map(Vec::as_slice).unwrap_or(&[]) {
                    if job.chunks[i] == ChunkState::Missing {
                        job.chunks[i] = ChunkState::InFlight;
                    }
                }
                self.in_flight.insert(hash, request);
                queued.insert(hash, (entry.priority, entry.seq, entry.blob, entry.index));
                if let Some(file) = files.last_mut() {
                    file.wants.push(want.clone());
                }
                wants.push(want);
            }
            // Other files waiting on the same chunks wait on this request.
            for want in &wants {
                for blob in self.holders.get(&want.hash).into_iter().flatten() {
                    let Some(job) = self.jobs.get_mut(blob) else {
                        continue;
                    };
                    for &i in job
                        .by_hash
                        .get(&want.hash)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                    {
                        if job.chunks[i] == ChunkState::Missing {
                            job.chunks[i] = ChunkState::InFlight;
                        }
                    }
                }
            }
            self.requests.insert(
                request,
                InFlightRequest {
                    lane: lane.clone(),
                    source,
                    wants: wants.iter().map(|w| w.hash).collect(),
                    received: HashSet::new(),
                    chunks: 0,
                    queued,
                },
            );
            let events = self.deliveries.clone();
            tokio::spawn(async move {
                let (sink, mut answers) = mpsc::channel(CHUNKS_PER_REQUEST);
                // What arrived meanwhile goes to the actor together: one
                // wake-up per batch, not per chunk.
                let forward = {
                    let events = events.clone();
                    async move {
                        loop {
                            let mut deliveries = Vec::new();
                            if answers.recv_many(&mut deliveries, CHUNKS_PER_REQUEST).await == 0 {
                                break;
                            }
                            let event = Event::Delivered {
                                request,
                                deliveries,
                            };
                            if events.send(event).await.is_err() {
                                break;
                            }
                        }
                    }
                };
                let result = tokio::select! {
                    biased;
                    () = lane.stop.cancelled() => Err(SourceError::Transient {
                        source_name: chosen.name(),
                        cause: "stopped".into(),
                    }),
                    (result, ()) = futures_util::future::join(chosen.fetch_relayed(files, sink, relay), forward) => result,
                };
                let _ = events.send(Event::Done { request, result }).await;
            });
        }
    }

    /// Source `source` of `lane` has a request in flight, or chunks being checked.
    fn probing(&self, lane: &Arc<Lane>, source: usize) -> bool {
        let ours = |l: &Arc<Lane>, s: usize| Arc::ptr_eq(l, lane) && s == source;
        self.requests.values().any(|r| ours(&r.lane, r.source))
            || self.checking.values().any(|a| ours(&a.lane, a.source))
    }

    pub(super) async fn event(&mut self, event: Event) {
        match event {
            Event::Delivered {
                request,
                deliveries,
            } => {
                let mut writes = Vec::new();
                for delivery in deliveries {
                    match delivery {
                        Delivery::Chunk {
                            hash,
                            encoding,
                            bytes,
                        } => {
                            if let Some(write) = self.delivered(request, hash, encoding, bytes) {
                                writes.push(write);
                            }
                        }
                        Delivery::Missing { hash } => {
                            let Some(req) = self.requests.get_mut(&request) else {
                                continue;
                            };
                            if !req.wants.contains(&hash) || !req.received.insert(hash) {
                                continue;
                            }
                            let asked = Asked {
                                lane: req.lane.clone(),
                                source: req.source,
                                bytes: 0,
                                queued: req.queued.get(&hash).copied(),
                            };
                            self.refused(hash, asked, request, String::new(), Refusal::Missing)
                                .await;
                        }
                    }
                }
                if !writes.is_empty() {
                    let write = WriterCommand::Write {
                        request,
                        chunks: writes,
                    };
                    let _ = self.to_writer.send(write).await;
                }
            }
            Event::Done { request, result } => {
                let Some(req) = self.requests.remove(&request) else {
                    return;
                };
                // What did not arrive goes back in the queue.
                let mut affected = HashSet::new();
                for hash in &req.wants {
                    if req.received.contains(hash) {
                        continue;
                    }
                    if self.in_flight.get(hash) == Some(&request) {
                        self.in_flight.remove(hash);
                    }
                    for blob in self.holders.get(hash).into_iter().flatten() {
                        let Some(job) = self.jobs.get_mut(blob) else {
                            continue;
                        };
                        for &i in job.by_hash.get(hash).map(Vec::as_slice).unwrap_or(&[]) {
                            if job.chunks[i] == ChunkState::InFlight {
                                job.chunks[i] = ChunkState::Missing;
                                affected.insert(*blob);
                            }
                        }
                    }
                    if let Some(&(priority, seq, blob, index)) = req.queued.get(hash) {
                        self.heap.push(Entry {
                            priority,
                            seq,
                            blob,
                            index,
                            lane: req.lane.clone(),
                        });
                    }
                }
                let Err(err) = result else {
                    if req.chunks == 0 {
                        // Answered "missing" for all: a peer that is honest so far.
                        req.lane.proven(req.source);
                    }
                    return;
                };
                if req.lane.stop.is_cancelled() {
                    return;
                }
                if !req.lane.is_upstream(req.source) {
                    // A peer that cannot be reached or refuses is left out
                    // (for a while, if that may pass); the lane goes on
                    // with its next source, and nothing counts against it.
                    let retry = err.is_transient().then_some(super::PEER_RETRY);
                    req.lane.drop_source(req.source, err.cause_text(), retry);
                    return;
                }
                let give_up = match &err {
                    // Requests that failed together (one lost link) count once.
                    SourceError::Transient { .. }
                        if request <= req.lane.fail_mark.load(Ordering::Relaxed) =>
                    {
                        None
                    }
                    SourceError::Transient { .. } => {
                        req.lane
                            .fail_mark
                            .store(self.next_request, Ordering::Relaxed);
                        let failures = req.lane.failures.fetch_add(1, Ordering::Relaxed) + 1;
                        warn!(lane = req.lane.name, cause = %err, failures, "a chunk request failed");
                        (failures >= req.lane.max_failures)
                            .then(|| JobError::Offline(err.clone().into()))
                    }
                    SourceError::Permanent { .. } => Some(JobError::Failed(err.clone().into())),
                };
                if let Some(why) = give_up {
                    // Files of this lane that nobody else can fetch give up.
                    let lost: Vec<Hash> = self
                        .jobs
                        .iter()
                        .filter(|(_, job)| {
                            job.best()
                                .is_some_and(|(_, lane)| Arc::ptr_eq(&lane, &req.lane))
                        })
                        .map(|(blob, _)| *blob)
                        .collect();
                    for blob in lost {
                        self.fail(blob, why.clone()).await;
                    }
                }
            }
        }
    }

    /// A chunk of `request` arrived: counted for its lane and made ready for
    /// the writer, for every open file that lacks it. `None` when it was not
    /// asked for in that request, or already arrived.
    fn delivered(
        &mut self,
        request: u64,
        hash: Hash,
        encoding: Encoding,
        bytes: Vec<u8>,
    ) -> Option<ChunkWrite> {
        let req = self.requests.get_mut(&request)?;
        if !req.wants.contains(&hash) || !req.received.insert(hash) {
            return None;
        }
        req.chunks += 1;
        let lane = req.lane.clone();
        let asked = Asked {
            lane: lane.clone(),
            source: req.source,
            bytes: bytes.len() as u64,
            queued: req.queued.get(&hash).copied(),
        };
        lane.failures.store(0, Ordering::Relaxed);
        lane.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        lane.chunks.fetch_add(1, Ordering::Relaxed);
        if let Some(counted) = &lane.counted {
            counted(bytes.len() as u64);
        }
        let (mut len, mut want, mut blobs) = (0, None, Vec::new());
        for blob in self.holders.get(&hash).into_iter().flatten() {
            let Some(job) = self.jobs.get(blob) else {
                continue;
            };
            if let Some(&index) = job.by_hash.get(&hash).and_then(|v| v.first())
                && job.opened
                && !job.finishing
            {
                len = job.manifest.chunks[index].len as usize;
                blobs.push(*blob);
                if want.is_none() {
                    want = job.wants.get(&index).cloned();
                }
            }
        }
        if blobs.is_empty() {
            // No open file lacks it any more (each finished, failed, or was
            // stopped on a full disk while it travelled): nothing to check
            // it against or write it to, and not a bad chunk.
            if self.in_flight.get(&hash) == Some(&request) {
                self.in_flight.remove(&hash);
            }
            return None;
        }
        self.checking.insert(hash, asked);
        let want = want.unwrap_or(ChunkWant {
            hash,
            bases: Vec::new(),
        });
        Some(ChunkWrite {
            want,
            encoding,
            bytes,
            len,
            blobs,
        })
    }
}
