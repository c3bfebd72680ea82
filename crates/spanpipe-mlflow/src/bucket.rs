//! A token bucket for `max_experiment_creations_per_minute`: `n` tokens at most (a burst of `n` creations), one
//! more every `60 s / n`.

use std::time::{Duration, Instant};

/// Tokens are counted in nanoseconds of refill time, so the arithmetic stays exact.
#[derive(Debug)]
pub struct TokenBucket {
    /// Refill time of one token.
    every: Duration,
    capacity: u32,
    tokens: u32,
    /// When the next token is added (meaningful while `tokens < capacity`).
    next: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `per_minute` tokens (at least 1).
    pub fn per_minute(per_minute: u32) -> Self {
        let capacity = per_minute.max(1);
        TokenBucket {
            every: Duration::from_secs(60) / capacity,
            capacity,
            tokens: capacity,
            next: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        while self.tokens < self.capacity {
            match self.next {
                Some(t) if t <= now => {
                    self.tokens += 1;
                    self.next = (self.tokens < self.capacity).then(|| t + self.every);
                }
                Some(_) => return,
                None => {
                    self.next = Some(now + self.every);
                    return;
                }
            }
        }
    }

    /// Takes a token, or returns how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens == 0 {
            let at = self.next.unwrap_or(now + self.every);
            return Err(at
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)));
        }
        self.tokens -= 1;
        if self.next.is_none() {
            self.next = Some(now + self.every);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(3);
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20));
        assert_eq!(
            b.take(t0 + Duration::from_secs(5)).unwrap_err(),
            Duration::from_secs(15)
        );
        assert!(b.take(t0 + Duration::from_secs(20)).is_ok());
        assert!(b.take(t0 + Duration::from_secs(21)).is_err());
        // A long pause refills to capacity, never beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn zero_means_one() {
        let mut b = TokenBucket::per_minute(0);
        let t0 = Instant::now();
        assert!(b.take(t0).is_ok());
        assert_eq!(b.take(t0).unwrap_err(), Duration::from_secs(60));
    }
}
