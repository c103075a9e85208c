//! Mask PNG reading (grey 1/2/4/8/16-bit, palette, grey+alpha, RGB(A)) as the evaluator sees it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::data::masks::{png_size, read_label_png, PackedMask};

fuzz_target!(|data: &[u8]| {
    let p = vosbench_fuzz::scratch_file("mask.png", data);
    let _ = png_size(&p);
    if let Ok(l) = read_label_png(&p) {
        assert_eq!(l.labels.len(), l.width * l.height);
        let fg = l.foreground();
        let _ = fg.bbox();
        let packed = PackedMask::from_mask(&fg);
        assert_eq!(packed.area(), fg.area());
        let _ = l.ids();
    }
});
