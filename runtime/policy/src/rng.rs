//! The deterministic source of jitter. Its state lives in each task's serialised state, so a
//! restored daemon and `hmrt simulate` draw exactly the same delays.

/// splitmix64 (Steele, Lea, Flood 2014): one u64 of state, good enough for jitter, and trivially
/// serialisable.
pub(crate) fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform draw in [-1, 1).
pub(crate) fn next_signed_unit(state: &mut u64) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    let u = (next_u64(state) >> 11) as f64 / (1u64 << 53) as f64;
    2.0 * u - 1.0
}

/// The initial state of a task's generator: the engine's seed mixed with the task's name, so
/// tasks draw different jitter and adding a task does not change the others'.
pub(crate) fn seed_for(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    let mut s = seed ^ h;
    next_u64(&mut s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_unit_stays_in_range_and_spreads() {
        let mut s = seed_for(7, "web");
        let draws: Vec<f64> = (0..10_000).map(|_| next_signed_unit(&mut s)).collect();
        assert!(draws.iter().all(|d| (-1.0..1.0).contains(d)));
        assert!(draws.iter().any(|d| *d < -0.9));
        assert!(draws.iter().any(|d| *d > 0.9));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
    }

    #[test]
    fn seeds_differ_by_task_and_by_seed() {
        assert_ne!(seed_for(1, "web"), seed_for(1, "db"));
        assert_ne!(seed_for(1, "web"), seed_for(2, "web"));
        assert_eq!(seed_for(1, "web"), seed_for(1, "web"));
    }
}
