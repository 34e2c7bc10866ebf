//! Deterministic pseudo-random pixels for unit tests (xorshift32).

/// `len` bytes of noise, the same for the same `seed`.
pub(crate) fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(7);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}
