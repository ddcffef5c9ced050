//! [`KeyTable`]: the client's table of keys it holds futures for, as a
//! slab of entries plus a [`KeyIndex`] from key to slot.
//!
//! Why a slab (issue 15): a future carries its entry's slot, so dropping
//! it touches that entry directly instead of probing a hash map of a
//! million 120-byte entries, and a program dropping its futures in the
//! order it made them (a `Vec` of them going out of scope) walks the slab
//! in memory order. The last drop of a key does not probe the index either
//! (a probe is a cache miss or two at random in a table of a million: 64 %
//! of the drop's time when it did): the slot is emptied and marked stale,
//! lookups skip stale slots, and the stale ids leave the index in one
//! sweep of the table once they outnumber the live keys (amortized O(1) a
//! drop), after which their slots are reused.

use std::cell::Cell;
use std::sync::Arc;

use super::client::{KeyEntry, KeyStatus};
use crate::util::key_index::KeyIndex;
use crate::wire::messages::Key;

/// A slot number no entry has: what a future not counted in the table
/// carries (see [`KeyTable::slot`]).
pub const NO_SLOT: u32 = u32::MAX;

/// The key dropped with the last future of an entry, and whether the
/// scheduler still has to be told (it was not cancelled already).
#[derive(Debug)]
pub struct LastDrop {
    /// The key whose last future went.
    pub key: Key,
    /// Whether a `ReleaseKeys` is due for it.
    pub release: bool,
}

/// Fewest stale slots swept at once: below it a sweep of the index is not
/// worth its pass over the table.
pub const MIN_SWEEP: usize = 4096;

/// Keys with live futures, by key and by slot.
#[derive(Debug, Default)]
pub struct KeyTable {
    slots: Vec<Option<KeyEntry>>,
    /// Empty slots not in the index: free to reuse.
    free: Vec<u32>,
    /// Empty slots still in the index (their last future went since the
    /// last sweep), and the same as a flag per slot for the sweep.
    stale: Vec<u32>,
    is_stale: Vec<bool>,
    index: KeyIndex,
    /// Slots recent lookups found. Keys are looked up mostly in the order
    /// they were made (results of a `map` arrive in about that order from
    /// each worker; a wait walks its futures in order), and a key made
    /// right after another has the next slot: the slot after a hint is
    /// tried before the index, whose probe is a cache miss or two at random
    /// in a table of a million keys (20 % of the client's thread while a
    /// million results arrived). One hint per interleaved stream.
    hints: [Cell<u32>; LOOKUP_HINTS],
    /// The hint a lookup through the index replaces next (round robin).
    next_hint: Cell<usize>,
}

/// How many interleaved streams of in-order lookups [`KeyTable::slot`]
/// follows (a few workers' results, a waiting thread).
pub const LOOKUP_HINTS: usize = 4;

impl KeyTable {
    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.index.len() - self.stale.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of `key`, if held.
    pub fn slot(&self, key: &str) -> Option<u32> {
        let slots = &self.slots;
        let holds = |id: u32| {
            slots
                .get(id as usize)
                .is_some_and(|e| e.as_ref().is_some_and(|e| e.key == key))
        };
        // A live key has one slot, so a hit here is what the index says.
        for hint in &self.hints {
            let next = hint.get().wrapping_add(1);
            if holds(next) {
                hint.set(next);
                return Some(next);
            }
        }
        let found = self.index.find(key, holds)?;
        let i = self.next_hint.get();
        self.hints[i].set(found);
        self.next_hint.set((i + 1) % LOOKUP_HINTS);
        Some(found)
    }

    /// Takes the stale slots out of the index in one pass and frees them.
    fn sweep(&mut self) {
        let is_stale = &self.is_stale;
        self.index.retain(|id| !is_stale[id as usize]);
        for &slot in &self.stale {
            self.is_stale[slot as usize] = false;
        }
        self.free.append(&mut self.stale);
    }

    /// The entry of `key`, if held.
    pub fn get(&self, key: &str) -> Option<&KeyEntry> {
        let slot = self.slot(key)?;
        self.slots[slot as usize].as_ref()
    }

    /// The entry of `key`, if held, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut KeyEntry> {
        let slot = self.slot(key)?;
        self.slots[slot as usize].as_mut()
    }

    /// Counts one more future of `key`, computed by `function` (kept if the
    /// key is new); returns its slot. A key cancelled earlier and counted
    /// again is wanted anew: pending, and no longer released.
    pub fn add_ref(&mut self, key: &Key, function: &Arc<str>) -> u32 {
        let slot = match self.slot(key) {
            Some(slot) => slot,
            None => {
                let entry = KeyEntry {
                    key: key.clone(),
                    refs: 0,
                    status: KeyStatus::Pending,
                    released: false,
                    function: function.clone(),
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = Some(entry);
                        slot
                    }
                    None => {
                        self.slots.push(Some(entry));
                        self.is_stale.push(false);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(key, slot);
                slot
            }
        };
        if let Some(e) = self.slots[slot as usize].as_mut() {
            e.refs += 1;
            if e.released {
                e.released = false;
                e.status = KeyStatus::Pending;
            }
        }
        slot
    }

    /// Makes room for `additional` more keys (a `map` of that many).
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional.saturating_sub(self.free.len()));
        self.index.reserve(additional);
    }

    /// Counts one more future of the entry in `slot` (a clone); false if
    /// the slot holds no entry.
    pub fn add_ref_slot(&mut self, slot: u32) -> bool {
        match self.slots.get_mut(slot as usize).and_then(Option::as_mut) {
            Some(e) => {
                e.refs += 1;
                true
            }
            None => false,
        }
    }

    /// Uncounts one future of the entry in `slot`; when it was the last,
    /// removes the entry and says what to release.
    pub fn drop_ref_slot(&mut self, slot: u32) -> Option<LastDrop> {
        let cell = self.slots.get_mut(slot as usize)?;
        let e = cell.as_mut()?;
        if e.refs > 1 {
            e.refs -= 1;
            return None;
        }
        let e = cell.take()?;
        self.stale.push(slot);
        self.is_stale[slot as usize] = true;
        if self.stale.len() >= MIN_SWEEP.max(self.len()) {
            self.sweep();
        }
        Some(LastDrop {
            release: !e.released,
            key: e.key,
        })
    }

    /// [`drop_ref_slot`](Self::drop_ref_slot) by key.
    pub fn drop_ref(&mut self, key: &str) -> Option<LastDrop> {
        self.drop_ref_slot(self.slot(key)?)
    }

    /// Every entry held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &KeyEntry> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lookups in interleaved streams of slot order (the hints' case), out
    /// of order, of dropped keys, and of keys whose slots were reused all
    /// find what the index alone finds.
    #[test]
    fn lookups_through_the_hints_find_what_the_index_finds() {
        let mut t = KeyTable::default();
        let f: Arc<str> = Arc::from("inc");
        let n = 3 * MIN_SWEEP as u32;
        let key = |i: u32| format!("k-{i}");
        for i in 0..n {
            assert_eq!(t.add_ref(&key(i), &f), i);
        }
        let by_index = |t: &KeyTable, k: &str| {
            let slots = &t.slots;
            t.index
                .find(k, |id| slots[id as usize].as_ref().is_some_and(|e| e.key == k))
        };
        // Five streams, one more than there are hints, then a shuffled walk.
        let streams: Vec<u32> = (0..n / 5).flat_map(|i| (0..5).map(move |s| s * (n / 5) + i)).collect();
        let shuffled: Vec<u32> = (0..n).map(|i| (i * 7919) % n).collect();
        for &i in streams.iter().chain(&shuffled) {
            assert_eq!(t.slot(&key(i)), Some(i), "key {i}");
        }
        // Drop every other key: a hint on a dropped key's slot finds
        // nothing there, and after the sweep the slots go to new keys.
        for i in (0..n).step_by(2) {
            t.drop_ref(&key(i)).expect("the only future");
        }
        for i in 0..n {
            let want = (i % 2 == 1).then_some(i);
            assert_eq!(t.slot(&key(i)), want, "key {i} after the drops");
            assert_eq!(t.slot(&key(i)), by_index(&t, &key(i)));
        }
        let reused: Vec<u32> = (n..n + n / 2).map(|i| t.add_ref(&key(i), &f)).collect();
        assert!(reused.iter().all(|&s| s < n && s % 2 == 0), "dropped slots are reused");
        for (j, &s) in reused.iter().enumerate() {
            let k = key(n + j as u32);
            assert_eq!(t.slot(&k), Some(s));
            assert_eq!(t.slot(&key(s)), None, "slot {s} now holds {k}");
        }
    }

    #[test]
    fn counts_futures_per_key_and_frees_slots_on_the_last_drop() {
        let mut t = KeyTable::default();
        let f: Arc<str> = Arc::from("inc");
        let a = t.add_ref(&"a".to_string(), &f);
        let b = t.add_ref(&"b".to_string(), &f);
        assert_ne!(a, b);
        assert_eq!(
            t.add_ref(&"a".to_string(), &f),
            a,
            "a second future of a key shares its slot"
        );
        assert!(t.add_ref_slot(b));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("a").map(|e| e.refs), Some(2));
        assert!(t.drop_ref_slot(a).is_none(), "one future of a is left");
        let last = t.drop_ref_slot(a).expect("the last future of a");
        assert_eq!(last.key, "a");
        assert!(last.release);
        assert!(t.get("a").is_none());
        assert!(t.drop_ref_slot(a).is_none(), "a freed slot drops nothing");
        // The emptied slot stays out of use until a sweep (next test): a
        // new key gets a new slot.
        let c = t.add_ref(&"c".to_string(), &f);
        assert_eq!(c, 2);
        assert_eq!(t.get("c").map(|e| e.key.as_str()), Some("c"));
        assert_eq!(t.get("b").map(|e| e.refs), Some(2));
        t.get_mut("b").expect("b").released = true;
        assert!(t.drop_ref("b").is_none());
        let last = t.drop_ref("b").expect("the last future of b");
        assert!(!last.release, "a cancelled key is not released twice");
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().count(), 1);
    }

    #[test]
    fn stale_slots_are_skipped_then_swept_and_reused() {
        let mut t = KeyTable::default();
        let f: Arc<str> = Arc::from("");
        let n = 3 * MIN_SWEEP as u32;
        let slots: Vec<u32> = (0..n).map(|i| t.add_ref(&format!("k{i}"), &f)).collect();
        assert_eq!(slots, (0..n).collect::<Vec<_>>());
        // Drop all but the last MIN_SWEEP: sweeps happen on the way.
        for &s in &slots[..(n as usize - MIN_SWEEP)] {
            assert_eq!(t.drop_ref_slot(s).map(|l| l.release), Some(true));
        }
        assert_eq!(t.len(), MIN_SWEEP);
        assert!(t.get("k0").is_none(), "a dropped key is gone at once");
        assert_eq!(t.get(&format!("k{}", n - 1)).map(|e| e.refs), Some(1));
        // A dropped key counted again gets a slot and is found there, even
        // while its old slot may still be stale in the index.
        let again = t.add_ref(&format!("k{}", n - MIN_SWEEP as u32 - 1), &f);
        assert_eq!(t.slot(&format!("k{}", n - MIN_SWEEP as u32 - 1)), Some(again));
        assert_eq!(t.len(), MIN_SWEEP + 1);
        assert!(
            t.index.len() <= 2 * MIN_SWEEP + 2,
            "stale ids were swept: {}",
            t.index.len()
        );
        // Drop the rest: everything is found absent, and slots get reused.
        for s in slots[(n as usize - MIN_SWEEP)..].iter().copied().chain([again]) {
            assert!(t.drop_ref_slot(s).is_some());
        }
        assert_eq!(t.len(), 0);
        assert!(t.is_empty());
        let reused = t.add_ref(&"new".to_string(), &f);
        assert!(reused < n, "a swept slot is reused, not a new one ({reused})");
        assert_eq!(t.get("new").map(|e| e.refs), Some(1));
    }

    #[test]
    fn a_released_key_counted_again_is_pending_again() {
        let mut t = KeyTable::default();
        let f: Arc<str> = Arc::from("");
        let s = t.add_ref(&"k".to_string(), &f);
        let e = t.get_mut("k").expect("k");
        e.released = true;
        e.status = KeyStatus::Cancelled;
        assert_eq!(t.add_ref(&"k".to_string(), &f), s);
        let e = t.get("k").expect("k");
        assert!(!e.released);
        assert_eq!(e.status, KeyStatus::Pending);
    }
}
