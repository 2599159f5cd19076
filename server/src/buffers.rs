//! Large byte buffers kept for reuse.
//!
//! An administrator's upload moves a course in frames of up to 8 MiB: the
//! client reads each request's chunks into one buffer, the origin reads each
//! request into one. A fresh allocation for each is memory the allocator has
//! just given back to the system, so the kernel maps and zeroes it again, a
//! page at a time: page faults and the allocator trimming its heap were
//! 6.6 % of a 2 GiB publish's CPU at both ends (BENCHMARKS.md, "Remote
//! publish"). A [`BufferPool`] keeps a few buffers once their bytes are no
//! longer used, and hands them out again.
//!
//! A buffer is lent as a [`Vec`] to fill ([`BufferPool::take`]), then shared
//! as [`Bytes`] ([`BufferPool::share`]): slices of it travel on (to quinn's
//! send queue, to the upload writer) and the buffer returns to the pool when
//! the last slice is dropped. A pool keeps at most `keep` buffers; the rest
//! are freed as usual, so what a pool holds is bounded by `keep` times the
//! largest buffer it was given.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse (see the module's documentation).
pub struct BufferPool {
    keep: usize,
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// A pool that keeps at most `keep` buffers.
    pub const fn new(keep: usize) -> BufferPool {
        BufferPool {
            keep,
            free: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer with room for at least `capacity` bytes: a kept one
    /// if there is one, else a new one.
    pub fn take(&'static self, capacity: usize) -> Vec<u8> {
        let kept = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buffer = kept.unwrap_or_default();
        buffer.reserve(capacity);
        buffer
    }

    /// `buffer`'s bytes as [`Bytes`]; the buffer comes back to the pool when
    /// the last slice of them is dropped.
    pub fn share(&'static self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Lent { buffer, pool: self })
    }

    /// Buffers kept now.
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            buffer.clear();
            free.push(buffer);
        }
    }
}

/// A buffer's bytes out of the pool, shared as [`Bytes`].
struct Lent {
    buffer: Vec<u8>,
    pool: &'static BufferPool,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared buffer comes back once its last slice is dropped, and is
    /// handed out again empty with its memory (no new allocation).
    #[test]
    fn buffers_come_back_when_their_last_slice_is_dropped() {
        static POOL: BufferPool = BufferPool::new(2);
        let mut buffer = POOL.take(1000);
        assert!(buffer.capacity() >= 1000);
        buffer.extend_from_slice(&[7; 1000]);
        let address = buffer.as_ptr();
        let shared = POOL.share(buffer);
        let slice = shared.slice(10..20);
        drop(shared);
        assert_eq!(POOL.kept(), 0, "a slice still uses it");
        assert_eq!(&slice[..], &[7; 10]);
        drop(slice);
        assert_eq!(POOL.kept(), 1);
        let again = POOL.take(500);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same memory");
        assert_eq!(POOL.kept(), 0);
    }

    /// A pool keeps at most its bound; the rest are freed.
    #[test]
    fn a_pool_keeps_at_most_its_bound() {
        static POOL: BufferPool = BufferPool::new(2);
        let shared: Vec<Bytes> = (0..5)
            .map(|_| {
                let mut buffer = POOL.take(64);
                buffer.push(1);
                POOL.share(buffer)
            })
            .collect();
        drop(shared);
        assert_eq!(POOL.kept(), 2);
        // A kept buffer smaller than asked for grows.
        assert!(POOL.take(1 << 20).capacity() >= 1 << 20);
    }
}
