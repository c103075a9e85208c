//! The benchmark's frame cache: one binary file per video holding every frame already decoded
//! and resized (Pillow-exact bicubic) to the square inference size, so the inference phase does
//! no JPEG decoding and no resizing, and reads frames straight from a memory map.
//!
//! File layout (`<preprocessed-dir>/frames/<video>.s<S>.vfc`, little endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `VOSBFC01` |
//! | 8 | 4 | u32 header length in bytes (64) |
//! | 12 | 4 | u32 number of frames N |
//! | 16 | 4 | u32 inference side S (frames are S x S) |
//! | 20 | 4 | u32 original width |
//! | 24 | 4 | u32 original height |
//! | 28 | 4 | u32 channels (3, interleaved RGB) |
//! | 32 | 4 | u32 pixel format (0 = u8) |
//! | 36 | 28 | zero |
//! | 64 | N·S·S·3 | frames in video order, each `[S, S, 3]` u8 |
//!
//! [`CachedFrames`] implements [`FrameSource`]: a frame is turned into the model input by the
//! official normalisation only. At most `max_resident` frames stay paged in: after that the
//! pages of the least recently used frame are dropped from the mapping (`MADV_DONTNEED`; the
//! file is read-only, so they are simply read again if needed).

use crate::error::{Error, Result};
use crate::image::{decode_rgb, normalized_input, pil_resize_bicubic_rgb};
use crate::tracker::frames::FrameSource;
use candle_core::{Device, Tensor};
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const MAGIC: &[u8; 8] = b"VOSBFC01";
pub const HEADER_LEN: usize = 64;

/// The fixed-size header of a cache file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHeader {
    pub frames: usize,
    pub side: usize,
    pub orig_width: usize,
    pub orig_height: usize,
}

impl CacheHeader {
    /// Bytes of one frame. Only meaningful for a header [`CacheHeader::checked_file_bytes`]
    /// accepts (every decoded header is one); saturates instead of overflowing otherwise.
    pub fn frame_bytes(&self) -> usize {
        self.side.saturating_mul(self.side).saturating_mul(3)
    }

    /// Bytes of the whole file (saturating; see [`CacheHeader::checked_file_bytes`]).
    pub fn file_bytes(&self) -> u64 {
        self.checked_file_bytes().unwrap_or(u64::MAX)
    }

    /// Bytes of the whole file, `None` when the sizes overflow (a corrupt header: the fields
    /// are u32 each, so `frames * side * side * 3` can exceed u64).
    pub fn checked_file_bytes(&self) -> Option<u64> {
        let frame = (self.side as u64)
            .checked_mul(self.side as u64)?
            .checked_mul(3)?;
        usize::try_from(frame).ok()?;
        (self.frames as u64)
            .checked_mul(frame)?
            .checked_add(HEADER_LEN as u64)
    }

    fn encode(&self) -> Result<[u8; HEADER_LEN]> {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        let fields = [
            HEADER_LEN,
            self.frames,
            self.side,
            self.orig_width,
            self.orig_height,
            3,
            0,
        ];
        for (i, v) in fields.iter().enumerate() {
            let v = u32::try_from(*v)
                .map_err(|_| Error::Input(format!("frame cache field {v} does not fit in u32")))?;
            h[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        Ok(h)
    }

    fn decode(b: &[u8], path: &Path) -> Result<Self> {
        let bad = |m: &str| Error::Input(format!("frame cache {}: {m}", path.display()));
        if b.len() < HEADER_LEN || &b[..8] != MAGIC {
            return Err(bad("not a vosbench frame cache (bad magic)"));
        }
        let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        if u(8) != HEADER_LEN || u(28) != 3 || u(32) != 0 {
            return Err(bad("unsupported header (length, channels or pixel format)"));
        }
        let h = CacheHeader {
            frames: u(12),
            side: u(16),
            orig_width: u(20),
            orig_height: u(24),
        };
        if h.frames == 0 || h.side == 0 || h.orig_width == 0 || h.orig_height == 0 {
            return Err(bad("empty video or zero size in header"));
        }
        // Checked arithmetic: a corrupt header whose sizes overflow must not wrap around to
        // the file's real length (frames would then be read past the end of the map).
        let want = h
            .checked_file_bytes()
            .ok_or_else(|| bad("frame count and size overflow (corrupt header)"))?;
        if b.len() as u64 != want {
            return Err(bad(&format!(
                "{} bytes, the header says {want} (truncated or stale file)",
                b.len()
            )));
        }
        Ok(h)
    }
}

/// Where the cache file of `video` at side `side` lives.
pub fn cache_path(preprocessed_dir: &Path, video: &str, side: usize) -> PathBuf {
    preprocessed_dir
        .join("frames")
        .join(format!("{video}.s{side}.vfc"))
}

/// Decode every frame, resize it to `side` x `side` and write the cache file (temp + rename, so
/// a killed setup never leaves a half-written cache under the final name). `on_frame` is called
/// after each frame (progress). Returns the header.
pub fn write_cache(
    frames: &[PathBuf],
    side: usize,
    out: &Path,
    mut on_frame: impl FnMut(),
) -> Result<CacheHeader> {
    let first = frames
        .first()
        .ok_or_else(|| Error::Input(format!("no frames for {}", out.display())))?;
    let s = u32::try_from(side)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| Error::Input(format!("invalid image size {side}")))?;
    let (_, w0, h0) = decode_rgb(first)?;
    let header = CacheHeader {
        frames: frames.len(),
        side,
        orig_width: w0 as usize,
        orig_height: h0 as usize,
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    // a temp name of this process: concurrent setups on one folder never share a temp file
    let tmp = out.with_extension(format!("vfc.tmp{}", std::process::id()));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    // From here every return without the rename removes the temp file (it can be gigabytes).
    let guard = TempFile(Some(tmp.clone()));
    let mut w = std::io::BufWriter::new(file);
    w.write_all(&header.encode()?)
        .map_err(|e| Error::io(&tmp, e))?;
    for p in frames {
        let (rgb, fw, fh) = decode_rgb(p)?;
        if (fw, fh) != (w0, h0) {
            return Err(Error::Input(format!(
                "frame {} is {fw}x{fh}, but the video is {w0}x{h0}",
                p.display()
            )));
        }
        let resized = pil_resize_bicubic_rgb(&rgb, fw, fh, s, s)?;
        w.write_all(&resized).map_err(|e| Error::io(&tmp, e))?;
        on_frame();
    }
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    guard.keep();
    Ok(header)
}

/// A temp file removed when dropped, unless [`TempFile::keep`] (it was renamed into place).
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Remove the temp caches (`*.vfc.tmp<pid>`) in `dir` that a setup killed while writing them
/// left behind (those of a process still running stay). Returns how many were removed.
pub fn remove_stale_temps(dir: &Path) -> usize {
    crate::host::disk::remove_dead_temps(dir, ".vfc.tmp")
}

/// Read just the header of a cache file (to check a cache left by an earlier setup).
pub fn read_header(path: &Path) -> Result<CacheHeader> {
    let map = map_file(path)?;
    CacheHeader::decode(&map, path)
}

fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only mapping of a file only this tool writes, and only through temp + rename
    // (a rename never changes the mapped inode).
    unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path, e))
}

/// A memory-mapped cache file as a frame source.
pub struct CachedFrames {
    map: memmap2::Mmap,
    header: CacheHeader,
    max_resident: usize,
    resident: Mutex<VecDeque<usize>>,
}

impl CachedFrames {
    /// Open a cache file; at most `max_resident` (>= 1) frames are kept paged in.
    pub fn open(path: &Path, max_resident: usize) -> Result<Self> {
        let map = map_file(path)?;
        let header = CacheHeader::decode(&map, path)?;
        Ok(Self {
            map,
            header,
            max_resident: max_resident.max(1),
            resident: Mutex::new(VecDeque::new()),
        })
    }

    pub fn header(&self) -> CacheHeader {
        self.header
    }

    /// The resized RGB bytes of frame `idx` (`[S, S, 3]`).
    pub fn frame(&self, idx: usize) -> Result<&[u8]> {
        if idx >= self.header.frames {
            return Err(Error::Input(format!(
                "frame index {idx} out of range ({} frames)",
                self.header.frames
            )));
        }
        let fb = self.header.frame_bytes();
        let off = HEADER_LEN + idx * fb;
        self.touch(idx);
        Ok(&self.map[off..off + fb])
    }

    /// Frames currently counted as resident (most recent last).
    pub fn resident_frames(&self) -> Vec<usize> {
        self.resident
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    fn touch(&self, idx: usize) {
        let Ok(mut r) = self.resident.lock() else {
            return;
        };
        if let Some(p) = r.iter().position(|&f| f == idx) {
            r.remove(p);
        }
        r.push_back(idx);
        while r.len() > self.max_resident {
            let Some(old) = r.pop_front() else { break };
            let fb = self.header.frame_bytes();
            // Only whole pages inside the frame are dropped (madvise needs page alignment).
            let page = 4096usize;
            let start = (HEADER_LEN + old * fb).div_ceil(page) * page;
            let end = ((HEADER_LEN + (old + 1) * fb) / page) * page;
            if end > start {
                // SAFETY: DONTNEED on a read-only file mapping only drops clean pages; later
                // reads fault them back in from the file.
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }
}

impl FrameSource for CachedFrames {
    fn len(&self) -> usize {
        self.header.frames
    }

    fn size(&self) -> (usize, usize) {
        (self.header.orig_height, self.header.orig_width)
    }

    fn load_tensor(&self, idx: usize, image_size: usize, device: &Device) -> Result<Tensor> {
        if image_size != self.header.side {
            return Err(Error::Input(format!(
                "the frame cache holds {}x{} frames but the model wants {image_size}x{image_size}; rerun setup",
                self.header.side, self.header.side
            )));
        }
        normalized_input(self.frame(idx)?, image_size, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::rgb_to_input_tensor;

    #[test]
    fn cache_round_trip_matches_direct_preprocessing() {
        let d = tempfile::tempdir().unwrap();
        crate::data::synth::write_split(
            d.path(),
            &crate::data::synth::SynthOptions {
                videos: 1,
                frames: 5,
                width: 40,
                height: 30,
                seed: 1,
                objects: 1,
            },
        )
        .unwrap();
        let split = crate::data::sav::Split::open(d.path(), &Default::default()).unwrap();
        let v = &split.videos[0];
        let out = cache_path(d.path(), &v.name, 32);
        let mut n = 0;
        let h = write_cache(&v.frames, 32, &out, || n += 1).unwrap();
        assert_eq!(n, 5);
        assert_eq!((h.orig_width, h.orig_height, h.side), (40, 30, 32));
        assert_eq!(std::fs::metadata(&out).unwrap().len(), h.file_bytes());
        let c = CachedFrames::open(&out, 2).unwrap();
        assert_eq!(c.size(), (30, 40));
        for i in 0..5 {
            let t = c.load_tensor(i, 32, &Device::Cpu).unwrap();
            let (rgb, w, hh) = decode_rgb(&v.frames[i]).unwrap();
            let want = rgb_to_input_tensor(&rgb, w, hh, 32, &Device::Cpu).unwrap();
            let values =
                |x: candle_core::Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(values(t), values(want), "frame {i}");
        }
        assert_eq!(c.resident_frames(), vec![3, 4]);
        assert!(c.load_tensor(0, 64, &Device::Cpu).is_err());
        assert!(c.load_tensor(5, 32, &Device::Cpu).is_err());
        // A frame that fails mid-file leaves neither the cache nor its temp file; stale temp
        // files of a killed setup are cleared.
        let bad = cache_path(d.path(), "bad", 32);
        let mut broken = v.frames.clone();
        let junk = d.path().join("junk.jpg");
        std::fs::write(&junk, b"not a jpeg").unwrap();
        broken.insert(2, junk);
        assert!(write_cache(&broken, 32, &bad, || {}).is_err());
        let frames_dir = bad.parent().unwrap();
        let names = |dir: &Path| -> Vec<String> {
            let mut n: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(frames_dir), vec![format!("{}.s32.vfc", v.name)]);
        // Both the old temp name and a killed process's (no pid above 4194304 runs).
        std::fs::write(frames_dir.join("old.s32.vfc.tmp"), b"partial").unwrap();
        std::fs::write(frames_dir.join("old.s32.vfc.tmp4999999"), b"partial").unwrap();
        assert_eq!(remove_stale_temps(frames_dir), 2);
        assert_eq!(names(frames_dir), vec![format!("{}.s32.vfc", v.name)]);
        // A truncated file is refused.
        let bytes = std::fs::read(&out).unwrap();
        std::fs::write(&out, &bytes[..bytes.len() - 1]).unwrap();
        assert!(CachedFrames::open(&out, 2).is_err());
    }
}
