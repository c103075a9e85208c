//! Layers shared by SAM 2.1 and EdgeTAM: attention, RoPE, position encodings, norms,
//! interpolation and the convolution op.

pub mod attention;
pub mod conv;
pub mod interpolate;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod position_encoding;
pub mod rope;

/// `.contiguous()` through vosbench's strided-copy kernel on CUDA (`crate::cuda::strided_copy`),
/// candle's copy elsewhere. Used on the hot paths: head splits and merges, window partitions,
/// permuted reshapes.
pub trait ContiguousExt {
    fn contiguous_fast(&self) -> candle_core::Result<candle_core::Tensor>;
}

impl ContiguousExt for candle_core::Tensor {
    fn contiguous_fast(&self) -> candle_core::Result<candle_core::Tensor> {
        #[cfg(feature = "cuda")]
        {
            crate::cuda::strided_copy::contiguous(self)
        }
        #[cfg(not(feature = "cuda"))]
        {
            self.contiguous()
        }
    }
}
