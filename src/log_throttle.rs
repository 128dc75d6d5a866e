//! Log lines that repeat per message or per connection, rate-limited: a fault that repeats
//! (a closed pipe, a flood of refused connections) fills the counters, not the log. Used by
//! the listeners and the sinks alike; it counts nothing of its own in `/metrics`.

use std::sync::Mutex;

/// Lets one log line through per interval and counts those held back, so that a fault that
/// repeats per message or per connection (a closed pipe, a flood of refused connections)
/// fills the counters, not the log.
#[derive(Debug)]
pub struct Throttle {
    every: std::time::Duration,
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl Throttle {
    pub const fn new(every: std::time::Duration) -> Self {
        Self {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(n)` when a line may be logged now (`n` lines were held back since the last
    /// one); `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        let mut state = self.state.lock().expect("throttle lock");
        let now = std::time::Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.every => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

/// `" (N more like it held back)"` for a throttled line, or nothing.
pub fn held_back(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like it held back)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let t = Throttle::new(std::time::Duration::from_secs(3600));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        let t = Throttle::new(std::time::Duration::ZERO);
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
    }
}
