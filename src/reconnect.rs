//! When a client tries again: the delay policies (`retryDelay`, `reconnectDelay`) and the retry
//! budget (`maxRetries`). Pure, so it is tested without timers.

use std::time::Duration;

/// A delay option: a fixed number of milliseconds, a uniformly random one in `[min, max]`, or
/// exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
  Fixed(Duration),
  Uniform { min: Duration, max: Duration },
  /// Attempt n waits a random time in `[max(min, d/2), d]`, `d = min(max, min * factor^n)`:
  /// spread out (so clients that lost the same server do not come back in step) yet never under
  /// half the nominal delay, so the backoff still grows.
  Exponential { min: Duration, max: Duration, factor: f64 },
}

impl Delay {
  /// The delay for attempt `n` (0-based); only `Exponential` depends on it.
  pub fn pick(&self, n: u32, rng: &mut Jitter) -> Duration {
    match *self {
      Delay::Fixed(d) => d,
      Delay::Uniform { min, max } => uniform(min, max, rng),
      Delay::Exponential { min, max, factor } => {
        let d = nominal(min, max, factor, n);
        // Half of d, rounded up to a whole millisecond, so the pick is never under d/2.
        let half = Duration::from_millis((d.as_millis() as u64).div_ceil(2));
        uniform(half.max(min), d, rng)
      }
    }
  }

  fn is_exponential(&self) -> bool {
    matches!(self, Delay::Exponential { .. })
  }
}

/// `min(max, min * factor^n)`, at least `min`. Computed in f64 milliseconds, where a huge n or
/// factor only saturates to infinity (then capped by `max`) and cannot overflow.
fn nominal(min: Duration, max: Duration, factor: f64, n: u32) -> Duration {
  if max <= min {
    return min;
  }
  let grown = min.as_millis() as f64 * factor.powi(n.min(i32::MAX as u32) as i32);
  // NaN (a factor that is not a number) or no growth leaves it at min.
  if grown.is_nan() || grown <= min.as_millis() as f64 {
    return min;
  }
  if grown >= max.as_millis() as f64 {
    return max;
  }
  Duration::from_millis(grown as u64)
}

/// A whole number of milliseconds in `[min, max]`, each equally likely.
fn uniform(min: Duration, max: Duration, rng: &mut Jitter) -> Duration {
  if max <= min {
    return min;
  }
  let span = (max - min).as_millis() as u64;
  min + Duration::from_millis(rng.next() % span.saturating_add(1))
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
  /// Between failed attempts; attempt n counts the failures since the start or the last drop.
  pub retry_delay: Delay,
  /// Before the first attempt after an established connection dropped. When exponential, it
  /// also paces the failed attempts after a drop (n = 1, 2, …), instead of `retry_delay`.
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

/// Counts failed attempts in a row against the policy, and picks each delay.
#[derive(Debug)]
pub struct Retries {
  policy: RetryPolicy,
  /// Failed attempts since the last success: what `maxRetries` limits.
  failures: u32,
  /// Failed attempts since the start or the last drop: the backoff's n.
  backoff: u32,
  /// A drop happened and no success since: an exponential `reconnect_delay` paces retries.
  dropped: bool,
  jitter: Jitter,
}

impl Retries {
  pub fn new(policy: RetryPolicy, jitter: Jitter) -> Self {
    Retries {
      policy,
      failures: 0,
      backoff: 0,
      dropped: false,
      jitter,
    }
  }

  /// A connection was established: the budget and the backoff start over.
  pub fn succeeded(&mut self) {
    self.failures = 0;
    self.backoff = 0;
    self.dropped = false;
  }

  /// An attempt failed: the delay before the next one, or `None` to give up.
  pub fn failed(&mut self) -> Option<Duration> {
    self.failures = self.failures.saturating_add(1);
    self.backoff = self.backoff.saturating_add(1);
    if matches!(self.policy.max_retries, Some(max) if self.failures > max) {
      return None;
    }
    let reconnect = &self.policy.reconnect_delay;
    Some(if self.dropped && reconnect.is_exponential() {
      // n = 0 was the wait right after the drop; the k-th failure since then waits per n = k.
      reconnect.pick(self.backoff, &mut self.jitter)
    } else {
      self.policy.retry_delay.pick(self.backoff - 1, &mut self.jitter)
    })
  }

  pub fn failures(&self) -> u32 {
    self.failures
  }

  /// The delay after an established connection dropped: the reconnect schedule's n = 0.
  pub fn after_drop(&mut self) -> Duration {
    self.backoff = 0;
    self.dropped = true;
    self.policy.reconnect_delay.pick(0, &mut self.jitter)
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
    let picks: Vec<_> = (0..1000).map(|n| d.pick(n, &mut j)).collect();
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

  fn backoff(min: u64, max: u64, factor: f64) -> Delay {
    Delay::Exponential {
      min: ms(min),
      max: ms(max),
      factor,
    }
  }

  /// The bounds attempt n must fall in: `[max(min, d/2), d]`, d = min(max, min * factor^n).
  fn bounds(min: u64, max: u64, factor: f64, n: u32) -> (Duration, Duration) {
    let d = ((min as f64) * factor.powi(n as i32)).min(max as f64) as u64;
    (ms(d.div_ceil(2).max(min)), ms(d))
  }

  #[test]
  fn exponential_delays_grow_by_the_factor_within_their_jitter_bounds() {
    let d = backoff(100, 1_000_000, 2.0);
    let mut j = Jitter::seeded(7);
    for n in 0..12 {
      let (low, high) = bounds(100, 1_000_000, 2.0, n);
      for _ in 0..200 {
        let p = d.pick(n, &mut j);
        assert!(p >= low && p <= high, "attempt {n}: {p:?} outside [{low:?}, {high:?}]");
      }
    }
    // Attempt 0 is exactly min (its range [max(min, min/2), min] is one point); 3 is [400, 800].
    assert_eq!(d.pick(0, &mut j), ms(100));
    assert_eq!(bounds(100, 1_000_000, 2.0, 3), (ms(400), ms(800)));
  }

  #[test]
  fn exponential_jitter_reaches_both_ends_of_its_range() {
    let d = backoff(10, 1000, 2.0);
    let mut j = Jitter::seeded(42);
    // n = 2: d = 40, range [20, 40].
    let picks: Vec<_> = (0..2000).map(|_| d.pick(2, &mut j)).collect();
    assert!(picks.contains(&ms(20)) && picks.contains(&ms(40)));
    assert!(picks.iter().all(|p| *p >= ms(20) && *p <= ms(40)));
  }

  #[test]
  fn exponential_delays_stop_growing_at_max() {
    let d = backoff(100, 5000, 3.0);
    let mut j = Jitter::seeded(3);
    for n in [4, 5, 10, 100, 1000, u32::MAX] {
      for _ in 0..100 {
        let p = d.pick(n, &mut j);
        assert!(p >= ms(2500) && p <= ms(5000), "attempt {n}: {p:?} outside [2500 ms, 5000 ms]");
      }
    }
  }

  #[test]
  fn exponential_delays_do_not_overflow_on_huge_values() {
    let mut j = Jitter::seeded(5);
    let huge = backoff(u64::MAX / 4, u64::MAX, 1e300);
    let p = huge.pick(u32::MAX, &mut j);
    assert!(p >= ms(u64::MAX / 2) && p <= ms(u64::MAX));
    // A minimum as large as the maximum (or over it) stays fixed at the minimum.
    assert_eq!(backoff(500, 500, 2.0).pick(9, &mut j), ms(500));
    assert_eq!(backoff(500, 100, 2.0).pick(9, &mut j), ms(500));
    // min 0 cannot grow; a factor that is not a number or not over 1 never goes below min.
    assert_eq!(backoff(0, 100, 2.0).pick(9, &mut j), ms(0));
    assert_eq!(backoff(10, 100, f64::NAN).pick(3, &mut j), ms(10));
    assert_eq!(backoff(10, 100, 0.5).pick(3, &mut j), ms(10));
  }

  fn exponential_policy(retry: Delay, reconnect: Delay) -> RetryPolicy {
    RetryPolicy {
      retry_delay: retry,
      reconnect_delay: reconnect,
      max_retries: None,
    }
  }

  #[test]
  fn retry_delay_with_a_factor_backs_off_from_the_start_and_a_success_resets_it() {
    let policy = exponential_policy(backoff(10, 10_000, 2.0), Delay::Fixed(ms(100)));
    let mut r = Retries::new(policy, Jitter::seeded(11));
    for n in 0..6 {
      let (low, high) = bounds(10, 10_000, 2.0, n);
      let p = r.failed().unwrap();
      assert!(p >= low && p <= high, "failure {}: {p:?} outside [{low:?}, {high:?}]", n + 1);
    }
    r.succeeded();
    assert_eq!(r.failed(), Some(ms(10)), "a success starts the backoff over at min");
  }

  #[test]
  fn retry_delay_with_a_factor_starts_over_after_a_drop_when_reconnect_delay_has_none() {
    let policy = exponential_policy(backoff(10, 10_000, 2.0), Delay::Fixed(ms(100)));
    let mut r = Retries::new(policy, Jitter::seeded(12));
    r.succeeded();
    assert_eq!(r.after_drop(), ms(100));
    assert_eq!(r.failed(), Some(ms(10)));
    let p = r.failed().unwrap();
    assert!(p >= ms(10) && p <= ms(20), "{p:?}");
  }

  #[test]
  fn reconnect_delay_with_a_factor_paces_the_failures_after_a_drop_instead_of_retry_delay() {
    let policy = exponential_policy(Delay::Fixed(ms(1000)), backoff(50, 2000, 2.0));
    let mut r = Retries::new(policy, Jitter::seeded(13));
    // Before any connection, retryDelay applies.
    assert_eq!(r.failed(), Some(ms(1000)));
    r.succeeded();
    assert_eq!(r.after_drop(), ms(50), "n = 0 right after the drop");
    for n in 1..10 {
      let (low, high) = bounds(50, 2000, 2.0, n);
      let p = r.failed().unwrap();
      assert!(p >= low && p <= high, "failure {n} after the drop: {p:?} outside [{low:?}, {high:?}]");
    }
    // A success resets it: the next drop starts at min again, and retryDelay is back for a
    // failure that follows no drop.
    r.succeeded();
    assert_eq!(r.after_drop(), ms(50));
    let p = r.failed().unwrap();
    assert!(p >= ms(50) && p <= ms(100), "first failure after the new drop (n = 1): {p:?}");
    r.succeeded();
    assert_eq!(r.failed(), Some(ms(1000)));
  }

  #[test]
  fn reconnect_delay_with_a_factor_keeps_counting_max_retries_as_before() {
    let policy = RetryPolicy {
      max_retries: Some(2),
      ..exponential_policy(Delay::Fixed(ms(1000)), backoff(50, 2000, 2.0))
    };
    let mut r = Retries::new(policy, Jitter::seeded(14));
    r.succeeded();
    r.after_drop();
    assert!(r.failed().is_some());
    assert!(r.failed().is_some());
    assert_eq!(r.failed(), None);
    assert_eq!(r.failures(), 3);
  }

  #[test]
  fn uniform_reconnect_delay_leaves_failures_after_a_drop_to_retry_delay() {
    let policy = exponential_policy(
      Delay::Fixed(ms(1000)),
      Delay::Uniform {
        min: ms(50),
        max: ms(60),
      },
    );
    let mut r = Retries::new(policy, Jitter::seeded(15));
    r.succeeded();
    let p = r.after_drop();
    assert!(p >= ms(50) && p <= ms(60));
    assert_eq!(r.failed(), Some(ms(1000)));
  }
}
