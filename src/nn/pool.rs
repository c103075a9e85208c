//! Pooling of channel-last maps: Hiera's q-pool (`nn.MaxPool2d(kernel = stride)` applied to an
//! NHWC map). On CUDA one kernel (`crate::cuda::max_pool`, bit-exact); elsewhere pairwise maxima
//! of strided views.

use crate::nn::ContiguousExt;
use candle_core::{Result, Tensor};

/// The output grid `(H/sh, W/sw)` of pooling `x: [B, H, W, C]`, refused when it is empty (or the
/// stride is zero).
fn pooled_size(x: &Tensor, (sh, sw): (usize, usize)) -> Result<(usize, usize)> {
    let (_, h, w, _) = x.dims4()?;
    match (h.checked_div(sh), w.checked_div(sw)) {
        (Some(ho), Some(wo)) if ho > 0 && wo > 0 => Ok((ho, wo)),
        _ => candle_core::bail!("q-pool: map {h}x{w} smaller than stride {sh}x{sw}"),
    }
}

/// 2x2-style max-pool (kernel = stride, floor mode) of a channel-last map.
/// x: [B, H, W, C] -> [B, H/sh, W/sw, C]
pub fn max_pool_nhwc(x: &Tensor, stride: (usize, usize)) -> Result<Tensor> {
    pooled_size(x, stride)?;
    #[cfg(feature = "cuda")]
    if crate::cuda::max_pool::supports(x) {
        return crate::cuda::max_pool::max_pool_nhwc(x, stride);
    }
    max_pool_nhwc_unfused(x, stride)
}

/// [`max_pool_nhwc`] through candle's ops on every device (the CPU path, and the reference the
/// CUDA kernel is checked against).
pub fn max_pool_nhwc_unfused(x: &Tensor, stride: (usize, usize)) -> Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    let (sh, sw) = stride;
    let (ho, wo) = pooled_size(x, stride)?;
    let x = if ho * sh != h || wo * sw != w {
        x.narrow(1, 0, ho * sh)?.narrow(2, 0, wo * sw)?
    } else {
        x.clone()
    };
    // An elementwise maximum over the sh*sw strided views: candle's reduction over a middle axis
    // of a 6-D tensor was the slowest op of the whole trunk on CUDA (milliseconds per call).
    let x6 = x.reshape((b, ho, sh, wo, sw, c))?;
    let mut acc: Option<Tensor> = None;
    for i in 0..sh {
        for j in 0..sw {
            let v = x6
                .narrow(2, i, 1)?
                .narrow(4, j, 1)?
                .reshape((b, ho, wo, c))?;
            acc = Some(match acc {
                None => v,
                Some(a) => a.maximum(&v)?,
            });
        }
    }
    match acc {
        Some(a) => a.contiguous_fast(),
        None => candle_core::bail!("q-pool: empty stride"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_floors_odd_sizes() {
        let x = Tensor::arange(0f32, 15.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((1, 3, 5, 1))
            .unwrap();
        let y = max_pool_nhwc(&x, (2, 2)).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![6.0, 8.0]);
        // an empty output or a zero stride is an error, not a panic
        assert!(max_pool_nhwc(&x, (4, 2)).is_err());
        assert!(max_pool_nhwc(&x, (0, 2)).is_err());
    }
}
