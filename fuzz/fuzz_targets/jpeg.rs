//! The baseline JPEG decoder (Pillow-exact), on raw bytes, and the file-level `decode_rgb`
//! path (which falls back to the `image` crate for JPEGs outside the decoder's scope).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vosbench_fuzz::init();
    if let Ok((rgb, w, h)) = vosbench::image::jpeg::decode(data) {
        assert_eq!(rgb.len(), w as usize * h as usize * 3);
    }
    let _ = vosbench::image::jpeg::try_decode_rgb(data);
});
