//! Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher, "Distance
//! Transforms of Sampled Functions", 2012), in integers.
//!
//! Used to dilate boundary maps by a disk (a pixel is in the dilation by `disk(r)` exactly when
//! its squared distance to the nearest boundary pixel is `<= r^2`) and to place click prompts.

/// "No feature pixel in reach".
pub const INF: i64 = i64::MAX / 4;

/// Lower envelope of the parabolas `f[q] + (p - q)^2`, written into `out`. `f` holds squared
/// distances or [`INF`]. Scratch buffers are passed in to avoid reallocations per line.
fn edt_1d(f: &[i64], out: &mut [i64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    let n = f.len();
    v.clear();
    z.clear();
    for q in 0..n {
        if f[q] >= INF {
            continue;
        }
        loop {
            match v.last() {
                None => {
                    v.push(q);
                    z.push(f64::NEG_INFINITY);
                    break;
                }
                Some(&p) => {
                    let s = ((f[q] + (q * q) as i64) - (f[p] + (p * p) as i64)) as f64
                        / (2 * (q - p)) as f64;
                    if s <= *z.last().unwrap_or(&f64::NEG_INFINITY) {
                        v.pop();
                        z.pop();
                    } else {
                        v.push(q);
                        z.push(s);
                        break;
                    }
                }
            }
        }
    }
    if v.is_empty() {
        out.iter_mut().for_each(|o| *o = INF);
        return;
    }
    let mut k = 0;
    for (p, o) in out.iter_mut().enumerate() {
        while k + 1 < v.len() && z[k + 1] < p as f64 {
            k += 1;
        }
        let q = v[k];
        let d = p as i64 - q as i64;
        *o = f[q] + d * d;
    }
}

/// Squared distance from every pixel to the nearest `true` pixel of `feature` (row-major,
/// `width * height`); [`INF`] everywhere when there is none.
pub fn squared_edt(feature: &[bool], width: usize, height: usize) -> Vec<i64> {
    assert_eq!(feature.len(), width * height, "feature map size");
    let mut d: Vec<i64> = feature.iter().map(|&b| if b { 0 } else { INF }).collect();
    let mut v = Vec::new();
    let mut z = Vec::new();
    // Columns first.
    let mut col = vec![0i64; height];
    let mut col_out = vec![0i64; height];
    for x in 0..width {
        for y in 0..height {
            col[y] = d[y * width + x];
        }
        edt_1d(&col, &mut col_out, &mut v, &mut z);
        for y in 0..height {
            d[y * width + x] = col_out[y];
        }
    }
    // Then rows.
    let mut row_out = vec![0i64; width];
    for y in 0..height {
        let row = &mut d[y * width..(y + 1) * width];
        edt_1d(row, &mut row_out, &mut v, &mut z);
        row.copy_from_slice(&row_out);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let mut s = 12345u64;
        for (w, h, density) in [(1, 1, 2), (9, 7, 8), (17, 3, 40), (30, 22, 100), (5, 40, 3)] {
            let feature: Vec<bool> = (0..w * h)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 33).is_multiple_of(density)
                })
                .collect();
            let d = squared_edt(&feature, w, h);
            for y in 0..h {
                for x in 0..w {
                    let mut best = INF;
                    for yy in 0..h {
                        for xx in 0..w {
                            if feature[yy * w + xx] {
                                let dy = yy as i64 - y as i64;
                                let dx = xx as i64 - x as i64;
                                best = best.min(dx * dx + dy * dy);
                            }
                        }
                    }
                    assert_eq!(d[y * w + x], best, "({x},{y}) in {w}x{h}");
                }
            }
        }
    }
}
