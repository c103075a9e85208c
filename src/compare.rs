//! The one comparison toolkit of the crate: how a result is judged against a reference tensor
//! (relative L2 and max abs difference in f64 on the host, mask IoU, byte differences). The
//! parity runner, the integration tests (`tests/common`) and unit tests all use these, so every
//! number in docs/parity.md means the same thing wherever it was measured.
//!
//! This file imports only candle and the error type, so any layer's tests can use it.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// How a stage was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The reference's own inputs for this stage (errors cannot compound from earlier stages).
    Reference,
    /// The fixture image, through every earlier stage of our model.
    Image,
}

impl Feed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Feed::Reference => "ref",
            Feed::Image => "image",
        }
    }
}

/// One compared tensor.
#[derive(Debug, Clone)]
pub struct StageResult {
    pub name: String,
    /// ||ours - ref|| / ||ref|| in f64 (||ours - ref|| when the reference is all zeros); NaN when
    /// ours holds non-finite values, infinite on a shape mismatch.
    pub rel_l2: f64,
    pub max_abs: f64,
    pub numel: usize,
    pub feed: Feed,
    /// Why a comparison could not be made (shape mismatch), else empty.
    pub note: String,
}

impl StageResult {
    /// Within `tol` (NaN and shape mismatches never are).
    pub fn ok(&self, tol: f64) -> bool {
        self.rel_l2 <= tol
    }
}

/// The difference between a result and its reference, summed in f64 on the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diff {
    /// sum of (ours - ref)^2
    pub sq_err: f64,
    /// sum of ref^2
    pub sq_ref: f64,
    /// max |ours - ref|, NaN when any difference is NaN
    pub max_abs: f64,
    pub numel: usize,
}

impl Diff {
    /// ||ours - ref|| / ||ref|| (||ours - ref|| when the reference is all zeros).
    pub fn rel_l2(&self) -> f64 {
        rel_from_sums(self.sq_err, self.sq_ref)
    }
}

/// sqrt(sq_err / sq_ref), or sqrt(sq_err) when the reference is all zeros: the relative L2 of
/// parts summed separately (e.g. every frame of a video).
pub fn rel_from_sums(sq_err: f64, sq_ref: f64) -> f64 {
    if sq_ref == 0.0 {
        sq_err.sqrt()
    } else {
        (sq_err / sq_ref).sqrt()
    }
}

fn host_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?
        .to_vec1::<f64>()?)
}

/// Why `got` cannot be compared with `want` (their shapes differ), or `None`.
fn shape_mismatch(got: &Tensor, want: &Tensor) -> Option<String> {
    (got.dims() != want.dims())
        .then(|| format!("shape {:?} vs reference {:?}", got.dims(), want.dims()))
}

/// [`Diff`] of `got` (any device, any dtype) against `want`. Tensors of different shapes differ
/// infinitely (every field but `numel` infinite or zero so that [`Diff::rel_l2`] is infinite).
pub fn diff(got: &Tensor, want: &Tensor) -> Result<Diff> {
    if shape_mismatch(got, want).is_some() {
        return Ok(Diff {
            sq_err: f64::INFINITY,
            sq_ref: 0.0,
            max_abs: f64::INFINITY,
            numel: want.elem_count(),
        });
    }
    let a = host_f64(got)?;
    let b = host_f64(want)?;
    let (mut sq_err, mut sq_ref, mut max_abs) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        let d = x - y;
        sq_err += d * d;
        sq_ref += y * y;
        // NaN-propagating max: a NaN anywhere must show
        let ad = d.abs();
        if ad.is_nan() || ad > max_abs {
            max_abs = if max_abs.is_nan() { max_abs } else { ad };
        }
    }
    Ok(Diff {
        sq_err,
        sq_ref,
        max_abs,
        numel: b.len(),
    })
}

/// ||got - want|| / ||want|| in f64 (see [`Diff::rel_l2`]); infinite on a shape mismatch.
pub fn rel_l2(got: &Tensor, want: &Tensor) -> Result<f64> {
    Ok(diff(got, want)?.rel_l2())
}

/// max |got - want| in f64 (NaN when any difference is NaN); infinite on a shape mismatch.
pub fn max_abs_diff(got: &Tensor, want: &Tensor) -> Result<f64> {
    Ok(diff(got, want)?.max_abs)
}

/// Compare `got` (any device, any float dtype) with the reference `want` on the host in f64. A
/// shape mismatch is a failed result (infinite error, explained in `note`), not an error.
pub fn compare(name: &str, got: &Tensor, want: &Tensor, feed: Feed) -> Result<StageResult> {
    let d = diff(got, want)?;
    Ok(StageResult {
        name: name.to_string(),
        rel_l2: d.rel_l2(),
        max_abs: d.max_abs,
        numel: d.numel,
        feed,
        note: shape_mismatch(got, want).unwrap_or_default(),
    })
}

/// How two binary masks (`> 0`) overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub intersection: usize,
    pub union: usize,
    /// positive values of the reference
    pub reference: usize,
    pub numel: usize,
}

impl Overlap {
    /// Intersection over union; two empty masks have IoU 1.
    pub fn iou(&self) -> f64 {
        if self.union == 0 {
            1.0
        } else {
            self.intersection as f64 / self.union as f64
        }
    }

    /// Positive fraction of the reference.
    pub fn reference_fraction(&self) -> f64 {
        self.reference as f64 / self.numel.max(1) as f64
    }
}

/// [`Overlap`] of the masks `a > 0` and `b > 0` (`b` the reference), any device and dtype. A shape
/// mismatch is an error.
pub fn mask_overlap(a: &Tensor, b: &Tensor) -> Result<Overlap> {
    if let Some(m) = shape_mismatch(a, b) {
        return Err(Error::Other(format!("mask {m}")));
    }
    let fg = |t: &Tensor| -> Result<Vec<bool>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|v| v > 0.0)
            .collect())
    };
    let (a, b) = (fg(a)?, fg(b)?);
    let (mut intersection, mut union, mut reference) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(&b) {
        intersection += (x && y) as usize;
        union += (x || y) as usize;
        reference += y as usize;
    }
    Ok(Overlap {
        intersection,
        union,
        reference,
        numel: b.len(),
    })
}

/// (IoU of the masks `a > 0` and `b > 0`, positive fraction of `b`); see [`mask_overlap`].
pub fn mask_iou(a: &Tensor, b: &Tensor) -> Result<(f64, f64)> {
    let o = mask_overlap(a, b)?;
    Ok((o.iou(), o.reference_fraction()))
}

/// (largest absolute difference, number of differing values) of two byte buffers, e.g. decoded
/// or resized pixels against Pillow's. Buffers of different lengths are an error.
pub fn byte_diff(a: &[u8], b: &[u8]) -> Result<(u8, usize)> {
    if a.len() != b.len() {
        return Err(Error::Other(format!(
            "{} bytes vs reference {} bytes",
            a.len(),
            b.len()
        )));
    }
    let mut max = 0u8;
    let mut n = 0usize;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += (d != 0) as usize;
    }
    Ok((max, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap()
    }

    #[test]
    fn relative_l2_max_abs_and_zero_reference() {
        let d = diff(&t(&[1.0, 2.0, 2.0]), &t(&[1.0, 2.0, 4.0])).unwrap();
        assert_eq!(
            (d.sq_err, d.sq_ref, d.max_abs, d.numel),
            (4.0, 21.0, 2.0, 3)
        );
        assert_eq!(d.rel_l2(), (4.0f64 / 21.0).sqrt());
        // all-zero reference: the absolute L2
        assert_eq!(rel_l2(&t(&[3.0, 4.0]), &t(&[0.0, 0.0])).unwrap(), 5.0);
        assert_eq!(rel_from_sums(0.0, 0.0), 0.0);
    }

    #[test]
    fn nan_shows_and_shapes_must_match() {
        let d = diff(&t(&[f32::NAN, 1.0]), &t(&[0.0, 5.0])).unwrap();
        assert!(d.max_abs.is_nan() && d.rel_l2().is_nan());
        let d = diff(&t(&[1.0]), &t(&[1.0, 2.0])).unwrap();
        assert!(d.rel_l2().is_infinite() && d.max_abs.is_infinite() && d.numel == 2);
        let r = compare("x", &t(&[1.0]), &t(&[1.0, 2.0]), Feed::Image).unwrap();
        assert!(r.rel_l2.is_infinite() && !r.ok(1e9) && r.note.contains("shape"));
        let r = compare("y", &t(&[1.0, 2.0]), &t(&[1.0, 2.0]), Feed::Reference).unwrap();
        assert!(r.ok(0.0) && r.note.is_empty() && r.numel == 2);
    }

    #[test]
    fn iou_and_fraction() {
        let (iou, frac) =
            mask_iou(&t(&[1.0, 1.0, -1.0, 0.0]), &t(&[1.0, -1.0, 2.0, -3.0])).unwrap();
        assert_eq!((iou, frac), (1.0 / 3.0, 0.5));
        assert_eq!(mask_iou(&t(&[0.0]), &t(&[-1.0])).unwrap(), (1.0, 0.0));
        assert!(mask_iou(&t(&[0.0]), &t(&[0.0, 1.0])).is_err());
        let o = mask_overlap(&t(&[1.0, 0.0, 1.0]), &t(&[1.0, 1.0, -1.0])).unwrap();
        assert_eq!(
            (o.intersection, o.union, o.reference, o.numel),
            (1, 3, 2, 3)
        );
    }

    #[test]
    fn bytes() {
        assert_eq!(byte_diff(&[0, 10, 200], &[0, 13, 190]).unwrap(), (10, 2));
        assert!(byte_diff(&[0], &[]).is_err());
    }
}
