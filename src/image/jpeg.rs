//! A baseline JPEG decoder whose RGB output is byte-identical to Pillow's
//! `Image.open(p).convert("RGB")`, i.e. to libjpeg-turbo with the settings Pillow leaves in place:
//! the accurate integer IDCT (`JDCT_ISLOW`: 13-bit constants, 2 extra bits between the passes),
//! fancy (triangle-filter) chroma upsampling (so no merged upsampler), and libjpeg's fixed-point
//! YCbCr->RGB tables (16 fraction bits). Greyscale files are replicated to RGB like Pillow's
//! `convert("RGB")`. The official predictor reads its frames through Pillow, so decoding the same
//! way makes the tracker's inputs equal to the official ones bit for bit.
//!
//! Scope: sequential Huffman-coded DCT (SOF0 baseline and SOF1 extended), 8-bit samples, 1 or 3
//! components, any integral sampling factors (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1, ...),
//! interleaved or one-component scans, restart intervals, JFIF/Adobe colour-space rules, APPn/COM
//! skipping, and the standard Huffman tables for files that define none (Motion-JPEG frames), as
//! libjpeg-turbo does. Anything else is [`JpegError::Unsupported`] (progressive, lossless,
//! hierarchical or arithmetic-coded files, 12-bit samples, 2 or 4 components such as CMYK,
//! fractional sampling ratios, a height given by a DNL marker): [`try_decode_rgb`] returns
//! `Ok(None)` for those, so callers can fall back to another decoder. Damaged data is
//! [`JpegError::Corrupt`] with a message naming the problem; no input panics.
//!
//! Known differences from libjpeg-turbo, all on data that a conforming encoder does not produce:
//! libjpeg substitutes zeros for entropy-coded data that ends early (a truncated file) and
//! resynchronises on a wrong restart marker, with only a warning; this decoder reports those as
//! errors. The IDCT's integer widths are those of libjpeg-turbo's x86-64 AVX2 routine (which
//! Pillow runs there); on out-of-range coefficients that libjpeg's portable C code would wrap, it
//! saturates, so results match Pillow on x86-64 but may differ from a build without SIMD (or
//! with ARM NEON) for such pathological blocks.

use crate::{Error, Result};
use std::fmt;

/// Why a JPEG was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JpegError {
    /// A valid JPEG that uses a feature outside this decoder's scope; another decoder may read it.
    Unsupported(String),
    /// Not a JPEG, or a damaged one.
    Corrupt(String),
}

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegError::Unsupported(m) => write!(f, "unsupported JPEG: {m}"),
            JpegError::Corrupt(m) => write!(f, "corrupt JPEG: {m}"),
        }
    }
}

impl std::error::Error for JpegError {}

type JResult<T> = std::result::Result<T, JpegError>;

fn corrupt<T>(msg: impl Into<String>) -> JResult<T> {
    Err(JpegError::Corrupt(msg.into()))
}

fn unsupported<T>(msg: impl Into<String>) -> JResult<T> {
    Err(JpegError::Unsupported(msg.into()))
}

/// Pillow's decompression-bomb limit (`Image.MAX_IMAGE_PIXELS * 2`), above which it refuses to
/// open an image; used here as a hard limit on allocations.
pub const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Whether `data` starts like a JPEG file (an SOI marker).
pub fn is_jpeg(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0xFF && data[1] == 0xD8
}

/// Decode to interleaved RGB `[h, w, 3]`: `(rgb, width, height)`.
pub fn decode(data: &[u8]) -> JResult<(Vec<u8>, u32, u32)> {
    Decoder::new(data).run()
}

/// Decode like Pillow; `Ok(None)` when the file is a JPEG this decoder does not handle
/// ([`JpegError::Unsupported`]), `Err(Error::Input)` when it is damaged or not a JPEG.
pub fn try_decode_rgb(data: &[u8]) -> Result<Option<(Vec<u8>, u32, u32)>> {
    match decode(data) {
        Ok(img) => Ok(Some(img)),
        Err(JpegError::Unsupported(_)) => Ok(None),
        Err(e) => Err(Error::Input(e.to_string())),
    }
}

/// Decode like Pillow; every failure (damaged or unsupported) is an `Error::Input`.
pub fn decode_rgb(data: &[u8]) -> Result<(Vec<u8>, u32, u32)> {
    decode(data).map_err(|e| Error::Input(e.to_string()))
}

/// Zigzag position -> natural (row-major) position, with 16 extra entries so that a corrupt run
/// length past the end lands on the last coefficient, as libjpeg's table does.
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 63, 63, 63,
];

// ---------------------------------------------------------------------------------------------
// Huffman tables and the entropy-coded bit stream
// ---------------------------------------------------------------------------------------------

/// Codes up to this many bits are decoded by one table lookup.
const LOOKAHEAD: u32 = 9;

#[derive(Clone)]
struct Huffman {
    /// Indexed by the next LOOKAHEAD bits: `(length << 8) | symbol`, 0 when the code is longer.
    fast: Vec<u16>,
    /// Largest code of each length (index 1..=16), -1 when there is none.
    maxcode: [i32; 17],
    /// Index into `values` of a code of length l is `code + valoffset[l]`.
    valoffset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    /// A table from its DHT form: the number of codes of each length 1..=16 and the symbols in
    /// code order. Canonical codes are assigned as in JPEG Annex C; a set of lengths that does not
    /// fit (an all-ones code or more codes than a length allows) is rejected like libjpeg does.
    fn new(counts: &[u8; 16], values: &[u8]) -> JResult<Self> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total > 256 || total != values.len() {
            return corrupt("bad Huffman table (symbol count)");
        }
        let mut fast = vec![0u16; 1 << LOOKAHEAD];
        let mut maxcode = [-1i32; 17];
        let mut valoffset = [0i32; 17];
        let mut code: i32 = 0;
        let mut k: i32 = 0;
        for len in 1..=16u32 {
            let n = counts[len as usize - 1] as i32;
            valoffset[len as usize] = k - code;
            for _ in 0..n {
                if code >= (1 << len) {
                    return corrupt("bad Huffman table (too many codes of one length)");
                }
                if len <= LOOKAHEAD {
                    let shift = LOOKAHEAD - len;
                    let first = (code as usize) << shift;
                    let entry = ((len as u16) << 8) | values[k as usize] as u16;
                    for e in &mut fast[first..first + (1usize << shift)] {
                        *e = entry;
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[len as usize] = code - 1;
            }
            if code >= (1 << len) {
                return corrupt("bad Huffman table (code lengths overflow)");
            }
            code <<= 1;
        }
        Ok(Huffman {
            fast,
            maxcode,
            valoffset,
            values: values.to_vec(),
        })
    }

    /// One symbol from `bits` (which must hold at least 16 bits).
    #[inline]
    fn decode(&self, bits: &mut Bits) -> JResult<u8> {
        let e = self.fast[bits.peek(LOOKAHEAD) as usize];
        if e != 0 {
            bits.consume((e >> 8) as u32);
            return Ok(e as u8);
        }
        for len in LOOKAHEAD + 1..=16 {
            let code = bits.peek(len) as i32;
            if code <= self.maxcode[len as usize] {
                bits.consume(len);
                let idx = code + self.valoffset[len as usize];
                return match self.values.get(idx as usize) {
                    Some(&v) => Ok(v),
                    None => corrupt("bad Huffman code"),
                };
            }
        }
        corrupt("bad Huffman code in entropy-coded data")
    }
}

/// The entropy-coded segment as a bit stream: byte stuffing removed, zeros fed once a marker or
/// the end of the data is reached (the count of those fake bits tells a truncated stream).
struct Bits<'a> {
    data: &'a [u8],
    /// Next byte to load; once `at_marker`, the 0xFF that starts the marker (or `data.len()`).
    pos: usize,
    /// Bits, most significant first; `n` of them are valid.
    acc: u64,
    n: u32,
    /// How many of the `n` buffered bits (the last ones) are fake zeros.
    fake: u32,
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            acc: 0,
            n: 0,
            fake: 0,
            at_marker: false,
        }
    }

    /// Fill the buffer to at least 57 bits.
    #[inline]
    fn refill(&mut self) {
        while self.n <= 56 {
            let byte = if self.at_marker {
                self.fake += 8;
                0
            } else {
                match self.data.get(self.pos) {
                    None => {
                        self.at_marker = true;
                        self.fake += 8;
                        0
                    }
                    Some(&0xFF) => {
                        // 0xFF 0x00 is a data byte 0xFF; 0xFF fill bytes may precede a marker.
                        let mut q = self.pos + 1;
                        while self.data.get(q) == Some(&0xFF) {
                            q += 1;
                        }
                        if self.data.get(q) == Some(&0x00) {
                            self.pos = q + 1;
                            0xFF
                        } else {
                            self.at_marker = true;
                            self.pos = q - 1;
                            self.fake += 8;
                            0
                        }
                    }
                    Some(&b) => {
                        self.pos += 1;
                        b
                    }
                }
            };
            self.acc |= (byte as u64) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline]
    fn ensure(&mut self, k: u32) {
        if self.n < k {
            self.refill();
        }
    }

    #[inline]
    fn peek(&self, k: u32) -> u64 {
        self.acc >> (64 - k)
    }

    #[inline]
    fn consume(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// `s` more bits as a signed coefficient (JPEG's EXTEND): `s` in 0..=16.
    #[inline]
    fn receive_extend(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.peek(s) as i32;
        self.consume(s);
        if v < (1 << (s - 1)) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Error if decoding used bits past the end of the entropy-coded data.
    #[inline]
    fn check_overrun(&self) -> JResult<()> {
        if self.n < self.fake {
            corrupt("entropy-coded data ends early (truncated file?)")
        } else {
            Ok(())
        }
    }

    /// Drop the rest of the segment and step past the restart marker that must follow.
    fn restart(&mut self, expected: u8) -> JResult<()> {
        let (marker, after) = match next_marker(self.data, self.pos) {
            Some(m) => m,
            None => return corrupt("data ends where a restart marker was expected"),
        };
        if marker != 0xD0 + expected {
            return corrupt(format!(
                "expected restart marker RST{expected}, found marker 0x{marker:02X}"
            ));
        }
        self.pos = after;
        self.acc = 0;
        self.n = 0;
        self.fake = 0;
        self.at_marker = false;
        Ok(())
    }
}

/// The next marker at or after `pos`: its code and the position just after it. Bytes before it
/// that are not a marker are skipped (libjpeg skips them with a warning).
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        while *data.get(pos)? != 0xFF {
            pos += 1;
        }
        while *data.get(pos)? == 0xFF {
            pos += 1;
        }
        let code = *data.get(pos)?;
        pos += 1;
        if code != 0 {
            return Some((code, pos));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Integer IDCT (libjpeg's jpeg_idct_islow, as libjpeg-turbo's x86-64 AVX2 code computes it)
// ---------------------------------------------------------------------------------------------
//
// The arithmetic is libjpeg's accurate integer IDCT (13-bit constants, 2 extra bits kept between
// the passes). The integer widths follow libjpeg-turbo's AVX2 routine, which is what Pillow runs
// on x86-64: 16-bit dequantized inputs and intermediates (wrapping adds, 16x16->32-bit products),
// 32-bit sums, results saturated to 16 bits after each pass and to a sample at the end, and a
// whole-block shortcut when coefficient rows 1..7 are all zero. For any block whose values stay
// in range (every block of a normally encoded image) this is exactly libjpeg's C code; it differs
// only on pathological coefficients, where the C code wraps and the SIMD code saturates.

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;
// The rotation constants scaled by 2^13 and rounded, as libjpeg's FIX_* values.
const F_0_298: i32 = 2446;
const F_0_390: i32 = 3196;
const F_0_541: i32 = 4433;
const F_0_765: i32 = 6270;
const F_0_899: i32 = 7373;
const F_1_175: i32 = 9633;
const F_1_501: i32 = 12299;
const F_1_847: i32 = 15137;
const F_1_961: i32 = 16069;
const F_2_053: i32 = 16819;
const F_2_562: i32 = 20995;
const F_3_072: i32 = 25172;

/// Sum of two 16x16-bit products in 32 bits (the SIMD multiply-add), wrapping.
#[inline(always)]
fn madd(a: i16, ca: i32, b: i16, cb: i32) -> i32 {
    (a as i32 * ca).wrapping_add(b as i32 * cb)
}

/// One 8-point inverse DCT of the LL&M scheme in libjpeg's fixed point, descaled by `shift` and
/// saturated to 16 bits. `x`: the 8 frequency samples (index = frequency) -> 8 spatial samples.
#[inline(always)]
fn idct_1d(x: [i16; 8], shift: u32) -> [i16; 8] {
    // Even part.
    let tmp3 = madd(x[2], F_0_541 + F_0_765, x[6], F_0_541);
    let tmp2 = madd(x[2], F_0_541, x[6], F_0_541 - F_1_847);
    let tmp0 = (x[0].wrapping_add(x[4]) as i32) << CONST_BITS;
    let tmp1 = (x[0].wrapping_sub(x[4]) as i32) << CONST_BITS;
    let tmp10 = tmp0.wrapping_add(tmp3);
    let tmp13 = tmp0.wrapping_sub(tmp3);
    let tmp11 = tmp1.wrapping_add(tmp2);
    let tmp12 = tmp1.wrapping_sub(tmp2);
    // Odd part.
    let z3 = x[7].wrapping_add(x[3]);
    let z4 = x[5].wrapping_add(x[1]);
    let z3s = madd(z3, F_1_175 - F_1_961, z4, F_1_175);
    let z4s = madd(z4, F_1_175 - F_0_390, z3, F_1_175);
    let t0 = madd(x[7], F_0_298 - F_0_899, x[1], -F_0_899).wrapping_add(z3s);
    let t1 = madd(x[5], F_2_053 - F_2_562, x[3], -F_2_562).wrapping_add(z4s);
    let t3 = madd(x[7], -F_0_899, x[1], F_1_501 - F_0_899).wrapping_add(z4s);
    let t2 = madd(x[5], -F_2_562, x[3], F_3_072 - F_2_562).wrapping_add(z3s);
    let out = |v: i32| {
        let d = v.wrapping_add(1 << (shift - 1)) >> shift;
        d.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    };
    [
        out(tmp10.wrapping_add(t3)),
        out(tmp11.wrapping_add(t2)),
        out(tmp12.wrapping_add(t1)),
        out(tmp13.wrapping_add(t0)),
        out(tmp13.wrapping_sub(t0)),
        out(tmp12.wrapping_sub(t1)),
        out(tmp11.wrapping_sub(t2)),
        out(tmp10.wrapping_sub(t3)),
    ]
}

/// Level shift and clamp of a second-pass output to a sample.
#[inline(always)]
fn to_sample(v: i16) -> u8 {
    (v.clamp(-128, 127) + 128) as u8
}

/// Dequantize and inverse-transform one block into `out` (8 rows of `stride`).
/// `coef`: quantized coefficients in natural order; `q`: the quantization table, natural order.
/// `first_row_only`: whether coefficient rows 1..7 are all zero (the SIMD code's shortcut test).
fn idct_block(
    coef: &[i32; 64],
    first_row_only: bool,
    q: &[u16; 64],
    out: &mut [u8],
    stride: usize,
) {
    // Dequantization keeps the low 16 bits of the product, like the SIMD multiply.
    let dq = |i: usize| (coef[i] as i16).wrapping_mul(q[i] as i16);
    let mut ws = [0i16; 64];
    if first_row_only {
        // Only the first coefficient row: every column is flat.
        for c in 0..8 {
            let v = dq(c).wrapping_shl(PASS1_BITS);
            for r in 0..8 {
                ws[r * 8 + c] = v;
            }
        }
    } else {
        // Pass 1: columns, kept with PASS1_BITS extra bits.
        for c in 0..8 {
            let col = [
                dq(c),
                dq(8 + c),
                dq(16 + c),
                dq(24 + c),
                dq(32 + c),
                dq(40 + c),
                dq(48 + c),
                dq(56 + c),
            ];
            let o = idct_1d(col, CONST_BITS - PASS1_BITS);
            for (r, v) in o.into_iter().enumerate() {
                ws[r * 8 + c] = v;
            }
        }
    }
    // Pass 2: rows, descaled by the remaining bits and the 8x8 normalization (3 bits).
    for r in 0..8 {
        let mut row = [0i16; 8];
        row.copy_from_slice(&ws[r * 8..r * 8 + 8]);
        let o = idct_1d(row, CONST_BITS + PASS1_BITS + 3);
        for (d, v) in out[r * stride..r * stride + 8].iter_mut().zip(o) {
            *d = to_sample(v);
        }
    }
}

/// A block whose AC coefficients are all zero: one flat value (the same as [`idct_block`]).
fn dc_block(dc: i32, q0: u16, out: &mut [u8], stride: usize) {
    let x0 = (dc as i16).wrapping_mul(q0 as i16).wrapping_shl(PASS1_BITS);
    let o = idct_1d([x0, 0, 0, 0, 0, 0, 0, 0], CONST_BITS + PASS1_BITS + 3);
    let s = to_sample(o[0]);
    for r in 0..8 {
        out[r * stride..r * stride + 8].fill(s);
    }
}

// ---------------------------------------------------------------------------------------------
// Frame, scans and markers
// ---------------------------------------------------------------------------------------------

struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    /// Quantization table latched when the component's scan starts.
    qt: [u16; 64],
    /// Samples of the component (ceil(W * h / hmax), ceil(H * v / vmax)).
    dw: usize,
    dh: usize,
    /// Decoded samples, `pw` x `ph` (whole MCUs).
    pw: usize,
    ph: usize,
    plane: Vec<u8>,
    decoded: bool,
}

struct Frame {
    width: usize,
    height: usize,
    comps: Vec<Component>,
    hmax: usize,
    vmax: usize,
    mcux: usize,
    mcuy: usize,
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    qtables: [Option<[u16; 64]>; 4],
    dc_tables: [Option<Huffman>; 4],
    ac_tables: [Option<Huffman>; 4],
    restart_interval: usize,
    frame: Option<Frame>,
    saw_jfif: bool,
    adobe_transform: Option<u8>,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8]) -> Self {
        Decoder {
            data,
            pos: 0,
            qtables: [None; 4],
            dc_tables: [None, None, None, None],
            ac_tables: [None, None, None, None],
            restart_interval: 0,
            frame: None,
            saw_jfif: false,
            adobe_transform: None,
        }
    }

    fn run(mut self) -> JResult<(Vec<u8>, u32, u32)> {
        if !is_jpeg(self.data) {
            return corrupt("not a JPEG file (no SOI marker)");
        }
        self.pos = 2;
        loop {
            let Some((marker, after)) = next_marker(self.data, self.pos) else {
                // libjpeg accepts a missing EOI once every scan has been read.
                if self
                    .frame
                    .as_ref()
                    .is_some_and(|f| f.comps.iter().all(|c| c.decoded))
                {
                    break;
                }
                return corrupt("file ends before the image data (truncated?)");
            };
            self.pos = after;
            match marker {
                0xD9 => break,
                0xD8 => return corrupt("second SOI marker"),
                0xD0..=0xD7 | 0x01 => {}
                0xC0 | 0xC1 => {
                    let seg = self.segment()?;
                    self.read_sof(seg)?;
                }
                0xC2 => return unsupported("progressive JPEG"),
                0xC3 => return unsupported("lossless JPEG"),
                0xC5..=0xC7 => return unsupported("hierarchical JPEG"),
                0xC9..=0xCF => return unsupported("arithmetic-coded JPEG"),
                0xC4 => {
                    let seg = self.segment()?;
                    self.read_dht(seg)?;
                }
                0xDB => {
                    let seg = self.segment()?;
                    self.read_dqt(seg)?;
                }
                0xDD => {
                    let seg = self.segment()?;
                    if seg.len() != 2 {
                        return corrupt("bad DRI segment length");
                    }
                    self.restart_interval = u16::from_be_bytes([seg[0], seg[1]]) as usize;
                }
                0xDA => {
                    let seg = self.segment()?;
                    self.read_scan(seg)?;
                }
                0xE0 => {
                    let seg = self.segment()?;
                    if seg.len() >= 14 && seg.starts_with(b"JFIF\0") {
                        self.saw_jfif = true;
                    }
                }
                0xEE => {
                    let seg = self.segment()?;
                    if seg.len() >= 12 && seg.starts_with(b"Adobe") {
                        self.adobe_transform = Some(seg[11]);
                    }
                }
                _ => {
                    self.segment()?;
                }
            }
        }
        let frame = match self.frame.take() {
            Some(f) => f,
            None => return corrupt("no frame header (SOF) before EOI"),
        };
        if let Some(c) = frame.comps.iter().find(|c| !c.decoded) {
            return corrupt(format!("component {} has no scan", c.id));
        }
        let rgb = self.output(&frame)?;
        Ok((rgb, frame.width as u32, frame.height as u32))
    }

    /// The payload of a marker segment at `pos` (after its 2-byte length); advances past it.
    fn segment(&mut self) -> JResult<&'a [u8]> {
        let data = self.data;
        let len = match data.get(self.pos..self.pos + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return corrupt("file ends inside a marker segment"),
        };
        if len < 2 {
            return corrupt("marker segment length below 2");
        }
        let seg = match data.get(self.pos + 2..self.pos + len) {
            Some(s) => s,
            None => return corrupt("file ends inside a marker segment"),
        };
        self.pos += len;
        Ok(seg)
    }

    fn read_sof(&mut self, seg: &[u8]) -> JResult<()> {
        if self.frame.is_some() {
            return corrupt("second frame header (SOF)");
        }
        if seg.len() < 6 {
            return corrupt("SOF segment too short");
        }
        let precision = seg[0];
        let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
        let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
        let nc = seg[5] as usize;
        if precision != 8 {
            return unsupported(format!("{precision}-bit samples"));
        }
        if height == 0 {
            return unsupported("image height defined by a DNL marker");
        }
        if width == 0 {
            return corrupt("image width 0");
        }
        if (width as u64) * (height as u64) > MAX_PIXELS {
            return corrupt(format!(
                "{width}x{height} exceeds the decompression-bomb limit of {MAX_PIXELS} pixels"
            ));
        }
        if seg.len() != 6 + 3 * nc {
            return corrupt("SOF segment length does not match its component count");
        }
        if nc != 1 && nc != 3 {
            return unsupported(format!(
                "{nc} components (only greyscale and 3-component colour)"
            ));
        }
        let mut comps = Vec::with_capacity(nc);
        for i in 0..nc {
            let b = &seg[6 + 3 * i..9 + 3 * i];
            let (h, v, tq) = ((b[1] >> 4) as usize, (b[1] & 15) as usize, b[2] as usize);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return corrupt(format!("bad sampling factors {h}x{v}"));
            }
            if tq > 3 {
                return corrupt(format!("bad quantization table index {tq}"));
            }
            if comps.iter().any(|c: &Component| c.id == b[0]) {
                return corrupt(format!("duplicate component id {}", b[0]));
            }
            comps.push(Component {
                id: b[0],
                h,
                v,
                tq,
                qt: [0; 64],
                dw: 0,
                dh: 0,
                pw: 0,
                ph: 0,
                plane: Vec::new(),
                decoded: false,
            });
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
        for c in &comps {
            if hmax % c.h != 0 || vmax % c.v != 0 {
                return unsupported("fractional sampling ratios");
            }
        }
        let mcux = width.div_ceil(8 * hmax);
        let mcuy = height.div_ceil(8 * vmax);
        for c in &mut comps {
            c.dw = (width * c.h).div_ceil(hmax);
            c.dh = (height * c.v).div_ceil(vmax);
            c.pw = mcux * c.h * 8;
            c.ph = mcuy * c.v * 8;
        }
        self.frame = Some(Frame {
            width,
            height,
            comps,
            hmax,
            vmax,
            mcux,
            mcuy,
        });
        Ok(())
    }

    fn read_dqt(&mut self, mut seg: &[u8]) -> JResult<()> {
        while !seg.is_empty() {
            let (pq, tq) = (seg[0] >> 4, (seg[0] & 15) as usize);
            if tq > 3 {
                return corrupt(format!("bad quantization table index {tq}"));
            }
            let size = match pq {
                0 => 64,
                1 => 128,
                _ => return corrupt(format!("bad quantization table precision {pq}")),
            };
            let body = match seg.get(1..1 + size) {
                Some(b) => b,
                None => return corrupt("DQT segment too short"),
            };
            let mut t = [0u16; 64];
            for (i, &pos) in NATURAL[..64].iter().enumerate() {
                t[pos] = if pq == 0 {
                    body[i] as u16
                } else {
                    u16::from_be_bytes([body[2 * i], body[2 * i + 1]])
                };
            }
            self.qtables[tq] = Some(t);
            seg = &seg[1 + size..];
        }
        Ok(())
    }

    fn read_dht(&mut self, mut seg: &[u8]) -> JResult<()> {
        while !seg.is_empty() {
            let (tc, th) = (seg[0] >> 4, (seg[0] & 15) as usize);
            if tc > 1 || th > 3 {
                return corrupt(format!("bad Huffman table class/index {tc}/{th}"));
            }
            let counts: [u8; 16] = match seg.get(1..17) {
                Some(c) => c.try_into().map_err(|_| JpegError::Corrupt("DHT".into()))?,
                None => return corrupt("DHT segment too short"),
            };
            let n: usize = counts.iter().map(|&c| c as usize).sum();
            let values = match seg.get(17..17 + n) {
                Some(v) => v,
                None => return corrupt("DHT segment too short"),
            };
            let table = Huffman::new(&counts, values)?;
            if tc == 0 {
                self.dc_tables[th] = Some(table);
            } else {
                self.ac_tables[th] = Some(table);
            }
            seg = &seg[17 + n..];
        }
        Ok(())
    }

    /// A Huffman table by class and index; libjpeg-turbo falls back to the standard tables of
    /// JPEG Annex K.3 (indices 0 and 1) when a file defines none, as Motion-JPEG frames do.
    fn huffman(&self, ac: bool, idx: usize) -> JResult<Huffman> {
        let defined = if ac {
            &self.ac_tables[idx]
        } else {
            &self.dc_tables[idx]
        };
        if let Some(t) = defined {
            return Ok(t.clone());
        }
        match (ac, idx) {
            (false, 0) => Huffman::new(&STD_DC_LUMA_COUNTS, &STD_DC_LUMA_VALUES),
            (true, 0) => Huffman::new(&STD_AC_LUMA_COUNTS, &STD_AC_LUMA_VALUES),
            (false, 1) => Huffman::new(&STD_DC_CHROMA_COUNTS, &STD_DC_CHROMA_VALUES),
            (true, 1) => Huffman::new(&STD_AC_CHROMA_COUNTS, &STD_AC_CHROMA_VALUES),
            _ => corrupt(format!(
                "scan uses undefined {} Huffman table {idx}",
                if ac { "AC" } else { "DC" }
            )),
        }
    }

    fn read_scan(&mut self, seg: &[u8]) -> JResult<()> {
        let Some(mut frame) = self.frame.take() else {
            return corrupt("scan (SOS) before the frame header (SOF)");
        };
        let ns = *seg.first().unwrap_or(&0) as usize;
        if ns == 0 || ns > 4 || seg.len() != 1 + 2 * ns + 3 {
            return corrupt("bad SOS segment");
        }
        // Spectral selection / successive approximation fields are ignored for sequential
        // files, as libjpeg does (with a warning) when they are not 0, 63, 0, 0.
        let mut members: Vec<(usize, Huffman, Huffman)> = Vec::with_capacity(ns);
        for i in 0..ns {
            let (cs, t) = (seg[1 + 2 * i], seg[2 + 2 * i]);
            let Some(ci) = frame.comps.iter().position(|c| c.id == cs) else {
                return corrupt(format!("scan names unknown component {cs}"));
            };
            if members.iter().any(|m| m.0 == ci) || frame.comps[ci].decoded {
                return corrupt(format!("component {cs} appears in more than one scan"));
            }
            let (td, ta) = ((t >> 4) as usize, (t & 15) as usize);
            if td > 3 || ta > 3 {
                return corrupt(format!("bad Huffman table selectors {td}/{ta}"));
            }
            members.push((ci, self.huffman(false, td)?, self.huffman(true, ta)?));
        }
        if ns > 1 {
            let blocks: usize = members
                .iter()
                .map(|m| frame.comps[m.0].h * frame.comps[m.0].v)
                .sum();
            if blocks > 10 {
                return corrupt("more than 10 blocks per MCU");
            }
        }
        // Geometry: an interleaved scan covers whole MCUs; a one-component scan covers the
        // component's own blocks only.
        let (mcus_x, mcus_y) = if ns == 1 {
            let c = &frame.comps[members[0].0];
            (c.dw.div_ceil(8), c.dh.div_ceil(8))
        } else {
            (frame.mcux, frame.mcuy)
        };
        let blocks_per_mcu: usize = if ns == 1 {
            1
        } else {
            members
                .iter()
                .map(|m| frame.comps[m.0].h * frame.comps[m.0].v)
                .sum()
        };
        // Every block takes at least 2 bits (a DC code and an end-of-block code), which bounds
        // the image a given number of bytes can hold: a cheap guard against absurd headers.
        let total_blocks = (mcus_x as u64) * (mcus_y as u64) * blocks_per_mcu as u64;
        let remaining = (self.data.len() - self.pos) as u64;
        if total_blocks > 4 * remaining + 4 {
            return corrupt(format!(
                "{}x{} image needs more entropy-coded data than the file holds (truncated?)",
                frame.width, frame.height
            ));
        }
        for m in &members {
            let c = &mut frame.comps[m.0];
            c.qt = match self.qtables[c.tq] {
                Some(t) => t,
                None => return corrupt(format!("quantization table {} is not defined", c.tq)),
            };
            c.plane = vec![0u8; c.pw * c.ph];
        }

        let mut bits = Bits::new(self.data, self.pos);
        let mut pred = [0i32; 4];
        let mut coef = [0i32; 64];
        let total_mcus = mcus_x * mcus_y;
        let ri = self.restart_interval;
        let mut next_rst = 0u8;
        for mcu in 0..total_mcus {
            if ri > 0 && mcu > 0 && mcu % ri == 0 {
                bits.restart(next_rst)?;
                next_rst = (next_rst + 1) & 7;
                pred = [0; 4];
            }
            let (mx, my) = (mcu % mcus_x, mcu / mcus_x);
            for (k, (ci, dc, ac)) in members.iter().enumerate() {
                let c = &mut frame.comps[*ci];
                let (bh, bv) = if ns == 1 { (1, 1) } else { (c.h, c.v) };
                for v in 0..bv {
                    for h in 0..bh {
                        let kind = decode_block(&mut bits, dc, ac, &mut pred[k], &mut coef)?;
                        let (bx, by) = (mx * bh + h, my * bv + v);
                        let off = by * 8 * c.pw + bx * 8;
                        let out = &mut c.plane[off..];
                        if kind == BlockKind::DcOnly {
                            dc_block(coef[0], c.qt[0], out, c.pw);
                        } else {
                            let first_row_only = kind == BlockKind::FirstRowOnly;
                            idct_block(&coef, first_row_only, &c.qt, out, c.pw);
                        }
                    }
                }
            }
            bits.check_overrun()?;
        }
        for m in &members {
            frame.comps[m.0].decoded = true;
        }
        self.pos = bits.pos;
        self.frame = Some(frame);
        Ok(())
    }

    /// Upsample and colour-convert the decoded planes to interleaved RGB.
    fn output(&self, f: &Frame) -> JResult<Vec<u8>> {
        let (w, h) = (f.width, f.height);
        let mut rgb = vec![0u8; w * h * 3];
        if f.comps.len() == 1 {
            let c = &f.comps[0];
            for (y, dst) in rgb.chunks_exact_mut(w * 3).enumerate() {
                let src = &c.plane[y * c.pw..y * c.pw + w];
                for (d, &s) in dst.chunks_exact_mut(3).zip(src) {
                    d.fill(s);
                }
            }
            return Ok(rgb);
        }
        let full: Vec<std::borrow::Cow<[u8]>> =
            f.comps.iter().map(|c| upsample(c, f)).collect::<Vec<_>>();
        // Row stride of each full-resolution plane (full-size planes are used in place).
        let stride: Vec<usize> = f
            .comps
            .iter()
            .map(|c| {
                if c.h == f.hmax && c.v == f.vmax {
                    c.pw
                } else {
                    w
                }
            })
            .collect();
        let ycc = match (self.saw_jfif, self.adobe_transform) {
            (true, _) => true,
            (false, Some(t)) => t != 0,
            (false, None) => {
                let ids: Vec<u8> = f.comps.iter().map(|c| c.id).collect();
                ids != [b'R', b'G', b'B']
            }
        };
        let tables = if ycc { Some(YccTables::new()) } else { None };
        for (y, dst) in rgb.chunks_exact_mut(w * 3).enumerate() {
            let p0 = &full[0][y * stride[0]..y * stride[0] + w];
            let p1 = &full[1][y * stride[1]..y * stride[1] + w];
            let p2 = &full[2][y * stride[2]..y * stride[2] + w];
            match &tables {
                Some(t) => {
                    for (x, d) in dst.chunks_exact_mut(3).enumerate() {
                        let yv = p0[x] as i32;
                        let (cb, cr) = (p1[x] as usize, p2[x] as usize);
                        let g = (t.cb_g[cb] + t.cr_g[cr]) >> 16;
                        d.copy_from_slice(&[
                            clamp_u8(yv + t.cr_r[cr]),
                            clamp_u8(yv + g),
                            clamp_u8(yv + t.cb_b[cb]),
                        ]);
                    }
                }
                None => {
                    for (((d, &r), &g), &b) in dst.chunks_exact_mut(3).zip(p0).zip(p1).zip(p2) {
                        d[0] = r;
                        d[1] = g;
                        d[2] = b;
                    }
                }
            }
        }
        Ok(rgb)
    }
}

/// What a decoded block holds, for the IDCT's shortcuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// Only the DC coefficient can be non-zero.
    DcOnly,
    /// Only coefficient row 0 (horizontal frequencies) can be non-zero.
    FirstRowOnly,
    Full,
}

/// Huffman-decode one block into `coef` (natural order, zeroed first), updating the DC predictor.
/// Returns which coefficients can be non-zero.
#[inline]
fn decode_block(
    bits: &mut Bits,
    dc: &Huffman,
    ac: &Huffman,
    pred: &mut i32,
    coef: &mut [i32; 64],
) -> JResult<BlockKind> {
    coef.fill(0);
    bits.ensure(32);
    let s = dc.decode(bits)? as u32;
    if s > 15 {
        return corrupt(format!("bad DC coefficient size {s}"));
    }
    let diff = bits.receive_extend(s);
    *pred = match pred.checked_add(diff) {
        Some(p) => p,
        None => return corrupt("DC coefficient overflows"),
    };
    // libjpeg stores coefficients as 16-bit values.
    coef[0] = *pred as i16 as i32;
    // Largest natural-order position written.
    let mut last = 0usize;
    let mut k = 1usize;
    while k < 64 {
        bits.ensure(32);
        let rs = ac.decode(bits)?;
        let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
        if s != 0 {
            k += r;
            coef[NATURAL[k]] = bits.receive_extend(s);
            last = last.max(NATURAL[k]);
            k += 1;
        } else if r == 15 {
            k += 16;
        } else {
            break;
        }
    }
    Ok(if last == 0 {
        BlockKind::DcOnly
    } else if last < 8 {
        BlockKind::FirstRowOnly
    } else {
        BlockKind::Full
    })
}

#[inline(always)]
fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// libjpeg's YCbCr->RGB tables: 16 fraction bits, constants rounded like its FIX macro.
struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

impl YccTables {
    fn new() -> Self {
        const SCALEBITS: u32 = 16;
        const ONE_HALF: i64 = 1 << (SCALEBITS - 1);
        let fix = |x: f64| (x * (1i64 << SCALEBITS) as f64 + 0.5) as i64;
        let mut t = YccTables {
            cr_r: [0; 256],
            cb_b: [0; 256],
            cr_g: [0; 256],
            cb_g: [0; 256],
        };
        for i in 0..256usize {
            let x = i as i64 - 128;
            t.cr_r[i] = ((fix(1.40200) * x + ONE_HALF) >> SCALEBITS) as i32;
            t.cb_b[i] = ((fix(1.77200) * x + ONE_HALF) >> SCALEBITS) as i32;
            t.cr_g[i] = (-fix(0.71414) * x) as i32;
            t.cb_g[i] = (-fix(0.34414) * x + ONE_HALF) as i32;
        }
        t
    }
}

/// A component at full resolution (`[H, W]`, row stride W), or its decoded plane itself when it
/// is not subsampled (row stride `pw`). The filter per sampling ratio is libjpeg-turbo's choice
/// with fancy upsampling on: triangle filters for 2:1 horizontal (when the component is more than
/// 2 samples wide), 2:1 vertical, and 2:1 both ways (again more than 2 samples wide);
/// replication for everything else.
fn upsample<'p>(c: &'p Component, f: &Frame) -> std::borrow::Cow<'p, [u8]> {
    use std::borrow::Cow;
    let (hr, vr) = (f.hmax / c.h, f.vmax / c.v);
    let (w, h) = (f.width, f.height);
    if hr == 1 && vr == 1 {
        return Cow::Borrowed(&c.plane);
    }
    let mut out = vec![0u8; w * h];
    let row = |y: usize| &c.plane[y * c.pw..y * c.pw + c.dw];
    let mut tmp = vec![0u8; 2 * c.dw];
    match (hr, vr) {
        (2, 1) if c.dw > 2 => {
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                h2v1_fancy(row(y), &mut tmp);
                dst.copy_from_slice(&tmp[..w]);
            }
        }
        (1, 2) => {
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                let (near, far, bias) = vertical_pair(y, c.dh);
                let (a, b) = (row(near), row(far));
                for ((d, &x0), &x1) in dst.iter_mut().zip(a).zip(b) {
                    *d = ((x0 as u32 * 3 + x1 as u32 + bias) >> 2) as u8;
                }
            }
        }
        (2, 2) if c.dw > 2 => {
            let mut sums = vec![0u32; c.dw];
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                let (near, far, _) = vertical_pair(y, c.dh);
                for ((s, &x0), &x1) in sums.iter_mut().zip(row(near)).zip(row(far)) {
                    *s = x0 as u32 * 3 + x1 as u32;
                }
                h2v2_fancy(&sums, &mut tmp);
                dst.copy_from_slice(&tmp[..w]);
            }
        }
        _ => {
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                let src = &c.plane[(y / vr) * c.pw..];
                for (x, d) in dst.iter_mut().enumerate() {
                    *d = src[x / hr];
                }
            }
        }
    }
    Cow::Owned(out)
}

/// For output row `y` of a 2:1 vertical upsampling: the nearer input row, the farther one (the
/// row above for even `y`, below for odd `y`, the edge row repeated beyond the component's `dh`
/// rows), and the rounding bias of libjpeg's h1v2 filter (1 above, 2 below).
#[inline]
fn vertical_pair(y: usize, dh: usize) -> (usize, usize, u32) {
    let near = y / 2;
    if y.is_multiple_of(2) {
        (near, near.saturating_sub(1), 1)
    } else {
        (near, (near + 1).min(dh - 1), 2)
    }
}

/// libjpeg's h2v1 triangle filter: `src` (n > 2 samples) -> `dst` (2n samples). Output pixel
/// centres sit 1/4 and 3/4 between input centres; rounding alternates (+1 / +2) between them.
fn h2v1_fancy(src: &[u8], dst: &mut [u8]) {
    let n = src.len();
    dst[0] = src[0];
    dst[1] = ((src[0] as u32 * 3 + src[1] as u32 + 2) >> 2) as u8;
    for i in 1..n - 1 {
        let v = src[i] as u32 * 3;
        dst[2 * i] = ((v + src[i - 1] as u32 + 1) >> 2) as u8;
        dst[2 * i + 1] = ((v + src[i + 1] as u32 + 2) >> 2) as u8;
    }
    dst[2 * n - 2] = ((src[n - 1] as u32 * 3 + src[n - 2] as u32 + 1) >> 2) as u8;
    dst[2 * n - 1] = src[n - 1];
}

/// libjpeg's h2v2 triangle filter on one output row, from the column sums
/// `3 * nearer row + farther row` (n > 2 of them) -> `dst` (2n samples); biases 8 and 7.
fn h2v2_fancy(sums: &[u32], dst: &mut [u8]) {
    let n = sums.len();
    dst[0] = ((sums[0] * 4 + 8) >> 4) as u8;
    dst[1] = ((sums[0] * 3 + sums[1] + 7) >> 4) as u8;
    for i in 1..n - 1 {
        let v = sums[i] * 3;
        dst[2 * i] = ((v + sums[i - 1] + 8) >> 4) as u8;
        dst[2 * i + 1] = ((v + sums[i + 1] + 7) >> 4) as u8;
    }
    dst[2 * n - 2] = ((sums[n - 1] * 3 + sums[n - 2] + 8) >> 4) as u8;
    dst[2 * n - 1] = ((sums[n - 1] * 4 + 7) >> 4) as u8;
}

// The standard Huffman tables of JPEG Annex K.3 (what libjpeg-turbo uses for a file without DHT).
const STD_DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const STD_DC_LUMA_VALUES: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
];
const STD_AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 125];
const STD_AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];
const STD_DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const STD_DC_CHROMA_VALUES: [u8; 12] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
];
const STD_AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 119];
const STD_AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jpeg")
            .join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn corrupt_msg(data: &[u8]) -> String {
        match decode(data) {
            Err(JpegError::Corrupt(m)) => m,
            other => panic!(
                "expected a Corrupt error, got {:?}",
                other.map(|r| (r.1, r.2))
            ),
        }
    }

    #[test]
    fn standard_tables_are_valid() {
        Huffman::new(&STD_DC_LUMA_COUNTS, &STD_DC_LUMA_VALUES).unwrap();
        Huffman::new(&STD_AC_LUMA_COUNTS, &STD_AC_LUMA_VALUES).unwrap();
        Huffman::new(&STD_DC_CHROMA_COUNTS, &STD_DC_CHROMA_VALUES).unwrap();
        Huffman::new(&STD_AC_CHROMA_COUNTS, &STD_AC_CHROMA_VALUES).unwrap();
    }

    #[test]
    fn bad_huffman_tables_are_rejected() {
        // Three 1-bit codes cannot exist; neither can the all-ones code of a length.
        let mut counts = [0u8; 16];
        counts[0] = 3;
        assert!(Huffman::new(&counts, &[0, 1, 2]).is_err());
        counts[0] = 2;
        assert!(Huffman::new(&counts, &[0, 1]).is_err());
        counts[0] = 1;
        assert!(Huffman::new(&counts, &[0]).is_ok());
    }

    #[test]
    fn not_a_jpeg() {
        assert!(corrupt_msg(b"\x89PNG\r\n\x1a\n").contains("no SOI"));
        assert!(corrupt_msg(b"").contains("no SOI"));
    }

    #[test]
    fn truncated_file_names_the_problem() {
        let data = fixture("q90_420_131x70_optimized.jpg");
        // Cut in the middle of the entropy-coded data.
        let msg = corrupt_msg(&data[..data.len() * 2 / 3]);
        assert!(msg.contains("truncated"), "{msg}");
        // Cut inside the header.
        let msg = corrupt_msg(&data[..40]);
        assert!(msg.contains("ends"), "{msg}");
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled_without_panic() {
        for name in [
            "q75_420_83x45.jpg",
            "rst2_q90_420_83x45.jpg",
            "gray_q75_8x8.jpg",
        ] {
            let data = fixture(name);
            let full = decode(&data).unwrap();
            for cut in 0..data.len() {
                // Every strict prefix is an error, except one that only drops the EOI marker
                // (libjpeg accepts a missing EOI); none may panic.
                match decode(&data[..cut]) {
                    Ok(img) => {
                        assert!(cut >= data.len() - 2, "{name}: prefix {cut} decoded");
                        assert_eq!(img, full);
                    }
                    Err(JpegError::Corrupt(_)) => {}
                    Err(e) => panic!("{name}: prefix {cut}: {e}"),
                }
            }
            let mut state = 0x1234_5678u32;
            for i in 0..2000usize {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let mut d = data.clone();
                let at = state as usize % d.len();
                d[at] ^= (1 + (state >> 24) % 255) as u8;
                if i % 3 == 0 {
                    let at2 = (state >> 8) as usize % d.len();
                    d[at2] = 0xFF;
                }
                // Any outcome but a panic is acceptable for damaged data.
                let _ = decode(&d);
            }
        }
    }

    #[test]
    fn progressive_is_unsupported_not_corrupt() {
        let data = fixture("progressive.jpg");
        assert!(matches!(decode(&data), Err(JpegError::Unsupported(_))));
        assert!(try_decode_rgb(&data).unwrap().is_none());
        assert!(decode_rgb(&data).is_err());
    }

    #[test]
    fn absurd_dimensions_are_rejected_before_allocating() {
        let mut data = fixture("gray_q75_8x8.jpg");
        // Patch the SOF0 height and width to 65535 x 65535.
        let sof = data.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        data[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(corrupt_msg(&data).contains("decompression-bomb"));
        data[sof + 5..sof + 9].copy_from_slice(&[0x04, 0x00, 0x04, 0x00]);
        assert!(corrupt_msg(&data).contains("more entropy-coded data"));
    }

    /// `data` without its DHT segments.
    fn strip_dht(data: &[u8]) -> Vec<u8> {
        let mut out = data[..2].to_vec();
        let mut pos = 2;
        while pos + 4 <= data.len() && data[pos] == 0xFF && data[pos + 1] != 0xDA {
            let len = u16::from_be_bytes([data[pos + 2], data[pos + 3]]) as usize;
            if data[pos + 1] != 0xC4 {
                out.extend_from_slice(&data[pos..pos + 2 + len]);
            }
            pos += 2 + len;
        }
        out.extend_from_slice(&data[pos..]);
        out
    }

    #[test]
    fn missing_huffman_tables_default_to_the_standard_ones() {
        // OpenCV's libjpeg writes the standard tables when not optimizing; a Motion-JPEG frame
        // leaves them out, and libjpeg-turbo then uses the standard tables.
        let data = fixture("rst2_q90_420_83x45.jpg");
        let stripped = strip_dht(&data);
        assert!(
            stripped.len() < data.len() - 400,
            "no DHT segment was removed"
        );
        assert_eq!(decode(&stripped).unwrap(), decode(&data).unwrap());
        // An optimized file's own tables are not the standard ones: decoding must then differ
        // or fail, which proves the DHT segments were really used.
        let opt = fixture("q90_420_131x70_optimized.jpg");
        assert_ne!(decode(&strip_dht(&opt)).ok(), Some(decode(&opt).unwrap()));
    }

    #[test]
    fn dc_only_block_equals_full_idct() {
        let q: [u16; 64] = std::array::from_fn(|i| 1 + (i as u16 * 7) % 50);
        for dc in [
            -2048, -1024, -1000, -17, -1, 0, 1, 5, 63, 64, 1000, 1023, 2047,
        ] {
            let mut coef = [0i32; 64];
            coef[0] = dc;
            let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
            idct_block(&coef, true, &q, &mut a, 8);
            dc_block(dc, q[0], &mut b, 8);
            assert_eq!(a, b, "dc {dc}");
        }
    }
}
