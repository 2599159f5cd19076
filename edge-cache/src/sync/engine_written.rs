//! The engine's actor, continued: what the writer reports (files opened,
//! chunks written or refused, files finished), and files that fail.

use super::*;
use crate::quota::says_disk_full;

impl Actor {
    /// What the writer did since it last said. Files' progress is told
    /// once per batch (their watchers wake once, not once per chunk), and
    /// always before anything else about them.
    pub(super) async fn writer_events(&mut self, events: Vec<WriterEvent>) {
        let mut arrived: HashMap<Hash, Vec<usize>> = HashMap::new();
        for event in events {
            match event {
                WriterEvent::Written { request, chunks } => {
                    for chunk in chunks {
                        self.written(request, chunk, &mut arrived).await;
                    }
                }
                WriterEvent::Opened { blob, result } => {
                    self.tell_arrived(&mut arrived).await;
                    match result {
                        Ok(opened) => self.opened(blob, opened).await,
                        Err(why) if says_disk_full(&why) => self.disk_full(&why).await,
                        Err(why) => self.fail(blob, JobError::Failed(why.into())).await,
                    }
                }
                WriterEvent::Finished { blob, result } => {
                    self.tell_arrived(&mut arrived).await;
                    let Some(job) = self.remove_job(&blob) else {
                        continue;
                    };
                    let full = result
                        .as_ref()
                        .err()
                        .filter(|why| says_disk_full(why))
                        .cloned();
                    let outcome = match result {
                        Ok(()) => Outcome::Done { assembled: true },
                        Err(why) => Outcome::Failed(JobError::Failed(why.into())),
                    };
                    job.publish(|state| state.outcome = Some(outcome));
                    if let Some(why) = full {
                        self.disk_full(&why).await;
                    }
                }
            }
        }
        self.tell_arrived(&mut arrived).await;
    }

    /// Tells watchers the chunks written to their files; finishes whole ones.
    async fn tell_arrived(&mut self, arrived: &mut HashMap<Hash, Vec<usize>>) {
        for (blob, indices) in arrived.drain() {
            let Some(job) = self.jobs.get(&blob) else {
                continue;
            };
            let delta_saved = job.delta_saved;
            job.publish(|state| {
                for &i in &indices {
                    state.arrived[i] = true;
                }
                state.delta_saved = delta_saved;
            });
            self.maybe_finish(blob).await;
        }
    }

    /// One chunk the writer checked: refused (asked again), or written to
    /// files (their indices added to `arrived`, told to watchers by the
    /// caller); files opened meanwhile get a copy.
    async fn written(
        &mut self,
        request: u64,
        chunk: WrittenChunk,
        arrived: &mut HashMap<Hash, Vec<usize>>,
    ) {
        let WrittenChunk {
            hash,
            verdict,
            written,
            failed,
            delta_saved,
        } = chunk;
        let asked = self.checking.remove(&hash);
        if let Err(reason) = verdict {
            let Some(asked) = asked else {
                if self.in_flight.get(&hash) == Some(&request) {
                    self.in_flight.remove(&hash);
                }
                return self.requeue_wanting(hash);
            };
            return self
                .refused(hash, asked, request, reason, Refusal::Bad)
                .await;
        }
        if let Some(asked) = &asked {
            asked.lane.took(asked.source, asked.bytes);
        }
        if self.in_flight.get(&hash) == Some(&request) {
            self.in_flight.remove(&hash);
        }
        self.tries.remove(&hash);
        for (blob, why) in failed {
            if says_disk_full(&why) {
                return self.disk_full(&why).await;
            }
            self.fail(blob, JobError::Failed(why.into())).await;
        }
        for blob in written {
            let Some(job) = self.jobs.get_mut(&blob) else {
                continue;
            };
            job.delta_saved += delta_saved;
            let indices = job.by_hash.get(&hash).map(Vec::as_slice).unwrap_or(&[]);
            for &i in indices {
                job.chunks[i] = ChunkState::Present;
            }
            arrived.entry(blob).or_default().extend_from_slice(indices);
        }
        // Files opened while the chunk was on its way to the disk
        // get a copy of it there, not a second download.
        let late: Vec<Hash> = self
            .holders
            .get(&hash)
            .into_iter()
            .flatten()
            .filter(|blob| {
                self.jobs.get(*blob).is_some_and(|job| {
                    job.opened
                        && !job.finishing
                        && job.by_hash.get(&hash).is_some_and(|indices| {
                            indices
                                .iter()
                                .any(|&i| job.chunks[i] != ChunkState::Present)
                        })
                })
            })
            .copied()
            .collect();
        if !late.is_empty() && request != COPY {
            self.in_flight.insert(hash, COPY);
            let copy = WriterCommand::Copy { hash, to: late };
            let _ = self.to_writer.send(copy).await;
        } else if !late.is_empty() {
            self.requeue_wanting(hash);
        }
    }

    /// Every open file still lacking chunk `hash` asks for it again.
    pub(super) fn requeue_wanting(&mut self, hash: Hash) {
        let mut wanting: Vec<(Hash, usize)> = Vec::new();
        for blob in self.holders.get(&hash).into_iter().flatten() {
            let Some(job) = self.jobs.get_mut(blob) else {
                continue;
            };
            if !job.opened || job.finishing {
                continue;
            }
            let open: Vec<usize> = job.by_hash[&hash]
                .iter()
                .copied()
                .filter(|&i| job.chunks[i] != ChunkState::Present)
                .collect();
            for &i in &open {
                job.chunks[i] = ChunkState::Missing;
            }
            if let Some(&i) = open.first() {
                wanting.push((*blob, i));
            }
        }
        for (blob, index) in wanting {
            if let Some((priority, lane)) = self.jobs.get(&blob).and_then(Job::best) {
                self.queue(blob, &[index], priority, &lane);
            }
        }
    }

    pub(super) async fn opened(&mut self, blob: Hash, opened: Opened) {
        let Some(job) = self.jobs.get_mut(&blob) else {
            return;
        };
        job.opened = true;
        if opened.held {
            let Some(job) = self.remove_job(&blob) else {
                return;
            };
            job.publish(|state| {
                state.file = Some(opened.file);
                state.arrived = opened.present;
                state.outcome = Some(Outcome::Done { assembled: false });
            });
            return;
        }
        for (index, present) in opened.present.iter().enumerate() {
            if *present {
                job.chunks[index] = ChunkState::Present;
            } else if let Some(&request) = self.in_flight.get(&job.manifest.chunks[index].hash)
                && self.requests.contains_key(&request)
            {
                job.chunks[index] = ChunkState::InFlight;
            }
        }
        job.wants = opened.plan.fetch.iter().cloned().collect();
        job.publish(|state| {
            state.file = Some(opened.file);
            state.arrived = opened.present;
            state.reused = opened.reused;
        });
        // Chunks another file being assembled already has on disk (written
        // after this file's writer looked in the store) are copied from it,
        // not fetched a second time.
        let missing: Vec<(usize, Hash)> = job
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, state)| **state == ChunkState::Missing)
            .map(|(index, _)| (index, job.manifest.chunks[index].hash))
            .collect();
        let mut copies = Vec::new();
        for (_, hash) in &missing {
            if copies.contains(hash) || self.in_flight.contains_key(hash) {
                continue;
            }
            let elsewhere = self.holders.get(hash).into_iter().flatten().any(|other| {
                *other != blob
                    && self.jobs.get(other).is_some_and(|job| {
                        job.by_hash[hash]
                            .iter()
                            .any(|&i| job.chunks[i] == ChunkState::Present)
                    })
            });
            if elsewhere {
                copies.push(*hash);
            }
        }
        if let Some(job) = self.jobs.get_mut(&blob) {
            for (index, hash) in &missing {
                if copies.contains(hash) {
                    job.chunks[*index] = ChunkState::InFlight;
                }
            }
        }
        for hash in copies {
            self.in_flight.insert(hash, COPY);
            let copy = WriterCommand::Copy {
                hash,
                to: vec![blob],
            };
            let _ = self.to_writer.send(copy).await;
        }
        let Some(job) = self.jobs.get_mut(&blob) else {
            return;
        };
        let early = std::mem::take(&mut job.early);
        let best = job.best();
        let order: Vec<usize> = opened.plan.fetch.iter().map(|(i, _)| *i).collect();
        for (range, lane) in early {
            let indices: Vec<usize> = range.collect();
            self.queue(blob, &indices, Priority::Reader, &lane);
        }
        if let Some((priority, lane)) = best {
            self.queue(blob, &order, priority, &lane);
        }
        self.maybe_finish(blob).await;
    }

    pub(super) async fn maybe_finish(&mut self, blob: Hash) {
        let Some(job) = self.jobs.get_mut(&blob) else {
            return;
        };
        if job.finishing || !job.chunks.iter().all(|c| *c == ChunkState::Present) {
            return;
        }
        job.finishing = true;
        if self
            .to_writer
            .send(WriterCommand::Finish { blob })
            .await
            .is_err()
        {
            self.fail(blob, JobError::Failed("the file writer stopped".into()))
                .await;
        }
    }

    /// The disk filled up (issue 13): nothing more can be written, so every
    /// file being fetched fails now, with why, rather than each chunk in turn
    /// (and a later chunk whose delta base never reached the disk being
    /// taken for a bad one). What was recorded stays; the next pass resumes.
    async fn disk_full(&mut self, why: &str) {
        warn!(
            cause = why,
            "the disk is full: stopping every file being fetched"
        );
        let blobs: Vec<Hash> = self.jobs.keys().copied().collect();
        for blob in blobs {
            self.fail(blob, JobError::Failed(why.to_owned().into()))
                .await;
        }
    }

    pub(super) async fn fail(&mut self, blob: Hash, why: JobError) {
        let Some(job) = self.remove_job(&blob) else {
            return;
        };
        warn!(file = %job.job.label, blob = %blob, cause = %why, "could not fetch a file");
        job.publish(|state| state.outcome = Some(Outcome::Failed(why)));
        if job.opened && !job.finishing {
            let _ = self.to_writer.send(WriterCommand::Close { blob }).await;
        }
    }

    /// Chunk `hash` was refused (bad bytes, or the source lacks it): never
    /// written; asked of the next source. A peer that sent bad bytes is
    /// not asked again by this lane; only the upstream's refusals count
    /// toward [`MAX_CHUNK_TRIES`]. `detail`: what the check found.
    pub(super) async fn refused(
        &mut self,
        hash: Hash,
        asked: Asked,
        request: u64,
        detail: String,
        why: Refusal,
    ) {
        let upstream = asked.lane.is_upstream(asked.source);
        let name = asked.lane.sources[asked.source].name();
        let reason = match why {
            Refusal::Missing => format!("{name} does not hold it"),
            Refusal::Bad => format!("from {name}: {detail}"),
        };
        if why == Refusal::Bad && !upstream {
            let cause = format!("it sent a chunk that failed its check: {detail}");
            asked.lane.drop_source(asked.source, cause, None);
        }
        let sources = asked.lane.sources.len().max(1);
        let tries = self.tries.entry(hash).or_insert((0, 0));
        tries.0 += u32::from(upstream);
        tries.1 = (asked.source + 1) % sources;
        let (count, _) = *tries;
        if upstream {
            warn!(chunk = %hash, cause = %reason, tries = count, "refused a chunk; asking again");
        } else {
            debug!(chunk = %hash, cause = %reason, "a peer could not give a chunk; asking the next source");
        }
        if self.in_flight.get(&hash) == Some(&request) {
            self.in_flight.remove(&hash);
        }
        let mut wanting = Vec::new();
        for blob in self.holders_of(&hash) {
            let Some(job) = self.jobs.get_mut(&blob) else {
                continue;
            };
            let mut wants_it = false;
            for &i in job.by_hash.get(&hash).map(Vec::as_slice).unwrap_or(&[]) {
                if job.chunks[i] != ChunkState::Present {
                    job.chunks[i] = ChunkState::Missing;
                    wants_it = true;
                }
            }
            if wants_it {
                wanting.push(blob);
            }
        }
        if count >= MAX_CHUNK_TRIES {
            for blob in wanting {
                let why = format!(
                    "chunk {hash} was refused {count} times, last: {reason}; the origin may hold a damaged copy (ask for `shanlu verify` there)"
                );
                self.fail(blob, JobError::Failed(why.into())).await;
            }
            return;
        }
        if let Some((priority, seq, blob, index)) = asked.queued {
            self.heap.push(Entry {
                priority,
                seq,
                blob,
                index,
                lane: asked.lane,
            });
        } else {
            for blob in wanting {
                if let Some((priority, lane)) = self.jobs.get(&blob).and_then(Job::best) {
                    let indices = self.jobs[&blob].by_hash[&hash].clone();
                    self.queue(blob, &indices[..1], priority, &lane);
                }
            }
        }
    }
}
