//! Layers shared by SAM 2.1 and EdgeTAM: attention, RoPE, position encodings, norms,
//! interpolation and the convolution op.

pub mod attention;
pub mod conv;
pub mod flops;
pub mod interpolate;
pub mod linear;
pub mod mlp;
pub mod norm;
pub mod pool;
pub mod position_encoding;
pub mod rope;

use crate::cuda::tuning::ConvTuner;
use std::sync::Arc;

/// Build-time options of a model's layers, chosen by whoever builds the model (the CLI, the
/// benchmark, a test) and held by the layers that use them, the way candle-transformers' models
/// hold `use_flash_attn`. Every constructor of a layer that convolves or attends takes them.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The convolution settings and algorithm choices every [`conv::Conv2d`] of the model uses on
    /// CUDA (cudnn builds). The builder keeps a clone to read the choices afterwards.
    pub conv_tuner: Arc<ConvTuner>,
    /// Whether attention may run the fused CUDA kernel (`crate::cuda::flash_attn`) where it
    /// covers the inputs. Off for A/B comparisons with the unfused path
    /// (`VOSBENCH_ATTENTION=unfused`, read once by the CLI).
    pub fused_attention: bool,
}

impl Default for ModelOptions {
    /// A tuner of its own with the default options (heuristic algorithms within 256 MiB), and
    /// the fused attention kernel where it applies.
    fn default() -> Self {
        Self {
            conv_tuner: Arc::new(ConvTuner::default()),
            fused_attention: true,
        }
    }
}

impl ModelOptions {
    pub fn new(conv_tuner: Arc<ConvTuner>, fused_attention: bool) -> Self {
        Self {
            conv_tuner,
            fused_attention,
        }
    }
}

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
