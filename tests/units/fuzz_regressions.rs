//! Inputs the fuzz targets (fuzz/, docs/reliability.md "Fuzzing") found crashing, hanging or
//! allocating without bound, each kept as a regression test: every one must now be refused
//! with an error, before any allocation sized by the bogus field.

use std::io::Write;
use std::path::{Path, PathBuf};
use vosbench::bench::cache::{read_header, CachedFrames};
use vosbench::data::masks::read_label_png;
use vosbench::weights::reader::{read_checkpoint, scan_pickle};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn vfc_header(frames: u32, side: u32) -> Vec<u8> {
    let mut h = b"VOSBFC01".to_vec();
    for v in [64u32, frames, side, 1, 1, 3, 0] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    h.resize(64, 0);
    h
}

/// frames * side * side * 3 wrapped around to 0, so a bare 64-byte header "matched" its file
/// length (a debug build panicked on the overflow; a release build accepted the header and
/// later read frames of 2^31 x 2^31 pixels past the end of the map).
#[test]
fn frame_cache_header_whose_sizes_overflow_is_refused() {
    let d = tempfile::tempdir().unwrap();
    for (frames, side) in [(4, 1 << 31), (1 << 31, 1 << 31), (u32::MAX, u32::MAX)] {
        let p = write(d.path(), "v.s8.vfc", &vfc_header(frames, side));
        let e = read_header(&p).unwrap_err().to_string();
        assert!(
            e.contains("overflow") || e.contains("bytes, the header says"),
            "{e}"
        );
        assert!(CachedFrames::open(&p, 2).is_err());
    }
}

/// prompt_frame + max_clip_frames from metadata.json / inference_config.json overflowed.
#[test]
fn clip_end_saturates() {
    use vosbench::bench::shard::clip_end;
    assert_eq!(clip_end(10, usize::MAX, 5), 10);
    assert_eq!(clip_end(10, 3, usize::MAX), 10);
    assert_eq!(clip_end(10, 2, 5), 7);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn chunk(out: &mut Vec<u8>, kind: &[u8], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(body);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

/// A 16-bit RGBA PNG of 65535 x 65535 pixels in 70 bytes: the reader allocated the 34 GB frame
/// buffer the header asks for before finding that the file holds no such data.
#[test]
fn png_mask_declaring_huge_dimensions_is_refused_before_allocating() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&65535u32.to_be_bytes());
    ihdr.extend_from_slice(&65535u32.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "huge.png", &png);
    let e = read_label_png(&p).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("more than a"), "{e}");
}

fn torch_zip(dir: &Path, pickle: &[u8], storage: &[u8]) -> PathBuf {
    let p = dir.join("ckpt.pt");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", stored).unwrap();
    z.write_all(pickle).unwrap();
    z.start_file("archive/data/0", stored).unwrap();
    z.write_all(storage).unwrap();
    z.finish().unwrap();
    p
}

/// A BINUNICODE length of 4 GiB in an 8-byte pickle: candle allocated it before reading.
#[test]
fn pickle_string_length_past_the_end_is_refused() {
    assert!(scan_pickle(b"\x80\x02X\xff\xff\xff\xff")
        .unwrap_err()
        .contains("runs past the end"));
    let d = tempfile::tempdir().unwrap();
    let p = torch_zip(d.path(), b"\x80\x02X\xff\xff\xff\xffab", b"");
    let e = read_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("malformed PyTorch pickle data"), "{e}");
}

/// Memo copies that double the object tree: `BINGET 0, BINGET 0, TUPLE2, BINPUT 0` 40 times is
/// 280 bytes of pickle and 2^40 objects in candle's reader.
#[test]
fn pickle_memo_doubling_is_refused() {
    let mut pkl = b"\x80\x02]q\x00".to_vec();
    for _ in 0..40 {
        pkl.extend_from_slice(b"h\x00h\x00\x86q\x00");
    }
    pkl.push(b'.');
    assert!(scan_pickle(&pkl).unwrap_err().contains("grow past"));
    let d = tempfile::tempdir().unwrap();
    let p = torch_zip(d.path(), &pkl, b"");
    let e = read_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("malformed PyTorch pickle data"), "{e}");
}

/// A tensor of 2^31 - 1 floats over a 24-byte storage: candle allocated 8 GiB from the shape.
#[test]
fn torch_tensor_larger_than_its_storage_is_refused() {
    let pkl = b"\x80\x02}q\x00X\x01\x00\x00\x00wq\x01ctorch._utils\x0a_rebuild_tensor_v2\x0aq\x02((X\x07\x00\x00\x00storageq\x03ctorch\x0aFloatStorage\x0aq\x04X\x01\x00\x00\x000q\x05X\x03\x00\x00\x00cpuq\x06K\x06tq\x07QK\x00J\xff\xff\xff\x7f\x85q\x08K\x01\x85q\x09\x89ccollections\x0aOrderedDict\x0aq\x0a)Rq\x0btq\x0cRq\x0ds.";
    let d = tempfile::tempdir().unwrap();
    let p = torch_zip(d.path(), pkl, &[0u8; 24]);
    let e = read_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("needs more bytes than its storage"), "{e}");
    // the same pickle with a shape that fits reads
    let fits = pkl
        .windows(5)
        .position(|w| w == b"J\xff\xff\xff\x7f")
        .unwrap();
    let mut ok = pkl[..fits].to_vec();
    ok.extend_from_slice(b"K\x06");
    ok.extend_from_slice(&pkl[fits + 5..]);
    let p = torch_zip(d.path(), &ok, &[0u8; 24]);
    let c = read_checkpoint(&p).unwrap();
    assert_eq!(c.tensors.len(), 1);
    assert_eq!(c.tensors[0].1.dims(), &[6]);
}

/// A tensor whose rebuild tuple is one item short: candle's pickle reader panics
/// (`Vec::remove` out of range). The reader contains it (`guarded`) and reports a malformed
/// file; the fuzz target treats only panics escaping `read_checkpoint` as crashes.
#[test]
fn torch_rebuild_tuple_too_short_is_an_error() {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/pt_short_rebuild_args.pt");
    let e = read_checkpoint(&p).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
}
