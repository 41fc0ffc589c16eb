//! Routing: which parent proxies (if any) a request goes through, in what order.
//!
//! The first `[[upstream.parents]]` entry whose domains suffix-match the host applies. Its
//! proxies are ordered by rendezvous (highest-random-weight) hashing of the URL, so each URL
//! sticks to one parent and a parent's failure moves only its own URLs, to the next in order.

use foldhash::{HashMap, HashMapExt};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{HostPort, ParentConfig};

/// One way to reach the origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Connect to the origin itself.
    Direct,
    /// Send the request to this parent proxy.
    Parent(HostPort),
}

/// The parent table plus which parents are currently marked down.
pub struct Router {
    groups: Vec<ParentConfig>,
    down_for: Duration,
    down: Mutex<HashMap<HostPort, Instant>>,
}

impl Router {
    /// A router over the configured parent groups.
    pub fn new(mut groups: Vec<ParentConfig>, down_for: Duration) -> Router {
        for g in &mut groups {
            for d in &mut g.domains {
                *d = normal_domain(d);
            }
        }
        Router {
            groups,
            down_for,
            down: Mutex::new(HashMap::new()),
        }
    }

    /// The hops to try for a request to `host`, in order. `url` is built only when a parent
    /// group serves the host (it picks the parent); most requests go direct without it.
    pub fn plan(&self, host: &str, url: impl FnOnce() -> String) -> Vec<Hop> {
        let Some(group) = self
            .groups
            .iter()
            .find(|g| matches_domain(&g.domains, host))
        else {
            return vec![Hop::Direct];
        };
        let url = url();
        let mut ring: Vec<&HostPort> = group.proxies.iter().collect();
        ring.sort_by_key(|p| std::cmp::Reverse(weight(p, &url)));
        let now = Instant::now();
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let is_down = |p: &HostPort| down.get(p).is_some_and(|until| *until > now);
        let mut hops: Vec<Hop> = ring
            .iter()
            .filter(|p| !is_down(p))
            .map(|p| Hop::Parent((*p).clone()))
            .collect();
        if group.go_direct {
            hops.push(Hop::Direct);
        } else if hops.is_empty() {
            // Every parent is down and going direct is not allowed: try them anyway.
            hops = ring.iter().map(|p| Hop::Parent((*p).clone())).collect();
        }
        hops
    }

    /// Skips `parent` for the configured down time.
    pub fn mark_down(&self, parent: &HostPort) {
        let until = Instant::now() + self.down_for;
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.insert(parent.clone(), until);
    }

    /// Clears a down mark after a parent answered.
    pub fn mark_up(&self, parent: &HostPort) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.remove(parent);
    }
}

/// A `domains` entry as `host`s are written: lowercase, without leading or trailing dots, so
/// Squid's `.cdn.example` and a fully qualified `cdn.example.` read alike. Done once, when
/// the router is built, not per request.
fn normal_domain(entry: &str) -> String {
    entry.trim_matches('.').to_ascii_lowercase()
}

/// `host` (lowercase, without a trailing dot: `Target` strips it) is one of `domains`
/// ([`normal_domain`]s) or under one.
fn matches_domain(domains: &[String], host: &str) -> bool {
    domains.is_empty()
        || domains.iter().any(|d| {
            host.strip_suffix(d.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
        })
}

/// FNV-1a over parent and URL: stable across builds and platforms.
fn weight(parent: &HostPort, url: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parent
        .to_string()
        .bytes()
        .chain(std::iter::once(0))
        .chain(url.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly; finish with a multiply-xorshift.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HostPort {
        s.parse().unwrap()
    }

    fn router(go_direct: bool) -> Router {
        Router::new(
            vec![ParentConfig {
                domains: vec!["cdn.example".into()],
                proxies: vec![hp("p1:1"), hp("p2:2"), hp("p3:3")],
                go_direct,
            }],
            Duration::from_secs(60),
        )
    }

    #[test]
    fn unmatched_hosts_go_direct() {
        assert_eq!(
            router(true).plan("other.example", || "http://other.example/".into()),
            [Hop::Direct]
        );
        assert_eq!(
            router(true).plan("xcdn.example", || "http://xcdn.example/".into()),
            [Hop::Direct]
        );
    }

    #[test]
    fn domain_entries_match_the_name_and_its_subdomains_only() {
        for (entry, host, want) in [
            ("cdn.example", "cdn.example", true),
            ("cdn.example", "a.cdn.example", true),
            ("cdn.example", "evilcdn.example", false),
            ("cdn.example", "cdn.example.evil", false),
            (".cdn.example", "a.b.cdn.example", true),
            ("CDN.Example", "a.cdn.example", true),
            // Regression: a fully qualified entry matched nothing, so its hosts went direct.
            ("cdn.example.", "cdn.example", true),
            (".cdn.example.", "a.cdn.example", true),
            ("cdn.example.", "evilcdn.example", false),
        ] {
            assert_eq!(
                matches_domain(&[normal_domain(entry)], host),
                want,
                "{entry} ~ {host}"
            );
        }
    }

    #[test]
    fn matched_hosts_use_every_parent_then_direct() {
        let plan = router(true).plan("img.cdn.example", || "http://img.cdn.example/a".into());
        assert_eq!(plan.len(), 4);
        assert_eq!(plan[3], Hop::Direct);
    }

    #[test]
    fn urls_spread_over_parents_and_stick() {
        let r = router(false);
        let mut firsts = HashMap::new();
        for i in 0..300 {
            let url = format!("http://cdn.example/{i}");
            let first = r.plan("cdn.example", || url.clone())[0].clone();
            assert_eq!(r.plan("cdn.example", || url.clone())[0], first, "stable");
            *firsts.entry(format!("{first:?}")).or_insert(0) += 1;
        }
        assert_eq!(firsts.len(), 3, "{firsts:?}");
        assert!(firsts.values().all(|&n| n > 50), "{firsts:?}");
    }

    #[test]
    fn a_down_parent_moves_only_its_urls_to_the_next_in_order() {
        let r = router(true);
        let url = "http://cdn.example/x";
        let before = r.plan("cdn.example", || url.to_string());
        let Hop::Parent(first) = before[0].clone() else {
            panic!()
        };
        r.mark_down(&first);
        let after = r.plan("cdn.example", || url.to_string());
        assert_eq!(after, before[1..]);
        r.mark_up(&first);
        assert_eq!(r.plan("cdn.example", || url.to_string()), before);
    }

    #[test]
    fn all_down_without_go_direct_still_tries_the_parents() {
        let r = router(false);
        for p in ["p1:1", "p2:2", "p3:3"] {
            r.mark_down(&hp(p));
        }
        assert_eq!(
            r.plan("cdn.example", || "http://cdn.example/".into()).len(),
            3
        );
        let r = router(true);
        for p in ["p1:1", "p2:2", "p3:3"] {
            r.mark_down(&hp(p));
        }
        assert_eq!(
            r.plan("cdn.example", || "http://cdn.example/".into()),
            [Hop::Direct]
        );
    }
}
