//! Request collapsing: concurrent misses for one key make one upstream fetch.
//!
//! The first caller for a key becomes the [`Leader`] and fetches; later callers get a
//! [`Follower`] and wait (bounded) for the leader's outcome. A leader that is dropped without
//! [`Leader::finish`] (upstream error, panic, client gone) releases its followers with
//! [`WaitOutcome::Abandoned`] so they fetch on their own; a follower that times out does too.
//! Followers should look the cache up again after `Done` (Vary may select another variant;
//! the leader's response may not have been storable), unless `T` already carries the answer.
//!
//! A key whose last response could not be stored for anyone (no-store, private, Vary: *…) is
//! remembered for [`UNCACHEABLE_TTL`] (Varnish's "hit-for-miss"): requests for it should skip
//! collapsing, since waiting for another client's response head gains nothing and serialises
//! every client behind a slow origin. Those keys are remembered as 64-bit fingerprints (a
//! per-process seeded foldhash): under pass-through traffic of distinct URLs a mark costs no
//! allocation and dropping marks frees nothing; a collision only lets one request skip collapsing.

use foldhash::quality::RandomState;
use foldhash::{HashMap, HashMapExt};
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::key::CacheKey;

#[derive(Clone, Debug)]
enum State<T> {
    Pending,
    Done(T),
    Abandoned,
}

struct Slot<T> {
    id: u64,
    tx: watch::Sender<State<T>>,
}

type Map<K, T> = Arc<Mutex<HashMap<K, Slot<T>>>>;

/// How long a key whose response was not storable bypasses collapsing.
pub const UNCACHEABLE_TTL: Duration = Duration::from_secs(120);

/// At most this many uncacheable keys are remembered (expired ones go first, then all).
const UNCACHEABLE_CAP: usize = 65_536;

/// In-flight fetches by key. `T` is what a leader hands its followers (e.g. `()` meaning
/// "now in the store", or `Arc<(ObjectMeta, Bytes)>`).
pub struct Collapser<T, K = CacheKey> {
    map: Map<K, T>,
    next: AtomicU64,
    /// Fingerprints of keys whose last response was not storable, with when that stops
    /// counting.
    uncacheable: Mutex<HashMap<u64, Instant>>,
    /// Hashes keys into those fingerprints.
    fingerprint: RandomState,
}

/// What [`Collapser::acquire`] returns.
pub enum Role<T, K: Hash + Eq = CacheKey> {
    /// Fetch upstream, then call [`Leader::finish`].
    Leader(Leader<T, K>),
    /// Another request is fetching: wait for it.
    Follower(Follower<T>),
}

/// The one caller that fetches for a key.
pub struct Leader<T, K: Hash + Eq = CacheKey> {
    key: Option<K>,
    id: u64,
    tx: watch::Sender<State<T>>,
    map: Map<K, T>,
}

/// A caller waiting for a leader.
pub struct Follower<T> {
    rx: watch::Receiver<State<T>>,
}

/// How a follower's wait ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitOutcome<T> {
    /// The leader finished with this value.
    Done(T),
    /// The leader gave up (error or dropped): fetch yourself.
    Abandoned,
    /// The leader took longer than the bound: fetch yourself.
    TimedOut,
}

impl<T: Clone + Send + Sync, K: Hash + Eq + Clone> Default for Collapser<T, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync, K: Hash + Eq + Clone> Collapser<T, K> {
    /// An empty collapser.
    pub fn new() -> Self {
        Collapser {
            map: Arc::new(Mutex::new(HashMap::new())),
            next: AtomicU64::new(0),
            uncacheable: Mutex::new(HashMap::new()),
            fingerprint: RandomState::default(),
        }
    }

    /// Remembers that `key`'s response could not be stored: [`Collapser::is_uncacheable`]
    /// holds for [`UNCACHEABLE_TTL`].
    pub fn mark_uncacheable(&self, key: &K) {
        let now = Instant::now();
        let mut m = self.uncacheable.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= UNCACHEABLE_CAP {
            m.retain(|_, until| *until > now);
            if m.len() >= UNCACHEABLE_CAP {
                m.clear();
            }
        }
        m.insert(self.fingerprint.hash_one(key), now + UNCACHEABLE_TTL);
    }

    /// Forgets the mark (the key's latest response was storable).
    pub fn clear_uncacheable(&self, key: &K) {
        let mut m = self.uncacheable.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&self.fingerprint.hash_one(key));
    }

    /// Whether `key` was recently answered with a response that could not be stored, so a
    /// request for it should fetch on its own instead of waiting for another's fetch.
    pub fn is_uncacheable(&self, key: &K) -> bool {
        let fp = self.fingerprint.hash_one(key);
        let mut m = self.uncacheable.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&fp) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                m.remove(&fp);
                false
            }
            None => false,
        }
    }

    /// Becomes the leader for `key`, or a follower of the current one.
    pub fn acquire(&self, key: &K) -> Role<T, K> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = map.get(key) {
            return Role::Follower(Follower {
                rx: slot.tx.subscribe(),
            });
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, _rx) = watch::channel(State::Pending);
        map.insert(key.clone(), Slot { id, tx: tx.clone() });
        Role::Leader(Leader {
            key: Some(key.clone()),
            id,
            tx,
            map: self.map.clone(),
        })
    }

    /// Number of keys being fetched right now.
    pub fn in_flight(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}

impl<T, K: Hash + Eq> Leader<T, K> {
    /// Publishes the outcome to every follower and releases the key.
    pub fn finish(mut self, value: T) {
        self.release(State::Done(value));
    }

    fn release(&mut self, state: State<T>) {
        let Some(key) = self.key.take() else { return };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|s| s.id == self.id) {
            map.remove(&key);
        }
        drop(map);
        self.tx.send_replace(state);
    }
}

impl<T, K: Hash + Eq> Drop for Leader<T, K> {
    fn drop(&mut self) {
        self.release(State::Abandoned);
    }
}

impl<T: Clone> Follower<T> {
    /// Waits at most `timeout` for the leader.
    pub async fn wait(mut self, timeout: Duration) -> WaitOutcome<T> {
        let waited =
            tokio::time::timeout(timeout, self.rx.wait_for(|s| !matches!(s, State::Pending))).await;
        match waited {
            Err(_) => WaitOutcome::TimedOut,
            // The sender vanished without a final state: treat as abandoned.
            Ok(Err(_)) => WaitOutcome::Abandoned,
            Ok(Ok(state)) => match &*state {
                State::Done(v) => WaitOutcome::Done(v.clone()),
                _ => WaitOutcome::Abandoned,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key() -> CacheKey {
        CacheKey::parse("http://a.example/hot").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_concurrent_misses_make_one_leader() {
        let c = Arc::new(Collapser::<u32>::new());
        let leaders = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, leaders, barrier) = (c.clone(), leaders.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let role = c.acquire(&key());
                barrier.wait().await; // everyone has acquired before the leader finishes
                match role {
                    Role::Leader(l) => {
                        leaders.fetch_add(1, Ordering::SeqCst);
                        l.finish(42);
                        42
                    }
                    Role::Follower(f) => match f.wait(Duration::from_secs(10)).await {
                        WaitOutcome::Done(v) => v,
                        other => panic!("follower got {other:?}"),
                    },
                }
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
        assert_eq!(leaders.load(Ordering::SeqCst), 1);
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_followers_and_the_key() {
        let c = Collapser::<u32>::new();
        let Role::Leader(l) = c.acquire(&key()) else {
            panic!("first caller leads")
        };
        let Role::Follower(f) = c.acquire(&key()) else {
            panic!("second caller follows")
        };
        drop(l);
        assert_eq!(
            f.wait(Duration::from_secs(10)).await,
            WaitOutcome::Abandoned
        );
        assert!(
            matches!(c.acquire(&key()), Role::Leader(_)),
            "key free again"
        );
    }

    #[tokio::test]
    async fn a_slow_leader_times_followers_out() {
        let c = Collapser::<u32>::new();
        let Role::Leader(_l) = c.acquire(&key()) else {
            panic!("first caller leads")
        };
        let Role::Follower(f) = c.acquire(&key()) else {
            panic!("second caller follows")
        };
        assert_eq!(
            f.wait(Duration::from_millis(20)).await,
            WaitOutcome::TimedOut
        );
    }

    #[test]
    fn uncacheable_marks_are_set_and_cleared() {
        let c = Collapser::<u32>::new();
        assert!(!c.is_uncacheable(&key()));
        c.mark_uncacheable(&key());
        assert!(c.is_uncacheable(&key()));
        let other = CacheKey::parse("http://a.example/cold").unwrap();
        assert!(!c.is_uncacheable(&other), "only the marked key");
        c.clear_uncacheable(&key());
        assert!(!c.is_uncacheable(&key()));
    }

    #[test]
    fn uncacheable_marks_stay_bounded_under_distinct_urls() {
        let c = Collapser::<u32, String>::new();
        for i in 0..UNCACHEABLE_CAP + 10 {
            c.mark_uncacheable(&format!("http://a.example/{i}"));
        }
        let held = c.uncacheable.lock().unwrap().len();
        assert!(held <= UNCACHEABLE_CAP, "{held} marks held");
        let last = format!("http://a.example/{}", UNCACHEABLE_CAP + 9);
        assert!(c.is_uncacheable(&last), "the newest mark survives");
    }

    #[tokio::test]
    async fn a_follower_arriving_after_finish_is_a_new_leader() {
        let c = Collapser::<u32>::new();
        let Role::Leader(l) = c.acquire(&key()) else {
            panic!("leads")
        };
        l.finish(1);
        assert!(matches!(c.acquire(&key()), Role::Leader(_)));
    }
}
