//! Counting a forward pass's arithmetic from the shapes its layers see.
//!
//! Every product-sum layer adds its floating-point operations (a multiply and an add are 2 FLOPs)
//! as it runs: [`crate::nn::linear::Linear`] and the few explicit matmuls of the models (the mask
//! decoder's hypernetwork product, resizes, which run as dense products with interpolation
//! matrices), convolutions
//! ([`crate::nn::conv`]) and attention ([`crate::nn::attention::sdpa`]: the score and the value
//! products). Elementwise work (norms, activations, softmax, additions, copies) is not counted:
//! it is a few percent of the FLOPs of these models and bound by memory, not arithmetic.
//!
//! The count is per thread and off unless a [`FlopCounter`] is alive on that thread, so layers
//! pay one thread-local read when nobody counts. A CUDA graph replay runs no layer code, so count
//! on eager runs (`vosbench info --flops` does).

use std::cell::Cell;

/// What a counted operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Linear layers and other matrix products.
    Matmul,
    /// Convolutions and transposed convolutions.
    Conv,
    /// The two products of attention (scores and weighted values).
    Attention,
}

/// FLOPs by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlopCount {
    pub matmul: u64,
    pub conv: u64,
    pub attention: u64,
}

impl FlopCount {
    pub fn total(&self) -> u64 {
        self.matmul + self.conv + self.attention
    }
}

thread_local! {
    static COUNT: Cell<Option<FlopCount>> = const { Cell::new(None) };
}

/// Whether this thread is counting (layers skip working out their count otherwise).
#[inline]
pub fn counting() -> bool {
    COUNT.with(|c| c.get().is_some())
}

/// Add `flops` of `kind` to this thread's count, if one is running.
#[inline]
pub fn add(kind: Kind, flops: u64) {
    COUNT.with(|c| {
        if let Some(mut n) = c.get() {
            match kind {
                Kind::Matmul => n.matmul += flops,
                Kind::Conv => n.conv += flops,
                Kind::Attention => n.attention += flops,
            }
            c.set(Some(n));
        }
    })
}

/// A matrix product of `m x k` by `k x n`, `batch` times.
#[inline]
pub fn add_matmul(kind: Kind, batch: usize, m: usize, k: usize, n: usize) {
    add(
        kind,
        2 * (batch as u64) * (m as u64) * (k as u64) * (n as u64),
    );
}

/// Counts this thread's FLOPs while alive; dropping it stops counting (a counter started inside
/// another one pauses the outer count until it is dropped).
#[derive(Debug)]
pub struct FlopCounter {
    outer: Option<FlopCount>,
}

impl FlopCounter {
    pub fn start() -> Self {
        let outer = COUNT.with(|c| c.replace(Some(FlopCount::default())));
        Self { outer }
    }

    /// The FLOPs counted since the start or the last `take`, and start again from zero.
    pub fn take(&self) -> FlopCount {
        COUNT.with(|c| c.replace(Some(FlopCount::default())).unwrap_or_default())
    }
}

impl Drop for FlopCounter {
    fn drop(&mut self) {
        COUNT.with(|c| c.set(self.outer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_while_a_counter_lives() {
        add(Kind::Matmul, 5); // nobody counts: dropped
        assert!(!counting());
        let c = FlopCounter::start();
        assert!(counting());
        add_matmul(Kind::Matmul, 2, 3, 4, 5);
        add(Kind::Conv, 7);
        {
            let inner = FlopCounter::start();
            add(Kind::Attention, 11);
            assert_eq!(inner.take().attention, 11);
        }
        add(Kind::Attention, 1);
        let n = c.take();
        assert_eq!(
            n,
            FlopCount {
                matmul: 240,
                conv: 7,
                attention: 1
            }
        );
        assert_eq!(n.total(), 248);
        assert_eq!(c.take(), FlopCount::default());
        drop(c);
        assert!(!counting());
        add(Kind::Matmul, 5);
        let c = FlopCounter::start();
        assert_eq!(c.take().total(), 0);
        // Layers' own counts are tested beside them (nn::linear).
    }
}
