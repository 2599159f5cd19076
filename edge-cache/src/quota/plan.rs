//! The quota plan as a pure function (issue 13): tiers, the room a pass
//! has, what to evict and what to fetch. No store, no disk: data in, a plan
//! out, unit-tested on its own.
//!
//! - **Pinned**: the blobs of subscribed courses in the catalog in force;
//!   never evicted.
//! - **Cached**: every other held blob (read-through files, unsubscribed
//!   courses, superseded versions); evicted least-recently-opened first,
//!   except one a reader has open. Cached blobs the pass would copy chunks
//!   from (the previous version of a changed file) go after the others.
//!
//! Room = min(max_store − used, free − min_free). Evicting a blob frees its
//! whole file (blobs are whole files: a chunk two blobs share is stored in
//! both), so it adds its size to both terms.

use std::collections::{HashMap, HashSet};

use catalog::Hash;
use catalog::store::HeldBlob;
use serde::{Deserialize, Serialize};

/// At most this many lessons are named in a plan's list of what is not held.
pub const MAX_NOT_HELD_LISTED: usize = 20;

/// A pinned file the pass wants, in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub blob: Hash,
    pub size: u64,
    /// `course/lesson/path`.
    pub label: String,
}

/// What the plan is computed from.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    /// Pinned files, in priority order (a blob may repeat).
    pub pinned: Vec<Wanted>,
    pub held: Vec<HeldBlob>,
    /// Blobs with a partial file (already counted in `used`).
    pub partials: HashSet<Hash>,
    /// Blobs a reader has open: never evicted.
    pub open: HashSet<Hash>,
    /// Cached blobs the pass would copy chunks from: evicted last.
    pub delta_bases: HashSet<Hash>,
    /// Bytes of blob and partial files now.
    pub used: u64,
    /// `max_store` in bytes, if set.
    pub max_store: Option<u64>,
    /// Bytes free on the filesystem holding the store.
    pub free: u64,
    pub min_free: u64,
}

/// Lessons not held because they do not fit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotHeld {
    /// `course/lesson` (or `course/file` for a course's own files).
    pub lesson: String,
    pub files: u64,
    pub bytes: u64,
}

/// What a pass does about its room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of pinned files not held (partial files already count as used).
    pub need: u64,
    /// The room before any eviction.
    pub room: u64,
    /// Cached blobs to evict, in order, and the bytes they free.
    pub evict: Vec<Hash>,
    pub evict_bytes: u64,
    /// The pinned blobs to fetch (all of them when everything fits).
    pub fetch: HashSet<Hash>,
    /// Lessons left out, in priority order, at most [`MAX_NOT_HELD_LISTED`].
    pub not_held: Vec<NotHeld>,
    /// Every file and byte left out (not only the listed lessons).
    pub not_held_files: u64,
    pub not_held_bytes: u64,
}

/// The room left: min(max_store − used, free − min_free).
pub fn room(used: u64, max_store: Option<u64>, free: u64, min_free: u64) -> u64 {
    let by_disk = free.saturating_sub(min_free);
    match max_store {
        Some(max) => max.saturating_sub(used).min(by_disk),
        None => by_disk,
    }
}

/// The cached blobs in eviction order: not open, least recently opened
/// first, the pass's delta bases after the rest.
pub fn eviction_order(input: &PlanInput) -> Vec<HeldBlob> {
    let pinned: HashSet<Hash> = input.pinned.iter().map(|w| w.blob).collect();
    let mut cached: Vec<HeldBlob> = input
        .held
        .iter()
        .filter(|h| !pinned.contains(&h.blob) && !input.open.contains(&h.blob))
        .copied()
        .collect();
    cached.sort_by_key(|h| {
        (
            input.delta_bases.contains(&h.blob),
            h.last_opened,
            *h.blob.as_bytes(),
        )
    });
    cached
}

/// The plan: evict cached blobs until the pinned files fit; if they cannot,
/// fetch in priority order what fits and list the rest.
pub fn plan(input: &PlanInput) -> Plan {
    let held: HashSet<Hash> = input.held.iter().map(|h| h.blob).collect();
    let mut seen = HashSet::new();
    // Pinned blobs not held, once each, in priority order, with what they need.
    let todo: Vec<(&Wanted, u64)> = input
        .pinned
        .iter()
        .filter(|w| !held.contains(&w.blob) && seen.insert(w.blob))
        .map(|w| {
            let need = if input.partials.contains(&w.blob) {
                0
            } else {
                w.size
            };
            (w, need)
        })
        .collect();
    let need: u64 = todo.iter().map(|(_, n)| n).sum();
    let room_before = room(input.used, input.max_store, input.free, input.min_free);
    let mut out = Plan {
        need,
        room: room_before,
        ..Plan::default()
    };
    let (mut used, mut free) = (input.used, input.free);
    let mut room_now = room_before;
    if need > room_now {
        for blob in eviction_order(input) {
            if need <= room_now {
                break;
            }
            out.evict.push(blob.blob);
            out.evict_bytes += blob.size;
            used = used.saturating_sub(blob.size);
            free = free.saturating_add(blob.size);
            room_now = room(used, input.max_store, free, input.min_free);
        }
    }
    let mut left = room_now;
    let mut lessons: Vec<NotHeld> = Vec::new();
    let mut lesson_index: HashMap<String, usize> = HashMap::new();
    for (wanted, need) in todo {
        if need <= left {
            left -= need;
            out.fetch.insert(wanted.blob);
            continue;
        }
        out.not_held_files += 1;
        out.not_held_bytes += need;
        let lesson = lesson_of(&wanted.label);
        match lesson_index.get(&lesson) {
            Some(&i) => {
                lessons[i].files += 1;
                lessons[i].bytes += need;
            }
            None if lessons.len() < MAX_NOT_HELD_LISTED => {
                lesson_index.insert(lesson.clone(), lessons.len());
                lessons.push(NotHeld {
                    lesson,
                    files: 1,
                    bytes: need,
                });
            }
            None => {}
        }
    }
    out.not_held = lessons;
    out
}

/// `course/lesson` of a `course/lesson/path` label.
fn lesson_of(label: &str) -> String {
    let mut parts = label.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(course), Some(lesson)) => format!("{course}/{lesson}"),
        _ => label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> Hash {
        Hash::of(&[n])
    }

    fn held(n: u8, size: u64, last_opened: u64) -> HeldBlob {
        HeldBlob {
            blob: h(n),
            size,
            last_opened,
        }
    }

    fn wanted(n: u8, size: u64, label: &str) -> Wanted {
        Wanted {
            blob: h(n),
            size,
            label: label.to_owned(),
        }
    }

    /// Issue 13: room is the smaller of the quota and the disk above min_free.
    #[test]
    fn issue_13_room_is_the_smaller_limit() {
        assert_eq!(room(30, Some(100), 1000, 100), 70);
        assert_eq!(room(30, Some(100), 150, 100), 50);
        assert_eq!(room(130, Some(100), 1000, 100), 0);
        assert_eq!(room(130, None, 50, 100), 0);
        assert_eq!(room(130, None, 500, 100), 400);
    }

    /// Issue 13: pinned blobs and open blobs are never evicted; the rest go
    /// least recently opened first, the pass's delta bases last.
    #[test]
    fn issue_13_eviction_order_is_lru_of_cached_blobs() {
        let input = PlanInput {
            pinned: vec![wanted(1, 10, "a/1/x")],
            held: vec![
                held(1, 10, 1),
                held(2, 10, 50),
                held(3, 10, 20),
                held(4, 10, 5),
                held(5, 10, 1),
            ],
            open: [h(4)].into(),
            delta_bases: [h(5)].into(),
            ..PlanInput::default()
        };
        let order: Vec<Hash> = eviction_order(&input).iter().map(|b| b.blob).collect();
        assert_eq!(order, vec![h(3), h(2), h(5)]);
    }

    /// Issue 13: when the pinned files fit after eviction, only as many
    /// cached blobs as needed are evicted and everything is fetched.
    #[test]
    fn issue_13_evicts_just_enough_cached_blobs() {
        let input = PlanInput {
            pinned: vec![wanted(1, 40, "a/1/x"), wanted(2, 30, "a/1/y")],
            held: vec![
                held(1, 40, 0),
                held(7, 25, 10),
                held(8, 25, 5),
                held(9, 25, 30),
            ],
            used: 115,
            max_store: Some(150),
            free: 10_000,
            min_free: 100,
            ..PlanInput::default()
        };
        let plan = plan(&input);
        assert_eq!(plan.need, 30);
        assert_eq!(plan.room, 35);
        assert!(plan.evict.is_empty(), "30 fits in 35");
        assert_eq!(plan.fetch, [h(2)].into());

        let tight = PlanInput {
            max_store: Some(120),
            ..input
        };
        let plan = super::plan(&tight);
        assert_eq!(plan.room, 5);
        assert_eq!(
            plan.evict,
            vec![h(8)],
            "least recently opened first, just enough"
        );
        assert_eq!(plan.evict_bytes, 25);
        assert_eq!(plan.fetch, [h(2)].into());
        assert_eq!(plan.not_held_files, 0);
    }

    /// Issue 13: when the subscribed courses alone do not fit, files are
    /// fetched in priority order up to the room and the rest listed by
    /// lesson with their bytes; a partial file needs nothing more.
    #[test]
    fn issue_13_what_cannot_fit_is_listed_by_lesson() {
        let input = PlanInput {
            pinned: vec![
                wanted(1, 40, "a/01/x"),
                wanted(2, 50, "a/02/y"),
                wanted(3, 30, "a/02/z"),
                wanted(4, 20, "b/01/w"),
                wanted(5, 70, "b/02/v"),
                wanted(1, 40, "a/03/x-again"),
            ],
            held: vec![held(9, 10, 0)],
            partials: [h(5)].into(),
            used: 80,
            max_store: Some(200),
            free: 1_000_000,
            min_free: 0,
            ..PlanInput::default()
        };
        let plan = plan(&input);
        assert_eq!(plan.need, 140);
        assert_eq!(plan.room, 120);
        assert_eq!(plan.evict, vec![h(9)]);
        assert_eq!(plan.fetch, [h(1), h(2), h(3), h(5)].into());
        assert_eq!(plan.not_held_files, 1);
        assert_eq!(plan.not_held_bytes, 20);
        assert_eq!(
            plan.not_held,
            vec![NotHeld {
                lesson: "b/01".into(),
                files: 1,
                bytes: 20
            }]
        );
    }

    /// Issue 13: the list of lessons not held is bounded; the totals are not.
    #[test]
    fn issue_13_the_not_held_list_is_bounded() {
        let pinned: Vec<Wanted> = (0..100u8)
            .map(|n| wanted(n, 10, &format!("c/{n}/f")))
            .collect();
        let plan = plan(&PlanInput {
            pinned,
            max_store: Some(0),
            free: 1 << 40,
            ..PlanInput::default()
        });
        assert_eq!(plan.not_held.len(), MAX_NOT_HELD_LISTED);
        assert_eq!(plan.not_held_files, 100);
        assert_eq!(plan.not_held_bytes, 1000);
        assert!(plan.fetch.is_empty());
    }
}
