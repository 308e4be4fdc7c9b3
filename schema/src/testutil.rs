//! Helpers shared by this crate's tests.

/// xorshift: deterministic random numbers, no dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// One of `xs`.
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize].clone()
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A signed number: zero, small, negative or anything.
    pub fn int(&mut self) -> i64 {
        match self.next() % 4 {
            0 => 0,
            1 => (self.next() % 100) as i64,
            2 => -((self.next() % 100_000) as i64),
            _ => self.next() as i64,
        }
    }
}
