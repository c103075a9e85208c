//! Per-frame J&F cost at 1920x1080: the benchmark scores as it goes, so this must stay in the
//! milliseconds. `cargo bench --bench eval`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use vosbench::data::masks::Mask;
use vosbench::eval::j_and_f::{boundary_f, score_frame};

/// A large wavy object: an ellipse with a sinusoidal rim, so the boundary is long.
fn object(w: usize, h: usize, cx: f64, cy: f64) -> Mask {
    let mut m = Mask::empty(w, h);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = ((x as f64 - cx) / 500.0, (y as f64 - cy) / 300.0);
            let r = 1.0 + 0.1 * (8.0 * dy.atan2(dx)).sin();
            m.data[y * w + x] = dx * dx + dy * dy <= r * r;
        }
    }
    m
}

fn bench(c: &mut Criterion) {
    let (w, h) = (1920, 1080);
    let gt = object(w, h, 960.0, 540.0);
    let pred = object(w, h, 975.0, 530.0);
    c.bench_function("boundary_f 1920x1080", |b| {
        b.iter(|| boundary_f(black_box(&pred), black_box(&gt)))
    });
    c.bench_function("score_frame (J and F) 1920x1080", |b| {
        b.iter(|| score_frame(black_box(&pred), black_box(&gt)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
