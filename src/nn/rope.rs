//! Axial rotary position encoding of `sam2/modeling/position_encoding.py` (`compute_axial_cis`,
//! `apply_rotary_enc`) and EdgeTAM's `apply_rotary_enc_v2`.
//!
//! A head of `D` channels is read as `D/2` complex numbers made of adjacent channel pairs
//! `(2j, 2j+1) = (re, im)`. The first `D/4` complex channels rotate with the token's column
//! `x = t % W`, the next `D/4` with its row `y = t / W`, at frequencies
//! `f_k = 1 / theta^(4k/D)`. Tables are computed on the host in f32 exactly as PyTorch builds
//! them, cached per grid size and device, and applied in f32 whatever the input dtype (the
//! official code does `x.float()` and casts back).

use crate::nn::ContiguousExt;
use candle_core::{bail, DType, Device, DeviceLocation, Result, Tensor};
use std::collections::HashMap;
use std::sync::Mutex;

/// The cos/sin tables of one grid: both `[W*H, D/2]` f32, row-major over tokens.
#[derive(Debug, Clone)]
pub struct RopeTable {
    pub cos: Tensor,
    pub sin: Tensor,
}

impl RopeTable {
    /// Number of grid tokens the table covers.
    pub fn len(&self) -> usize {
        self.cos.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `compute_axial_cis(dim, end_x, end_y, theta)` with a per-(grid, device) cache.
#[derive(Debug)]
pub struct AxialRope {
    dim: usize,
    theta: f64,
    cache: Mutex<HashMap<(usize, usize, DeviceLocation), RopeTable>>,
}

impl AxialRope {
    /// `dim` is the per-head width (must be a multiple of 4).
    pub fn new(dim: usize, theta: f64) -> Result<Self> {
        if dim == 0 || !dim.is_multiple_of(4) {
            bail!("axial RoPE needs a head width that is a positive multiple of 4, got {dim}");
        }
        Ok(Self {
            dim,
            theta,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The f32 frequencies `1 / theta^(4k/dim)`, k = 0..dim/4, rounded as PyTorch rounds them
    /// (`arange(0, dim, 4).float() / dim` in f32, `theta ** that` in f32, then `1.0 / that`).
    fn freqs(&self) -> Vec<f32> {
        (0..self.dim / 4)
            .map(|k| {
                let e = (4 * k) as f32 / self.dim as f32;
                let p = (self.theta as f32 as f64).powf(e as f64) as f32;
                1.0f32 / p
            })
            .collect()
    }

    /// Host tables `(cos, sin)`, each `[end_x*end_y, dim/2]`: columns `0..dim/4` hold the x
    /// angles, `dim/4..dim/2` the y angles. Angles are the f32 products `t * f` (as
    /// `torch.outer`), and cos/sin are evaluated in f64 on that f32 angle and rounded.
    pub fn host_table(&self, end_x: usize, end_y: usize) -> (Vec<f32>, Vec<f32>) {
        let freqs = self.freqs();
        let q = self.dim / 4;
        let half = self.dim / 2;
        let n = end_x * end_y;
        let mut cos = vec![0f32; n * half];
        let mut sin = vec![0f32; n * half];
        for t in 0..n {
            let tx = (t % end_x) as f32;
            let ty = (t / end_x) as f32;
            for (k, &f) in freqs.iter().enumerate() {
                let ax = (tx * f) as f64;
                let ay = (ty * f) as f64;
                cos[t * half + k] = ax.cos() as f32;
                sin[t * half + k] = ax.sin() as f32;
                cos[t * half + q + k] = ay.cos() as f32;
                sin[t * half + q + k] = ay.sin() as f32;
            }
        }
        (cos, sin)
    }

    /// The tables of an `end_x` x `end_y` grid on `device`, built once and cached.
    pub fn table(&self, end_x: usize, end_y: usize, device: &Device) -> Result<RopeTable> {
        let key = (end_x, end_y, device.location());
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(_) => bail!("RoPE table cache poisoned"),
        };
        if let Some(t) = cache.get(&key) {
            return Ok(t.clone());
        }
        let (c, s) = self.host_table(end_x, end_y);
        let n = end_x * end_y;
        let half = self.dim / 2;
        let table = RopeTable {
            cos: Tensor::from_vec(c, (n, half), device)?,
            sin: Tensor::from_vec(s, (n, half), device)?,
        };
        cache.insert(key, table.clone());
        Ok(table)
    }

    /// The table of the square grid holding `n` tokens, which is what `RoPEAttention` falls back
    /// to when the token count differs from its configured grid (`w = h = sqrt(n)`).
    pub fn square_table(&self, n: usize, device: &Device) -> Result<RopeTable> {
        let side = (n as f64).sqrt().round() as usize;
        if side * side != n {
            bail!("RoPE: {n} query tokens do not form a square grid");
        }
        self.table(side, side, device)
    }
}

/// Rotate `x: [B, H, N, D]` by a table of exactly `N` tokens. Computed in f32, returned in the
/// dtype of `x`.
pub fn rotate(x: &Tensor, table: &RopeTable) -> Result<Tensor> {
    let (_b, _h, n, d) = x.dims4()?;
    if table.len() != n || table.cos.dims()[1] * 2 != d {
        bail!(
            "RoPE table [{}, {}] does not fit tokens [.., {n}, {d}]",
            table.len(),
            table.cos.dims()[1]
        );
    }
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?.contiguous_fast()?;
    candle_nn::rotary_emb::rope_i(&xf, &table.cos, &table.sin)?.to_dtype(dtype)
}

/// Rotate `x: [B, H, r*N, D]` (r blocks of N tokens, frame-major) with the same N-token table in
/// every block: the official `repeat_freqs_k` tiling.
pub fn rotate_repeated(x: &Tensor, table: &RopeTable) -> Result<Tensor> {
    let (b, h, nk, d) = x.dims4()?;
    let n = table.len();
    if n == 0 || nk % n != 0 {
        bail!("RoPE: {nk} keys are not a whole number of {n}-token frames");
    }
    let r = nk / n;
    if r == 1 {
        return rotate(x, table);
    }
    // [B, H, r*N, D] and [B, H*r, N, D] share one memory layout.
    let y = rotate(&x.contiguous_fast()?.reshape((b, h * r, n, d))?, table)?;
    y.reshape((b, h, nk, d))
}

/// `apply_rotary_enc(q, k, freqs_cis, repeat_freqs_k)`: q `[B, H, Nq, D]` is rotated with the
/// `Nq`-token table; k `[B, H, Nk, D]` with the same table, tiled `Nk / Nq` times when
/// `repeat_k` (keys of several memory frames). An empty k is returned as is.
pub fn apply_rotary_enc(
    q: &Tensor,
    k: &Tensor,
    table: &RopeTable,
    repeat_k: bool,
) -> Result<(Tensor, Tensor)> {
    let q = rotate(q, table)?;
    let nk = k.dim(2)?;
    if nk == 0 {
        return Ok((q, k.clone()));
    }
    let k = if repeat_k {
        rotate_repeated(k, table)?
    } else {
        rotate(k, table)?
    };
    Ok((q, k))
}

/// Rotate only the first `x.dim(2) - num_exclude` tokens (the object-pointer tokens at the end
/// stay as they are), with `f` applied to that leading part.
pub fn rotate_leading<F>(x: &Tensor, num_exclude: usize, f: F) -> Result<Tensor>
where
    F: FnOnce(&Tensor) -> Result<Tensor>,
{
    let n = x.dim(2)?;
    if num_exclude > n {
        bail!("RoPE: cannot exclude {num_exclude} of {n} key tokens");
    }
    let n_rope = n - num_exclude;
    if n_rope == 0 {
        return Ok(x.clone());
    }
    let head = f(&x.narrow(2, 0, n_rope)?)?;
    if num_exclude == 0 {
        return Ok(head);
    }
    Tensor::cat(&[&head, &x.narrow(2, n_rope, num_exclude)?], 2)
}

/// Rotate the first `N - num_exclude` tokens of `x: [B, H, N, D]` with `table` (tiled over them
/// when `repeat`: keys of several memory frames), leaving the last `num_exclude` tokens (object
/// pointers) as they are. This is `rotate_leading(x, num_exclude, rotate or rotate_repeated)`;
/// on CUDA it runs as one kernel (`crate::cuda::rope`) with the same arithmetic, elsewhere as
/// those functions.
pub fn rotate_tokens(
    x: &Tensor,
    table: &RopeTable,
    num_exclude: usize,
    repeat: bool,
) -> Result<Tensor> {
    let (_b, _h, n, d) = x.dims4()?;
    if num_exclude > n {
        bail!("RoPE: cannot exclude {num_exclude} of {n} key tokens");
    }
    let n_rope = n - num_exclude;
    if n_rope == 0 {
        return Ok(x.clone());
    }
    let period = table.len();
    let fits = if repeat {
        period > 0 && n_rope.is_multiple_of(period)
    } else {
        period == n_rope
    };
    if !fits || table.cos.dims()[1] * 2 != d {
        bail!(
            "RoPE table [{period}, {}] does not fit {n_rope} rotated tokens of width {d}{}",
            table.cos.dims()[1],
            if repeat { " (repeated per frame)" } else { "" }
        );
    }
    #[cfg(feature = "cuda")]
    if crate::cuda::rope::supports(x, &table.cos) {
        return crate::cuda::rope::rotate(x, &table.cos, &table.sin, n_rope);
    }
    rotate_leading(x, num_exclude, |x| {
        if repeat {
            rotate_repeated(x, table)
        } else {
            rotate(x, table)
        }
    })
}

/// EdgeTAM's `apply_rotary_enc_v2(x, freqs_cis, repeat_freqs)`: x `[B, H, N, D]` holds
/// `repeat_freqs` frames of `N / repeat_freqs` tokens. When a frame is exactly the table's size
/// every token is rotated; otherwise each frame's leading `N/repeat - table.len()` tokens (the
/// perceiver's 1D latents) are left unrotated and its trailing `table.len()` tokens (the 2D
/// latents) are rotated.
pub fn apply_rotary_enc_v2(x: &Tensor, table: &RopeTable, repeat_freqs: usize) -> Result<Tensor> {
    let (b, h, n, d) = x.dims4()?;
    if n == 0 {
        return Ok(x.clone());
    }
    if repeat_freqs == 0 {
        bail!("RoPE v2: {n} key tokens but zero memory frames");
    }
    let rope_tokens = table.len();
    if n == rope_tokens * repeat_freqs {
        return rotate_repeated(x, table);
    }
    if n % repeat_freqs != 0 {
        bail!("RoPE v2: {n} key tokens are not {repeat_freqs} equal frames");
    }
    let per_frame = n / repeat_freqs;
    if per_frame < rope_tokens {
        bail!(
            "RoPE v2: frames of {per_frame} tokens are smaller than the {rope_tokens}-token grid"
        );
    }
    let no_rope = per_frame - rope_tokens;
    let xf = x
        .contiguous_fast()?
        .reshape((b, h * repeat_freqs, per_frame, d))?;
    let plain = xf.narrow(2, 0, no_rope)?;
    let rotated = rotate(&xf.narrow(2, no_rope, rope_tokens)?, table)?;
    Tensor::cat(&[&plain, &rotated], 2)?.reshape((b, h, n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference complex rotation written out by hand, in f64.
    fn naive(x: &[f32], n: usize, d: usize, cos: &[f32], sin: &[f32]) -> Vec<f64> {
        let mut out = vec![0f64; n * d];
        for t in 0..n {
            for j in 0..d / 2 {
                let (re, im) = (x[t * d + 2 * j] as f64, x[t * d + 2 * j + 1] as f64);
                let (c, s) = (cos[t * d / 2 + j] as f64, sin[t * d / 2 + j] as f64);
                out[t * d + 2 * j] = re * c - im * s;
                out[t * d + 2 * j + 1] = re * s + im * c;
            }
        }
        out
    }

    #[test]
    fn table_layout_is_x_then_y() {
        let rope = AxialRope::new(8, 10000.0).unwrap();
        let (cos, sin) = rope.host_table(3, 2);
        // token 4 is (x=1, y=1); token 2 is (x=2, y=0). Frequencies: 1 and 1/100.
        let half = 4;
        assert!((sin[4 * half] - 1f32.sin()).abs() < 1e-7);
        assert!((sin[4 * half + 2] - 1f32.sin()).abs() < 1e-7);
        assert!((sin[2 * half] - 2f32.sin()).abs() < 1e-7);
        assert_eq!(sin[2 * half + 2], 0.0);
        assert_eq!(cos[2 * half + 3], 1.0);
        assert!((sin[2 * half + 1] - 0.02f32.sin()).abs() < 1e-7);
    }

    #[test]
    fn repeated_and_excluded_keys_match_a_hand_rotation() -> Result<()> {
        let dev = Device::Cpu;
        let (n, d, r, excl) = (6usize, 8usize, 3usize, 2usize);
        let rope = AxialRope::new(d, 10000.0)?;
        let table = rope.table(3, 2, &dev)?;
        let (cos, sin) = rope.host_table(3, 2);
        let total = r * n + excl;
        let data: Vec<f32> = (0..total * d)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let x = Tensor::from_vec(data.clone(), (1, 1, total, d), &dev)?;
        let y = rotate_leading(&x, excl, |k| rotate_repeated(k, &table))?;
        let y = y.flatten_all()?.to_vec1::<f32>()?;
        for f in 0..r {
            let block = &data[f * n * d..(f + 1) * n * d];
            let want = naive(block, n, d, &cos, &sin);
            for (i, w) in want.iter().enumerate() {
                assert!(
                    (y[f * n * d + i] as f64 - w).abs() < 1e-6,
                    "frame {f} elem {i}"
                );
            }
        }
        assert_eq!(
            &y[r * n * d..],
            &data[r * n * d..],
            "pointer tokens must not rotate"
        );
        // the entry point memory attention calls gives the same values
        let z = rotate_tokens(&x, &table, excl, true)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(z, y);
        // and refuses tables that do not fit the rotated tokens
        assert!(rotate_tokens(&x, &table, excl + 1, true).is_err());
        assert!(rotate_tokens(&x, &table, excl, false).is_err());
        assert!(rotate_tokens(&x, &table, total + 1, true).is_err());
        let q = x.narrow(2, 0, n)?;
        assert_eq!(
            rotate_tokens(&q, &table, 0, false)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            y[..n * d].to_vec()
        );
        Ok(())
    }

    #[test]
    fn v2_leaves_1d_latents_alone() -> Result<()> {
        let dev = Device::Cpu;
        let (d, r, plain) = (8usize, 2usize, 3usize);
        let rope = AxialRope::new(d, 10000.0)?;
        let table = rope.table(2, 2, &dev)?;
        let (cos, sin) = rope.host_table(2, 2);
        let per = plain + 4;
        let data: Vec<f32> = (0..r * per * d)
            .map(|i| ((i * 53 % 97) as f32) / 40.0 - 1.2)
            .collect();
        let x = Tensor::from_vec(data.clone(), (1, 1, r * per, d), &dev)?;
        let y = apply_rotary_enc_v2(&x, &table, r)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for f in 0..r {
            let base = f * per * d;
            assert_eq!(&y[base..base + plain * d], &data[base..base + plain * d]);
            let want = naive(&data[base + plain * d..base + per * d], 4, d, &cos, &sin);
            for (i, w) in want.iter().enumerate() {
                assert!((y[base + plain * d + i] as f64 - w).abs() < 1e-6);
            }
        }
        assert!(apply_rotary_enc_v2(&x, &table, 0).is_err());
        assert!(rope.square_table(12, &dev).is_err());
        Ok(())
    }
}
