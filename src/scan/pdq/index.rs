//! Near-neighbour search over PDQ hashes by multi-index hashing.
//!
//! # Scheme: 16 chunks of 16 bits, probing each chunk's exact value and its 1-bit neighbours
//!
//! The 256 bits are split into the hash's 16 words of 16 bits; chunk `c` has a dense table of
//! 65 536 buckets holding the slots whose word `c` has that value. Pigeonhole: if two hashes
//! differ by at most 31 bits, they cannot differ by 2 or more bits in *every* one of the 16
//! chunks (that would be ≥ 32), so at least one chunk differs by at most 1 bit. A query for
//! distance ≤ 31 therefore probes, per chunk, the exact value and its 16 one-bit neighbours:
//! 16 × 17 = 272 buckets, every true neighbour is among the candidates (recall is exact), and
//! each candidate is verified with a full 256-bit popcount. In general a query for distance
//! `d` probes radius `r = d / 16` per chunk; radius 2 (d ≤ 47) enumerates 137 keys per chunk,
//! and beyond that the index falls back to a linear scan.
//!
//! Why this split: with `N` hashes a 16-bit bucket holds about `N / 65 536` entries, so at 1M
//! hashes a query meets ~4 000 candidates and at 10M ~40 000. 32 chunks of 8 bits need no
//! neighbour probes but their buckets hold `N / 256` entries each (128 000 candidates at 1M);
//! 8 chunks of 32 bits need radius 3 per chunk (8 × 5 489 hash-map probes) for the same
//! guarantee. 16 × 16 sits between the two and keeps every table a flat array.
//!
//! Candidates are screened without touching the hash array: each posting carries, besides
//! its slot, the 96 bits of the six chunks that follow its own (a *sketch*, 16 bytes per
//! posting). The sketch distance plus the key's distance is a lower bound of the full
//! distance, and for unrelated hashes it exceeds 31 in all but ~0.05% of cases, so a query
//! streams through contiguous postings and follows a slot into the (cache-cold) hash array only
//! for the few that may match. That costs 16 × 16 bytes of postings per hash (~300 bytes per
//! entry in all) for query times in the tens of microseconds at 1M hashes.
//!
//! A candidate can turn up in several chunks; it is reported only from the first chunk whose
//! word is within the probe radius of the query's, which that candidate's own XOR tells, so
//! no per-query set is needed. Insert and remove are in place (a slot is reused after
//! removal), so the admin API can change lists at runtime.

use super::types::{distance_words, PdqHash};

/// Buckets per chunk table (one per 16-bit value).
const BUCKETS: usize = 1 << 16;
/// Chunks (16-bit words) per hash.
const CHUNKS: usize = 16;
/// Above this probe radius a linear scan is cheaper than enumerating neighbours.
const MAX_RADIUS: u32 = 2;

/// A multi-index over (PDQ hash, id) pairs answering "all ids within distance d".
#[derive(Default)]
pub struct PdqIndex {
    /// Slot → packed hash.
    hashes: Vec<[u64; 4]>,
    /// Slot → caller's id.
    ids: Vec<u64>,
    /// Slot → in use.
    live: Vec<bool>,
    /// Slots freed by `remove`, reused by `insert`.
    free: Vec<u32>,
    /// `CHUNKS × BUCKETS` posting lists; allocated on the first insert.
    tables: Vec<Vec<Posting>>,
    len: usize,
}

fn chunk(words: &[u64; 4], c: usize) -> u16 {
    (words[c / 4] >> (16 * (c % 4))) as u16
}

/// One entry of a chunk's bucket: the slot and the sketch of the six following chunks.
#[derive(Clone, Copy)]
struct Posting {
    /// Chunks c+1..=c+4 (mod 16), lowest first.
    lo: u64,
    /// Chunks c+5 and c+6 (mod 16).
    hi: u32,
    slot: u32,
}

/// The sketch of chunk `c`'s bucket entries: chunks c+1..=c+6 (mod 16).
fn sketch(words: &[u64; 4], c: usize) -> (u64, u32) {
    let ch = |k: usize| chunk(words, (c + k) % CHUNKS);
    let lo =
        u64::from(ch(1)) | u64::from(ch(2)) << 16 | u64::from(ch(3)) << 32 | u64::from(ch(4)) << 48;
    let hi = u32::from(ch(5)) | u32::from(ch(6)) << 16;
    (lo, hi)
}

/// Bits set in `a` and `b` together, as one SWAR popcount. The default x86-64 target has no
/// POPCNT instruction, so `count_ones` is this same bit arithmetic per word; sharing the last
/// two steps (nibble counts of both words added, one multiply) cheapens the sketch test, which
/// runs for every candidate (measured: 10M-hash queries ~10% faster).
#[inline]
fn popcount_2x64(a: u64, b: u64) -> u32 {
    if cfg!(target_feature = "popcnt") {
        // Built for a CPU level with POPCNT (e.g. `-C target-cpu=x86-64-v2`): one instruction.
        return a.count_ones() + b.count_ones();
    }
    const M1: u64 = 0x5555_5555_5555_5555;
    const M2: u64 = 0x3333_3333_3333_3333;
    const M4: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    const H01: u64 = 0x0101_0101_0101_0101;
    let a = a - ((a >> 1) & M1);
    let b = b - ((b >> 1) & M1);
    // Nibble counts are at most 4 per word, 8 for the sum: no carry between nibbles.
    let s = (a & M2) + ((a >> 2) & M2) + (b & M2) + ((b >> 2) & M2);
    // Byte counts are at most 16, the total at most 128: no carry out of a byte.
    let s = (s & M4) + ((s >> 4) & M4);
    (s.wrapping_mul(H01) >> 56) as u32
}

impl PdqIndex {
    /// An empty index (no memory is reserved until the first insert).
    pub fn new() -> PdqIndex {
        PdqIndex::default()
    }

    /// Number of (hash, id) pairs held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Releases spare capacity left by growth, e.g. after a bulk load (buckets grow by
    /// doubling, so this can return a third of the postings' memory).
    pub fn shrink_to_fit(&mut self) {
        self.tables.iter_mut().for_each(Vec::shrink_to_fit);
        self.hashes.shrink_to_fit();
        self.ids.shrink_to_fit();
        self.live.shrink_to_fit();
    }

    /// Adds `(hash, id)`; returns false (and changes nothing) if that exact pair is present.
    pub fn insert(&mut self, hash: &PdqHash, id: u64) -> bool {
        let words = hash.as_u64s();
        if self.find_slot(&words, id).is_some() {
            return false;
        }
        if self.tables.is_empty() {
            self.tables = vec![Vec::new(); CHUNKS * BUCKETS];
        }
        let slot = match self.free.pop() {
            Some(s) => {
                let i = s as usize;
                self.hashes[i] = words;
                self.ids[i] = id;
                self.live[i] = true;
                s
            }
            None => {
                self.hashes.push(words);
                self.ids.push(id);
                self.live.push(true);
                // More than 4G entries would not fit in memory long before this.
                u32::try_from(self.hashes.len() - 1).unwrap_or(u32::MAX)
            }
        };
        for c in 0..CHUNKS {
            let (lo, hi) = sketch(&words, c);
            self.tables[c * BUCKETS + usize::from(chunk(&words, c))].push(Posting { lo, hi, slot });
        }
        self.len += 1;
        true
    }

    /// Removes `(hash, id)`; returns whether it was present.
    pub fn remove(&mut self, hash: &PdqHash, id: u64) -> bool {
        let words = hash.as_u64s();
        let Some(slot) = self.find_slot(&words, id) else {
            return false;
        };
        for c in 0..CHUNKS {
            let bucket = &mut self.tables[c * BUCKETS + usize::from(chunk(&words, c))];
            if let Some(pos) = bucket.iter().position(|p| p.slot == slot) {
                bucket.swap_remove(pos);
            }
        }
        self.live[slot as usize] = false;
        self.free.push(slot);
        self.len -= 1;
        true
    }

    fn find_slot(&self, words: &[u64; 4], id: u64) -> Option<u32> {
        let bucket = self.tables.get(usize::from(chunk(words, 0)))?;
        bucket
            .iter()
            .map(|p| p.slot)
            .find(|&s| self.hashes[s as usize] == *words && self.ids[s as usize] == id)
    }

    /// Every `(id, distance)` with distance ≤ `max_distance` to `hash`, nearest first (ties by
    /// id). Recall is exact for every distance: probing up to radius 2, linear scan beyond.
    pub fn query(&self, hash: &PdqHash, max_distance: u32) -> Vec<(u64, u32)> {
        let q = hash.as_u64s();
        let mut out = Vec::new();
        if self.len == 0 {
            return out;
        }
        let radius = max_distance / CHUNKS as u32;
        if radius > MAX_RADIUS {
            self.linear(&q, max_distance, &mut out);
        } else {
            let mut keys: Vec<u16> = Vec::with_capacity(137);
            for c in 0..CHUNKS {
                let key = chunk(&q, c);
                keys.clear();
                keys.push(key);
                if radius >= 1 {
                    for b1 in 0..16 {
                        let k1 = key ^ (1 << b1);
                        keys.push(k1);
                        if radius >= 2 {
                            keys.extend((b1 + 1..16).map(|b2| k1 ^ (1 << b2)));
                        }
                    }
                }
                self.probe_chunk(&q, c, &keys, max_distance, radius, &mut out);
            }
        }
        out.sort_unstable_by_key(|&(id, d)| (d, id));
        out
    }

    /// Scans chunk `c`'s buckets for `keys`. The buckets are located and their first postings
    /// loaded before any is scanned, so their cache misses overlap instead of queueing.
    fn probe_chunk(
        &self,
        q: &[u64; 4],
        c: usize,
        keys: &[u16],
        max: u32,
        radius: u32,
        out: &mut Vec<(u64, u32)>,
    ) {
        let buckets: Vec<(u16, &[Posting])> = keys
            .iter()
            .map(|&k| (k, self.tables[c * BUCKETS + usize::from(k)].as_slice()))
            .collect();
        let touched = buckets
            .iter()
            .fold(0u64, |acc, (_, b)| acc ^ b.first().map_or(0, |p| p.lo));
        std::hint::black_box(touched);
        let (qlo, qhi) = sketch(q, c);
        let qkey = chunk(q, c);
        for (key, bucket) in buckets {
            let key_distance = (key ^ qkey).count_ones();
            for p in bucket {
                // A lower bound of the distance from data already in cache.
                if key_distance + popcount_2x64(p.lo ^ qlo, u64::from(p.hi ^ qhi)) > max {
                    continue;
                }
                let s = p.slot as usize;
                let h = &self.hashes[s];
                let d = distance_words(h, q);
                if d > max {
                    continue;
                }
                let x = [h[0] ^ q[0], h[1] ^ q[1], h[2] ^ q[2], h[3] ^ q[3]];
                // Reported from the first chunk within the radius only (see the module doc).
                if (0..c).any(|e| chunk(&x, e).count_ones() <= radius) {
                    continue;
                }
                out.push((self.ids[s], d));
            }
        }
    }

    fn linear(&self, q: &[u64; 4], max: u32, out: &mut Vec<(u64, u32)>) {
        for (s, h) in self.hashes.iter().enumerate() {
            if !self.live[s] {
                continue;
            }
            let d = distance_words(h, q);
            if d <= max {
                out.push((self.ids[s], d));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: a small seeded generator, so the tests need no RNG crate.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        pub(crate) fn hash(&mut self) -> PdqHash {
            PdqHash::from_u64s([self.next(), self.next(), self.next(), self.next()])
        }
        /// `h` with `n` distinct random bits flipped.
        pub(crate) fn near(&mut self, h: &PdqHash, n: usize) -> PdqHash {
            let mut w = h.as_u64s();
            let mut flipped = std::collections::HashSet::new();
            while flipped.len() < n {
                let b = (self.next() % 256) as usize;
                if flipped.insert(b) {
                    w[b / 64] ^= 1 << (b % 64);
                }
            }
            PdqHash::from_u64s(w)
        }
    }

    fn linear_scan(all: &[(PdqHash, u64)], q: &PdqHash, max: u32) -> Vec<(u64, u32)> {
        let mut v: Vec<_> = all
            .iter()
            .map(|(h, id)| (*id, h.distance(q)))
            .filter(|&(_, d)| d <= max)
            .collect();
        v.sort_unstable_by_key(|&(id, d)| (d, id));
        v
    }

    #[test]
    fn recall_equals_linear_scan_up_to_distance_31_and_beyond() {
        let mut rng = Rng(42);
        let mut index = PdqIndex::new();
        let mut all = Vec::new();
        for id in 0..3000u64 {
            let h = rng.hash();
            assert!(index.insert(&h, id));
            all.push((h, id));
        }
        // Planted neighbours at every distance 0..=40 around a few centres.
        let mut next_id = 10_000u64;
        let centres: Vec<PdqHash> = (0..5).map(|_| rng.hash()).collect();
        for c in &centres {
            for n in 0..=40 {
                let h = rng.near(c, n);
                assert!(index.insert(&h, next_id));
                all.push((h, next_id));
                next_id += 1;
            }
        }
        assert_eq!(index.len(), all.len());
        let mut queries: Vec<PdqHash> = centres.clone();
        queries.extend((0..20).map(|_| rng.hash()));
        for q in &queries {
            for max in [0, 1, 8, 15, 16, 24, 31, 32, 40, 47, 48, 64, 128] {
                assert_eq!(index.query(q, max), linear_scan(&all, q, max), "max {max}");
            }
        }
        // A centre has planted neighbours at every distance up to 31.
        let found = index.query(&centres[0], 31);
        assert!(found.len() >= 32, "found {}", found.len());
    }

    #[test]
    fn insert_is_idempotent_and_remove_frees_the_slot() {
        let mut rng = Rng(7);
        let mut index = PdqIndex::new();
        let h = rng.hash();
        assert!(index.insert(&h, 1));
        assert!(!index.insert(&h, 1));
        assert!(index.insert(&h, 2));
        assert_eq!(index.query(&h, 0), vec![(1, 0), (2, 0)]);
        assert!(index.remove(&h, 1));
        assert!(!index.remove(&h, 1));
        assert_eq!(index.query(&h, 31), vec![(2, 0)]);
        assert_eq!(index.query(&h, 200), vec![(2, 0)]);
        let g = rng.near(&h, 5);
        assert!(index.insert(&g, 3));
        assert_eq!(index.hashes.len(), 2, "the freed slot is reused");
        assert_eq!(index.query(&h, 31), vec![(2, 0), (3, 5)]);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn shared_popcount_equals_count_ones() {
        let mut rng = Rng(3);
        for v in [[0, 0], [u64::MAX, u64::MAX], [u64::MAX, 0], [1, 1 << 63]] {
            assert_eq!(
                popcount_2x64(v[0], v[1]),
                v[0].count_ones() + v[1].count_ones()
            );
        }
        for _ in 0..10_000 {
            let (a, b) = (rng.next(), rng.next() >> (rng.next() % 64));
            assert_eq!(popcount_2x64(a, b), a.count_ones() + b.count_ones());
        }
    }

    #[test]
    fn empty_index_answers_nothing() {
        let index = PdqIndex::new();
        assert!(index.is_empty());
        assert!(index.query(&PdqHash::default(), 256).is_empty());
    }
}
