//! The Hiera trunk of SAM 2.1 (`sam2/modeling/backbones/hieradet.py`), at `image_encoder.trunk`.
//!
//! Activations run channel-last (`[B, H, W, C]`) like the PyTorch module; the four stage outputs
//! are returned channel-first. The block layout (dims, heads, windows, q-pool blocks, the window
//! lag of each stage's opening block) is derived from [`HieraConfig`] exactly as `Hiera.__init__`
//! does (architecture.md §1.8, §3.1).

use crate::config::{FencePoint, HieraConfig};
use crate::exec::ExecCtx;
use crate::nn::attention::sdpa;
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::interpolate::bicubic;
use crate::nn::linear::{Activation, Linear};
use crate::nn::norm::layer_norm;
use crate::nn::pool::max_pool_nhwc;
use crate::nn::{ContiguousExt, ModelOptions};
use candle_core::{Module, Result, Tensor};
use candle_nn::{Conv2dConfig, LayerNorm, VarBuilder};

/// Hiera LayerNorms use eps 1e-6 (`hieradet.py` passes it explicitly).
const LN_EPS: f64 = 1e-6;

/// Apply a Linear to the last axis of any-rank x through a single 2D matmul.
fn linear_last(l: &Linear, x: &Tensor) -> Result<Tensor> {
    linear_last_act(l, x, None)
}

/// [`linear_last`] followed by `act` (one pass with the bias on CUDA, `Linear::forward_act`).
fn linear_last_act(l: &Linear, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let cin = dims[dims.len() - 1];
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let x2 = x.reshape((rows, cin))?;
    let y = match act {
        Some(a) => l.forward_act(&x2, a)?,
        None => l.forward(&x2)?,
    };
    let cout = y.dim(1)?;
    let mut out_dims = dims;
    let last = out_dims.len() - 1;
    out_dims[last] = cout;
    y.reshape(out_dims)
}

/// Zero-pad the bottom/right to a multiple of `ws` and cut into windows (row-major order).
/// x: [B, H, W, C] -> ([B*nW, ws, ws, C], (Hp, Wp))
fn window_partition(x: &Tensor, ws: usize) -> Result<(Tensor, (usize, usize))> {
    let (b, h, w, c) = x.dims4()?;
    let pad_h = (ws - h % ws) % ws;
    let pad_w = (ws - w % ws) % ws;
    let x = if pad_h > 0 || pad_w > 0 {
        x.pad_with_zeros(1, 0, pad_h)?.pad_with_zeros(2, 0, pad_w)?
    } else {
        x.clone()
    };
    let (hp, wp) = (h + pad_h, w + pad_w);
    let windows = x
        .reshape((b, hp / ws, ws, wp / ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous_fast()?
        .reshape((b * (hp / ws) * (wp / ws), ws, ws, c))?;
    Ok((windows, (hp, wp)))
}

/// Inverse of [`window_partition`], cropping the padding.
/// windows: [B*nW, ws, ws, C] -> [B, H, W, C]
fn window_unpartition(
    windows: &Tensor,
    ws: usize,
    pad_hw: (usize, usize),
    hw: (usize, usize),
) -> Result<Tensor> {
    let (hp, wp) = pad_hw;
    let (h, w) = hw;
    let (nw, _, _, c) = windows.dims4()?;
    let per_image = (hp / ws) * (wp / ws);
    if per_image == 0 || nw % per_image != 0 {
        candle_core::bail!("window unpartition: {nw} windows do not tile {hp}x{wp} by {ws}")
    }
    let b = nw / per_image;
    let x = windows
        .reshape((b, hp / ws, wp / ws, ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous_fast()?
        .reshape((b, hp, wp, c))?;
    if hp > h || wp > w {
        x.narrow(1, 0, h)?.narrow(2, 0, w)?.contiguous_fast()
    } else {
        Ok(x)
    }
}

/// `MultiScaleAttention`: qkv projection, optional q max-pool, SDPA without mask, output proj.
#[derive(Debug, Clone)]
pub struct MultiScaleAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    dim_out: usize,
    q_stride: Option<(usize, usize)>,
    /// Query rows per SDPA call (bounds the score matrix of global blocks); None = all at once.
    chunk: Option<usize>,
    /// May use the fused CUDA attention kernel ([`ModelOptions::fused_attention`]).
    fused: bool,
}

impl MultiScaleAttention {
    pub fn new(
        dim: usize,
        dim_out: usize,
        num_heads: usize,
        q_stride: Option<(usize, usize)>,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        if num_heads == 0 || !dim_out.is_multiple_of(num_heads) {
            candle_core::bail!(
                "hiera attention: {dim_out} channels do not split into {num_heads} heads"
            )
        }
        let qkv = crate::nn::linear::linear(dim, 3 * dim_out, vb.pp("qkv"))?;
        let proj = crate::nn::linear::linear(dim_out, dim_out, vb.pp("proj"))?;
        Ok(Self {
            qkv,
            proj,
            num_heads,
            dim_out,
            q_stride,
            chunk: None,
            fused: opts.fused_attention,
        })
    }

    /// x: [B, H, W, dim] -> [B, H', W', dim_out] (H' = H/2 with q-pool); stages profiled in
    /// `ctx`.
    pub fn forward_ctx(&self, x: &Tensor, ctx: &ExecCtx) -> Result<Tensor> {
        let (b, h, w, _) = x.dims4()?;
        let nh = self.num_heads;
        let hd = self.dim_out / nh;
        // [B, HW, 3, heads, hd]; the 3 axis is outermost in the qkv output.
        let dev = x.device();
        let qkv = ctx
            .stage("hiera.attn.qkv", dev, || linear_last(&self.qkv, x))?
            .reshape((b, h * w, 3, nh, hd))?;
        let mut q = qkv.narrow(2, 0, 1)?.squeeze(2)?;
        let k = qkv.narrow(2, 1, 1)?.squeeze(2)?;
        let v = qkv.narrow(2, 2, 1)?.squeeze(2)?;
        let (mut ho, mut wo) = (h, w);
        if let Some(stride) = self.q_stride {
            let pooled = max_pool_nhwc(&q.reshape((b, h, w, nh * hd))?, stride)?;
            ho = pooled.dim(1)?;
            wo = pooled.dim(2)?;
            q = pooled.reshape((b, ho * wo, nh, hd))?;
        }
        let (q, k, v) = ctx.stage("hiera.attn.heads", dev, || {
            Ok::<_, candle_core::Error>((
                q.transpose(1, 2)?.contiguous_fast()?,
                k.transpose(1, 2)?.contiguous_fast()?,
                v.transpose(1, 2)?.contiguous_fast()?,
            ))
        })?;
        // [B, heads, N', hd]
        let o = ctx.stage("hiera.attn.sdpa", dev, || {
            sdpa(&q, &k, &v, self.chunk, self.fused)
        })?;
        let o = o
            .transpose(1, 2)?
            .contiguous_fast()?
            .reshape((b, ho, wo, self.dim_out))?;
        ctx.stage("hiera.attn.proj", dev, || linear_last(&self.proj, &o))
    }
}

impl Module for MultiScaleAttention {
    /// As [`MultiScaleAttention::forward_ctx`] with the default context.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_ctx(x, &ExecCtx::default())
    }
}

/// `MultiScaleBlock`: (windowed) attention with optional q-pooling, then a GELU MLP.
#[derive(Debug, Clone)]
pub struct MultiScaleBlock {
    norm1: LayerNorm,
    attn: MultiScaleAttention,
    norm2: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    /// Present when dim != dim_out (the q-pool block opening a stage).
    proj: Option<Linear>,
    window_size: usize,
    q_stride: Option<(usize, usize)>,
}

impl MultiScaleBlock {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dim: usize,
        dim_out: usize,
        num_heads: usize,
        mlp_ratio: f64,
        q_stride: Option<(usize, usize)>,
        window_size: usize,
        opts: &ModelOptions,
        vb: VarBuilder,
    ) -> Result<Self> {
        let norm1 = layer_norm(dim, LN_EPS, vb.pp("norm1"))?;
        let attn =
            MultiScaleAttention::new(dim, dim_out, num_heads, q_stride, opts, vb.pp("attn"))?;
        let norm2 = layer_norm(dim_out, LN_EPS, vb.pp("norm2"))?;
        let hidden = (dim_out as f64 * mlp_ratio) as usize;
        let mlp_in = crate::nn::linear::linear(dim_out, hidden, vb.pp("mlp").pp("layers").pp(0))?;
        let mlp_out = crate::nn::linear::linear(hidden, dim_out, vb.pp("mlp").pp("layers").pp(1))?;
        let proj = if dim != dim_out {
            Some(crate::nn::linear::linear(dim, dim_out, vb.pp("proj"))?)
        } else {
            None
        };
        Ok(Self {
            norm1,
            attn,
            norm2,
            mlp_in,
            mlp_out,
            proj,
            window_size,
            q_stride,
        })
    }

    pub fn window_size(&self) -> usize {
        self.window_size
    }

    pub fn q_stride(&self) -> Option<(usize, usize)> {
        self.q_stride
    }

    /// Process at most `chunk` query rows per attention call (None: all at once).
    pub fn set_attention_chunk(&mut self, chunk: Option<usize>) {
        self.attn.chunk = chunk;
    }

    /// x: [B, H, W, dim] -> [B, H', W', dim_out]; stages profiled in `ctx`.
    pub fn forward_ctx(&self, x: &Tensor, ctx: &ExecCtx) -> Result<Tensor> {
        let dev = x.device();
        let xn = ctx.stage("hiera.norm1", dev, || self.norm1.forward(x))?;
        let shortcut = match &self.proj {
            Some(proj) => {
                let s = linear_last(proj, &xn)?;
                match self.q_stride {
                    Some(st) => max_pool_nhwc(&s, st)?,
                    None => s,
                }
            }
            None => x.clone(),
        };
        let (_, h, w, _) = xn.dims4()?;
        let mut ws = self.window_size;
        let (attn_in, mut pad_hw) = if ws > 0 {
            ctx.stage("hiera.window_partition", dev, || window_partition(&xn, ws))?
        } else {
            (xn.clone(), (h, w))
        };
        let mut y = ctx.stage("hiera.attn", dev, || self.attn.forward_ctx(&attn_in, ctx))?;
        let (mut oh, mut ow) = (h, w);
        if let Some((sh, _)) = self.q_stride {
            ws = self.window_size / sh;
            oh = shortcut.dim(1)?;
            ow = shortcut.dim(2)?;
            if ws > 0 {
                pad_hw = (oh + (ws - oh % ws) % ws, ow + (ws - ow % ws) % ws);
            }
        }
        if self.window_size > 0 {
            y = ctx.stage("hiera.window_unpartition", dev, || {
                window_unpartition(&y, ws, pad_hw, (oh, ow))
            })?;
        }
        let x = (shortcut + y)?;
        ctx.stage("hiera.mlp", dev, || {
            let m = linear_last_act(
                &self.mlp_in,
                &self.norm2.forward(&x)?,
                Some(Activation::GeluErf),
            )?;
            let m = linear_last(&self.mlp_out, &m)?;
            x + m
        })
    }
}

impl Module for MultiScaleBlock {
    /// As [`MultiScaleBlock::forward_ctx`] with the default context.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_ctx(x, &ExecCtx::default())
    }
}

/// One block's hyperparameters as `Hiera.__init__` lays them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub dim: usize,
    pub dim_out: usize,
    pub num_heads: usize,
    pub window_size: usize,
    pub q_pool: bool,
}

/// The per-block layout and the stage-end block indices of a Hiera config.
pub fn block_layout(cfg: &HieraConfig) -> Result<(Vec<BlockSpec>, Vec<usize>)> {
    let n_stages = cfg.stages.len();
    if n_stages == 0 || cfg.window_spec.len() != n_stages {
        candle_core::bail!(
            "hiera: {} stages but {} window sizes",
            n_stages,
            cfg.window_spec.len()
        )
    }
    if cfg.stages.contains(&0) {
        candle_core::bail!("hiera: every stage needs at least one block")
    }
    if cfg.q_pool >= n_stages {
        candle_core::bail!(
            "hiera: q_pool {} must be below the stage count {n_stages}",
            cfg.q_pool
        )
    }
    let stage_ends: Vec<usize> = (1..=n_stages)
        .map(|i| cfg.stages[..i].iter().sum::<usize>() - 1)
        .collect();
    let q_pool_blocks: Vec<usize> = stage_ends[..n_stages - 1]
        .iter()
        .map(|e| e + 1)
        .take(cfg.q_pool)
        .collect();
    let depth: usize = cfg.stages.iter().sum();
    let mut dim = cfg.embed_dim;
    let mut heads = cfg.num_heads;
    let mut cur_stage = 1;
    let mut blocks = Vec::with_capacity(depth);
    for i in 0..depth {
        let mut dim_out = dim;
        // The opening block of a stage still uses the previous stage's window size.
        let mut window_size = cfg.window_spec[cur_stage - 1];
        if cfg.global_att_blocks.contains(&i) {
            window_size = 0;
        }
        if i > 0 && stage_ends.contains(&(i - 1)) {
            dim_out = (dim as f64 * cfg.dim_mul) as usize;
            heads = (heads as f64 * cfg.head_mul) as usize;
            cur_stage += 1;
        }
        blocks.push(BlockSpec {
            dim,
            dim_out,
            num_heads: heads,
            window_size,
            q_pool: q_pool_blocks.contains(&i),
        });
        dim = dim_out;
    }
    Ok((blocks, stage_ends))
}

/// The Hiera trunk. forward: image [B, 3, S, S] -> 4 stage outputs `[B, C_k, S/2^(k+2), S/2^(k+2)]`.
#[derive(Debug, Clone)]
pub struct Hiera {
    patch_embed: Conv2d,
    /// [1, C1, bh, bw]
    pos_embed: Tensor,
    /// [1, C1, wh, ww]
    pos_embed_window: Tensor,
    /// Position embedding precomputed for one patch-grid size, `[1, h, w, C1]`.
    pos_cached: Option<((usize, usize), Tensor)>,
    blocks: Vec<MultiScaleBlock>,
    specs: Vec<BlockSpec>,
    stage_ends: Vec<usize>,
}

impl Hiera {
    pub fn new(cfg: &HieraConfig, opts: &ModelOptions, vb: VarBuilder) -> Result<Self> {
        let c1 = cfg.embed_dim;
        let pe_cfg = Conv2dConfig {
            padding: 3,
            stride: 4,
            ..Default::default()
        };
        let patch_embed = conv2d(3, c1, 7, pe_cfg, opts, vb.pp("patch_embed").pp("proj"))?;
        let [bh, bw] = cfg.window_pos_embed_bkg_spatial_size;
        let pos_embed = vb.get((1, c1, bh, bw), "pos_embed")?;
        let [wh, ww] = cfg.window_pos_embed_size;
        let pos_embed_window = vb.get((1, c1, wh, ww), "pos_embed_window")?;
        let (specs, stage_ends) = block_layout(cfg)?;
        let q_stride = (cfg.q_stride[0], cfg.q_stride[1]);
        let vbb = vb.pp("blocks");
        let blocks = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                MultiScaleBlock::new(
                    s.dim,
                    s.dim_out,
                    s.num_heads,
                    cfg.mlp_ratio,
                    s.q_pool.then_some(q_stride),
                    s.window_size,
                    opts,
                    vbb.pp(i),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch_embed,
            pos_embed,
            pos_embed_window,
            pos_cached: None,
            blocks,
            specs,
            stage_ends,
        })
    }

    /// Bound the attention score matrix to `chunk` query rows at a time in every block (the
    /// global blocks at 1024 px otherwise hold `heads * 4096 * 4096` scores). None: unchunked.
    pub fn with_attention_chunk(mut self, chunk: Option<usize>) -> Self {
        for b in &mut self.blocks {
            b.set_attention_chunk(chunk);
        }
        self
    }

    /// Precompute the position embedding for square `image_size` inputs (patch grid S/4).
    pub fn with_image_size(mut self, image_size: usize) -> Result<Self> {
        let (h, w) = self.patch_grid((image_size, image_size));
        let pe = self.pos_embed_for((h, w))?;
        self.pos_cached = Some(((h, w), pe));
        Ok(self)
    }

    /// Output size of the stride-4, kernel-7, padding-3 patch embedding.
    fn patch_grid(&self, hw: (usize, usize)) -> (usize, usize) {
        ((hw.0 + 6 - 7) / 4 + 1, (hw.1 + 6 - 7) / 4 + 1)
    }

    /// Channel widths of the four outputs, highest resolution first.
    pub fn channels(&self) -> Vec<usize> {
        self.stage_ends
            .iter()
            .map(|&i| self.specs[i].dim_out)
            .collect()
    }

    pub fn blocks(&self) -> &[MultiScaleBlock] {
        &self.blocks
    }

    pub fn block_specs(&self) -> &[BlockSpec] {
        &self.specs
    }

    pub fn stage_ends(&self) -> &[usize] {
        &self.stage_ends
    }

    /// `patch_embed`: x [B, 3, H, W] -> [B, H/4, W/4, C1] (channel-last)
    pub fn patch_embed(&self, x: &Tensor) -> Result<Tensor> {
        self.patch_embed.forward(x)?.permute((0, 2, 3, 1))
    }

    /// `_get_pos_embed((h, w))`: bicubic-resized `pos_embed` plus the tiled window embedding,
    /// `[1, h, w, C1]`.
    pub fn pos_embed_for(&self, hw: (usize, usize)) -> Result<Tensor> {
        let (h, w) = hw;
        let (_, c, wh, ww) = self.pos_embed_window.dims4()?;
        if h % wh != 0 || w % ww != 0 {
            candle_core::bail!(
                "hiera: patch grid {h}x{w} is not a multiple of the {wh}x{ww} window embedding"
            )
        }
        let pe = bicubic(&self.pos_embed, (h, w))?;
        let win = self
            .pos_embed_window
            .reshape((1, c, 1, wh, 1, ww))?
            .broadcast_as((1, c, h / wh, wh, w / ww, ww))?
            .reshape((1, c, h, w))?;
        (pe + win)?.permute((0, 2, 3, 1))?.contiguous_fast()
    }

    fn pos_embed(&self, hw: (usize, usize), x: &Tensor) -> Result<Tensor> {
        match &self.pos_cached {
            Some((size, t)) if *size == hw && t.device().same_device(x.device()) => Ok(t.clone()),
            _ => self.pos_embed_for(hw)?.to_device(x.device()),
        }
    }

    /// Run the trunk and keep every block output too (default context).
    /// x: [B, 3, S, S] -> (4 stage outputs NCHW, one NHWC output per block)
    pub fn forward_with_intermediates(&self, x: &Tensor) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        self.run(x, true, &ExecCtx::default())
    }

    fn run(&self, x: &Tensor, keep: bool, ctx: &ExecCtx) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let x = ctx.stage("hiera.patch_embed", x.device(), || self.patch_embed(x))?;
        let (_, h, w, _) = x.dims4()?;
        let pe = self.pos_embed((h, w), &x)?.to_dtype(x.dtype())?;
        let mut x = x.broadcast_add(&pe)?;
        let mut outs = Vec::with_capacity(self.stage_ends.len());
        let mut inter = Vec::new();
        for (i, blk) in self.blocks.iter().enumerate() {
            x = blk.forward_ctx(&x, ctx)?;
            ctx.fence(x.device(), FencePoint::HieraBlock)?;
            if keep {
                inter.push(x.clone());
            }
            if self.stage_ends.contains(&i) {
                outs.push(x.permute((0, 3, 1, 2))?.contiguous_fast()?);
            }
        }
        Ok((outs, inter))
    }
}

impl Hiera {
    /// x: [B, 3, S, S] -> 4 stage outputs, NCHW, highest resolution first; each block waits at
    /// `ctx`'s block fence and its stages are profiled in `ctx`.
    pub fn forward_stages_ctx(&self, x: &Tensor, ctx: &ExecCtx) -> Result<Vec<Tensor>> {
        Ok(self.run(x, false, ctx)?.0)
    }

    /// [`Hiera::forward_stages_ctx`] with the default context.
    pub fn forward_stages(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        self.forward_stages_ctx(x, &ExecCtx::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        stages: Vec<usize>,
        global: Vec<usize>,
        window: Vec<usize>,
        dim: usize,
        heads: usize,
    ) -> HieraConfig {
        HieraConfig {
            embed_dim: dim,
            num_heads: heads,
            stages,
            global_att_blocks: global,
            window_spec: window,
            window_pos_embed_bkg_spatial_size: [7, 7],
            window_pos_embed_size: [8, 8],
            q_pool: 3,
            q_stride: [2, 2],
            mlp_ratio: 4.0,
            dim_mul: 2.0,
            head_mul: 2.0,
        }
    }

    /// The tiny layout dumped from the instantiated PyTorch model (architecture.md §1.8).
    #[test]
    fn tiny_layout_matches_official() {
        let c = cfg(vec![1, 2, 7, 2], vec![5, 7, 9], vec![8, 4, 14, 7], 96, 1);
        let (b, ends) = block_layout(&c).unwrap();
        assert_eq!(ends, vec![0, 2, 9, 11]);
        let got: Vec<(usize, usize, usize, usize, bool)> = b
            .iter()
            .map(|s| (s.dim, s.dim_out, s.num_heads, s.window_size, s.q_pool))
            .collect();
        let want = vec![
            (96, 96, 1, 8, false),
            (96, 192, 2, 8, true),
            (192, 192, 2, 4, false),
            (192, 384, 4, 4, true),
            (384, 384, 4, 14, false),
            (384, 384, 4, 0, false),
            (384, 384, 4, 14, false),
            (384, 384, 4, 0, false),
            (384, 384, 4, 14, false),
            (384, 384, 4, 0, false),
            (384, 768, 8, 14, true),
            (768, 768, 8, 7, false),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn partition_roundtrip_with_padding() {
        let x = Tensor::arange(0f32, (2 * 10 * 9 * 3) as f32, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((2, 10, 9, 3))
            .unwrap();
        let (wins, pad) = window_partition(&x, 4).unwrap();
        assert_eq!(pad, (12, 12));
        assert_eq!(wins.dims(), &[18, 4, 4, 3]);
        let back = window_unpartition(&wins, 4, pad, (10, 9)).unwrap();
        let d: f32 = (back - &x)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0);
    }
}
