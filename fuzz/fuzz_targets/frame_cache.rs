//! The frame cache (.vfc) reader: header checks, then every frame read through the map.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vosbench::bench::cache::{read_header, CachedFrames};
use vosbench::tracker::frames::FrameSource;

fuzz_target!(|data: &[u8]| {
    let p = vosbench_fuzz::scratch_file("v.s8.vfc", data);
    let _ = read_header(&p);
    if let Ok(c) = CachedFrames::open(&p, 2) {
        let h = c.header();
        assert_eq!(c.len(), h.frames);
        for i in 0..h.frames.min(64) {
            let f = c.frame(i).expect("frame in range");
            assert_eq!(f.len(), h.frame_bytes());
        }
        assert!(c.frame(h.frames).is_err());
        if h.side <= 64 {
            let _ = c.load_tensor(0, h.side, &candle_core::Device::Cpu);
        }
    }
});
