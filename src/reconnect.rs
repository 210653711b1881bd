//! When a client tries again: the delay policies (`retryDelay`, `reconnectDelay`) and the retry
//! budget (`maxRetries`). Pure, so it is tested without timers.

use std::time::Duration;

/// A delay option: a fixed number of milliseconds or a uniformly random one in `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
  Fixed(Duration),
  Uniform { min: Duration, max: Duration },
}

impl Delay {
  pub fn pick(&self, rng: &mut Jitter) -> Duration {
    match *self {
      Delay::Fixed(d) => d,
      Delay::Uniform { min, max } if max <= min => min,
      Delay::Uniform { min, max } => {
        let span = (max - min).as_millis() as u64;
        min + Duration::from_millis(rng.next() % (span + 1))
      }
    }
  }
}

/// xorshift64*: enough to spread reconnecting clients apart; not for anything secret.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
  pub fn seeded(seed: u64) -> Self {
    Jitter(seed | 1)
  }

  /// Seeds from the clock and an address, so clients started together still differ.
  pub fn from_entropy() -> Self {
    let nanos = std::time::SystemTime::now()
      .duration_since(std::time::UNIX_EPOCH)
      .map(|d| d.as_nanos() as u64)
      .unwrap_or(0);
    let local = 0u8;
    Jitter::seeded(nanos ^ (&local as *const u8 as u64).rotate_left(32) ^ std::process::id() as u64)
  }

  fn next(&mut self) -> u64 {
    let mut x = self.0;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self.0 = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
  /// Between failed attempts.
  pub retry_delay: Delay,
  /// Before the first attempt after an established connection dropped.
  pub reconnect_delay: Delay,
  /// Failed attempts in a row tolerated before giving up; `None` is forever.
  pub max_retries: Option<u32>,
}

impl Default for RetryPolicy {
  fn default() -> Self {
    RetryPolicy {
      retry_delay: Delay::Fixed(Duration::from_millis(1000)),
      reconnect_delay: Delay::Fixed(Duration::from_millis(100)),
      max_retries: None,
    }
  }
}

/// Counts failed attempts in a row against the policy.
#[derive(Debug)]
pub struct Retries {
  policy: RetryPolicy,
  failures: u32,
  jitter: Jitter,
}

impl Retries {
  pub fn new(policy: RetryPolicy, jitter: Jitter) -> Self {
    Retries {
      policy,
      failures: 0,
      jitter,
    }
  }

  /// A connection was established: the budget starts over.
  pub fn succeeded(&mut self) {
    self.failures = 0;
  }

  /// An attempt failed: the delay before the next one, or `None` to give up.
  pub fn failed(&mut self) -> Option<Duration> {
    self.failures = self.failures.saturating_add(1);
    match self.policy.max_retries {
      Some(max) if self.failures > max => None,
      _ => Some(self.policy.retry_delay.pick(&mut self.jitter)),
    }
  }

  pub fn failures(&self) -> u32 {
    self.failures
  }

  /// The delay after an established connection dropped.
  pub fn after_drop(&mut self) -> Duration {
    self.policy.reconnect_delay.pick(&mut self.jitter)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
  }

  #[test]
  fn uniform_delays_stay_inside_their_bounds_and_vary() {
    let d = Delay::Uniform {
      min: ms(10),
      max: ms(20),
    };
    let mut j = Jitter::seeded(42);
    let picks: Vec<_> = (0..1000).map(|_| d.pick(&mut j)).collect();
    assert!(picks.iter().all(|p| *p >= ms(10) && *p <= ms(20)));
    assert!(picks.contains(&ms(10)) && picks.contains(&ms(20)));
  }

  #[test]
  fn max_retries_counts_retries_after_the_first_attempt() {
    let policy = RetryPolicy {
      max_retries: Some(2),
      ..Default::default()
    };
    let mut r = Retries::new(policy, Jitter::seeded(1));
    assert_eq!(r.failed(), Some(ms(1000)));
    assert_eq!(r.failed(), Some(ms(1000)));
    assert_eq!(r.failed(), None);
  }

  #[test]
  fn a_success_restores_the_whole_budget() {
    let policy = RetryPolicy {
      max_retries: Some(1),
      ..Default::default()
    };
    let mut r = Retries::new(policy, Jitter::seeded(1));
    assert!(r.failed().is_some());
    r.succeeded();
    assert!(r.failed().is_some());
    assert!(r.failed().is_none());
  }

  #[test]
  fn zero_retries_gives_up_after_one_failure() {
    let policy = RetryPolicy {
      max_retries: Some(0),
      ..Default::default()
    };
    assert_eq!(Retries::new(policy, Jitter::seeded(1)).failed(), None);
  }

  #[test]
  fn reconnect_uses_its_own_delay() {
    let mut r = Retries::new(RetryPolicy::default(), Jitter::seeded(1));
    assert_eq!(r.after_drop(), ms(100));
  }
}
