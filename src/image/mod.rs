//! Frame pixels exactly as the official video predictor sees them (`sam2/utils/misc.py`,
//! `_load_img_as_tensor`), bit for bit:
//! `np.array(Image.open(p).convert("RGB").resize((S, S))) / 255.0`, then `(x - mean) / std`.
//!
//! - [`jpeg`]: a baseline JPEG decoder byte-identical to Pillow's libjpeg-turbo decode;
//!   [`decode_rgb`] reads an image file with it (other formats through the `image` crate).
//! - [`resize`]: Pillow's BICUBIC resize in 8-bit fixed point ([`pil_resize_bicubic_rgb`]).
//! - [`normalize`]: the official normalisation and the model input tensor
//!   ([`rgb_to_input_tensor`], [`normalized_input`]).
//!
//! This layer knows nothing of models or videos: it imports only the error type and candle.
//! Frame sources (folders, prefetching, decoded clips) are in `tracker::frames`.

pub mod jpeg;
pub mod normalize;
pub mod resize;

pub use normalize::{normalize_rgb, normalized_input, rgb_to_input_tensor, IMG_MEAN, IMG_STD};
pub use resize::{
    pil_resize_bicubic_rgb, pil_resize_bicubic_rgb_with, resize_to_square, PassOrder,
};

use crate::error::{Error, Result};
use std::path::Path;

/// Decode one image file to interleaved RGB, like Pillow's `Image.open(p).convert("RGB")`
/// (grayscale is replicated, alpha dropped; the format is taken from the content). Returns
/// `(rgb, width, height)`. A file that cannot be decoded is [`Error::Input`] naming it.
///
/// JPEG files go through [`jpeg`], which is byte-identical to Pillow's libjpeg-turbo decode;
/// other formats, and JPEG features outside that decoder's scope (progressive, arithmetic
/// coding, CMYK, 12-bit), go through the `image` crate.
pub fn decode_rgb(path: &Path) -> Result<(Vec<u8>, u32, u32)> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if jpeg::is_jpeg(&data) {
        match jpeg::decode(&data) {
            Ok(img) => return Ok(img),
            Err(jpeg::JpegError::Unsupported(_)) => {}
            Err(e) => {
                return Err(Error::Input(format!(
                    "cannot decode image {}: {e}",
                    path.display()
                )))
            }
        }
    }
    let reader = ::image::ImageReader::new(std::io::Cursor::new(data))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| Error::Input(format!("cannot decode image {}: {e}", path.display())))?;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    Ok((rgb.into_raw(), w, h))
}

/// The `(width, height)` of an image file from its header only.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    ::image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .into_dimensions()
        .map_err(|e| {
            Error::Input(format!(
                "cannot read image header of {}: {e}",
                path.display()
            ))
        })
}
