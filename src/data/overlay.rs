//! Writing what a tracker predicted as images: an overlay of a mask on its video frame, through a
//! temp file so a killed run never leaves half a PNG.

use crate::error::{Error, Result};
use std::path::Path;

/// Write a PNG through a temp file next to `path`, then rename it into place.
pub fn write_png_atomic(
    path: &Path,
    save: impl FnOnce(&Path) -> image::ImageResult<()>,
) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    save(&tmp).map_err(|e| Error::Other(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write the frame at `frame` with the pixels of `fg` (row-major, the frame's size) tinted green.
pub fn write_overlay(path: &Path, frame: &Path, fg: &[bool]) -> Result<()> {
    let mut img = image::open(frame)
        .map_err(|e| Error::Input(format!("cannot read frame {}: {e}", frame.display())))?
        .to_rgb8();
    for (px, &on) in img.pixels_mut().zip(fg) {
        if on {
            px[0] = ((px[0] as u16 + 30) / 2) as u8;
            px[1] = ((px[1] as u16 + 255) / 2) as u8;
            px[2] = ((px[2] as u16 + 60) / 2) as u8;
        }
    }
    write_png_atomic(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
    })
}
