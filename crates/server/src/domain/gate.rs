//! The gate: rate limits on sends (per user), registrations and logins (per IP address),
//! and login attempts per account (against password guessing spread over many
//! addresses). A refusal says how long to wait; nothing is dropped silently.
//!
//! Keyed limiter state is pruned on a timer ([`Gate::prune`]) so memory stays bounded
//! however many keys pass through.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use natter_protocol::UserId;

use super::{DomainError, DomainResult};
use crate::config::Config;

pub struct Gate {
    enabled: bool,
    /// Checks since the last prune; every [`PRUNE_EVERY`] checks the state is pruned.
    checks: std::sync::atomic::AtomicU64,
    sends: DefaultKeyedRateLimiter<UserId>,
    register_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

const PRUNE_EVERY: u64 = 10_000;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn quota(per: Duration, count: u32, burst: u32) -> Quota {
    let period = per / count.max(1);
    Quota::with_period(period.max(Duration::from_micros(1)))
        .unwrap_or_else(|| Quota::per_second(nz(count)))
        .allow_burst(nz(burst))
}

fn check<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    what: &'static str,
) -> DomainResult<()> {
    limiter
        .check_key(key)
        .map_err(|not_until| DomainError::Throttled {
            what,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
}

impl Gate {
    pub fn new(c: &Config) -> Gate {
        let minute = Duration::from_secs(60);
        Gate {
            enabled: c.rate_limits,
            checks: std::sync::atomic::AtomicU64::new(0),
            sends: DefaultKeyedRateLimiter::keyed(quota(
                Duration::from_secs(1),
                c.send_per_sec,
                c.send_burst,
            )),
            register_ip: DefaultKeyedRateLimiter::keyed(quota(
                minute,
                c.register_per_min,
                c.register_burst,
            )),
            login_ip: DefaultKeyedRateLimiter::keyed(quota(minute, c.login_per_min, c.login_burst)),
            login_account: DefaultKeyedRateLimiter::keyed(quota(
                minute,
                c.login_account_per_min,
                c.login_account_burst,
            )),
        }
    }

    fn tick(&self) {
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
    }

    pub fn send(&self, user: UserId) -> DomainResult<()> {
        if !self.enabled {
            return Ok(());
        }
        self.tick();
        check(&self.sends, &user, "messages")
    }

    pub fn register(&self, ip: Option<IpAddr>) -> DomainResult<()> {
        self.tick();
        match ip {
            Some(ip) if self.enabled => {
                check(&self.register_ip, &ip, "registrations from your address")
            }
            _ => Ok(()),
        }
    }

    pub fn login(&self, ip: Option<IpAddr>, account: &str) -> DomainResult<()> {
        if !self.enabled {
            return Ok(());
        }
        self.tick();
        if let Some(ip) = ip {
            check(&self.login_ip, &ip, "login attempts from your address")?;
        }
        check(
            &self.login_account,
            &account.to_owned(),
            "login attempts for this account",
        )
    }

    /// Forgets keys whose limits are back to full, bounding memory.
    pub fn prune(&self) {
        self.sends.retain_recent();
        self.register_ip.retain_recent();
        self.login_ip.retain_recent();
        self.login_account.retain_recent();
        self.sends.shrink_to_fit();
        self.register_ip.shrink_to_fit();
        self.login_ip.shrink_to_fit();
        self.login_account.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_with_a_wait() {
        let c = Config {
            send_per_sec: 1,
            send_burst: 3,
            ..Config::default()
        };
        let g = Gate::new(&c);
        for _ in 0..3 {
            g.send(1).unwrap();
        }
        match g.send(1) {
            Err(DomainError::Throttled { retry_after, .. }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        g.send(2).expect("other users are not affected");
        let off = Gate::new(&Config {
            rate_limits: false,
            send_burst: 1,
            ..Config::default()
        });
        for _ in 0..100 {
            off.send(1).unwrap();
        }
    }

    #[test]
    fn login_is_limited_per_account_across_addresses() {
        let c = Config {
            login_account_per_min: 1,
            login_account_burst: 2,
            ..Config::default()
        };
        let g = Gate::new(&c);
        g.login(Some([10, 0, 0, 1].into()), "alice").unwrap();
        g.login(Some([10, 0, 0, 2].into()), "alice").unwrap();
        assert!(g.login(Some([10, 0, 0, 3].into()), "alice").is_err());
        g.login(Some([10, 0, 0, 3].into()), "bob").unwrap();
    }
}
