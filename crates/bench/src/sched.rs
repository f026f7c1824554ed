//! Open-loop send schedule. Message `k` is *intended* for `start + k * interval`; a sender
//! that wakes late sends everything that is due at once, each stamped with its intended
//! time, so a stalled server shows up as latency instead of as fewer samples (no
//! coordinated omission).

/// A fixed-rate schedule in nanoseconds on the clock of [`crate::wire::now_ns`].
#[derive(Debug, Clone)]
pub struct Schedule {
    start: u64,
    interval: u64,
    /// Messages already handed out (sent).
    taken: u64,
}

impl Schedule {
    /// `rate` messages per second from `start`. A rate of 0 never sends.
    pub fn new(start: u64, rate: f64) -> Schedule {
        let interval = if rate > 0.0 {
            (1e9 / rate).max(1.0) as u64
        } else {
            u64::MAX
        };
        Schedule {
            start,
            interval,
            taken: 0,
        }
    }

    /// [`Schedule::new`] for sender `slot` of `slots`, its first message offset by
    /// `slot / slots` of an interval. Senders that all started at once would otherwise
    /// send in lock step: a burst from every sender at each tick, which measures how fast
    /// the server drains a burst instead of its latency at the offered rate.
    pub fn staggered(start: u64, rate: f64, slot: u64, slots: u64) -> Schedule {
        let mut s = Schedule::new(start, rate);
        if s.interval != u64::MAX && slots > 1 {
            let offset = u128::from(s.interval) * u128::from(slot % slots) / u128::from(slots);
            s.start = s.start.saturating_add(offset as u64);
        }
        s
    }

    /// Intended time of the next message to send.
    pub fn next_time(&self) -> u64 {
        self.start
            .saturating_add(self.taken.saturating_mul(self.interval))
    }

    /// How many messages are due at `now` and not yet taken.
    pub fn due(&self, now: u64) -> u64 {
        if now < self.start || self.interval == u64::MAX {
            return 0;
        }
        ((now - self.start) / self.interval + 1).saturating_sub(self.taken)
    }

    /// Takes the next message: returns its intended send time.
    pub fn take(&mut self) -> u64 {
        let t = self.next_time();
        self.taken += 1;
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_wake_up_makes_everything_due_with_intended_times() {
        // 1000 msg/s: one every 1 ms from t = 10 ms.
        let mut s = Schedule::new(10_000_000, 1000.0);
        assert_eq!(s.due(9_000_000), 0);
        assert_eq!(s.due(10_000_000), 1);
        assert_eq!(s.take(), 10_000_000);
        assert_eq!(s.due(10_500_000), 0);
        assert_eq!(s.next_time(), 11_000_000);
        // The sender oversleeps by 5 ms: six messages are due, stamped 11..16 ms.
        assert_eq!(s.due(16_200_000), 6);
        let stamps: Vec<u64> = (0..6).map(|_| s.take()).collect();
        assert_eq!(stamps[0], 11_000_000);
        assert_eq!(stamps[5], 16_000_000);
        assert_eq!(s.due(16_200_000), 0);
    }

    #[test]
    fn staggered_senders_spread_over_one_interval() {
        // 4 senders at 10 msg/s: first messages at 0, 25, 50 and 75 ms.
        let firsts: Vec<u64> = (0..4)
            .map(|k| Schedule::staggered(0, 10.0, k, 4).next_time())
            .collect();
        assert_eq!(firsts, [0, 25_000_000, 50_000_000, 75_000_000]);
        let mut s = Schedule::staggered(0, 10.0, 3, 4);
        s.take();
        assert_eq!(s.next_time(), 175_000_000, "then one interval apart");
        assert_eq!(Schedule::staggered(0, 0.0, 3, 4).due(u64::MAX / 2), 0);
    }

    #[test]
    fn zero_rate_never_sends() {
        let s = Schedule::new(0, 0.0);
        assert_eq!(s.due(u64::MAX / 2), 0);
    }
}
