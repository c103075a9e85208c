"""Reference data for src/image/jpeg.rs: small JPEGs and what Pillow decodes them to.

Pillow decodes JPEG with libjpeg-turbo, default settings (JDCT_ISLOW integer IDCT, fancy
upsampling, libjpeg's YCbCr->RGB tables); the Rust decoder must reproduce that byte for byte.
The cases exercise every sampling layout the decoder implements, odd sizes (partial MCUs, the
right and bottom edge rules of fancy upsampling), tiny images (chroma 2 samples wide or less, where
libjpeg switches to box upsampling), restart markers, optimized Huffman tables, grayscale, an
Adobe APP14 "transform 0" (RGB, no colour conversion) file, saturated colours (clamping), and
hand-encoded blocks with out-of-range coefficients (how the IDCT overflows: see extreme_blocks),
and hand-encoded files with one scan per component (non-interleaved), with restarts.

Writes tests/fixtures/jpeg/:
  <case>.jpg              one file per case (see CASES below)
  progressive.jpg         a progressive JPEG (outside the decoder's scope: try_decode -> None)
  expected.safetensors    uint8[H,W,3] per case: np.array(Image.open(p).convert("RGB")), keyed
                          by the case name; also video_test.<stem> for
                          tests/fixtures/video_test/frames/<stem>.jpg, stems 00000..00003 (read in place, not copied).
                          Metadata: Pillow and libjpeg-turbo versions.

Run: /root/venvs/ref/bin/python tests/reference/make_jpeg_fixtures.py

Opt-in check on larger or foreign JPEGs (not committed): `make_jpeg_fixtures.py --opt-in DIR`
writes, next to every DIR/*.jpg, DIR/*.jpg.rgb (Pillow's RGB decode, raw HWC bytes); then
`VOSBENCH_JPEG_DIR=DIR cargo test --test units jpeg_pillow -- --nocapture` compares them and
prints decode times. With `--make-1080p`, DIR first gets 1080p.jpg, a 1920x1080 4:2:0 quality-90
photo (skimage's rocket.jpg upscaled) for a speed reference.
"""
import sys
import io
import os
import struct

import cv2
import numpy as np
import PIL
from PIL import Image, features
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "jpeg")
VIDEO = os.path.join(ROOT, "tests", "fixtures", "video_test", "frames")
VIDEO_STEMS = ["00000", "00001", "00002", "00003"]


def synth(seed, w, h):
    """A deterministic test picture: smooth gradients, hard edges, noise and saturated colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 255 * x / max(w - 1, 1)
    img[..., 1] = 255 * y / max(h - 1, 1)
    img[..., 2] = 127 + 120 * np.sin(x / 3.0 + y / 5.0)
    # hard-edged saturated checker in one quadrant
    q = (x < w // 2) & (y >= h // 2)
    checker = ((x // 3 + y // 4) % 3)[q]
    pal = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.float64)
    img[q] = pal[checker]
    # noise in another
    q2 = (x >= w // 2) & (y >= h // 2)
    img[q2] = rng.integers(0, 256, size=(int(q2.sum()), 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pil_jpeg(arr, mode="RGB", **kw):
    buf = io.BytesIO()
    im = Image.fromarray(arr)
    if mode == "L":
        im = im.convert("L")
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def cv2_jpeg(arr, params):
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(arr[..., ::-1]), params)
    assert ok
    return enc.tobytes()


def adobe_rgb(jpeg_bytes):
    """Replace the JFIF APP0 segment with an Adobe APP14 segment saying transform 0 (the samples
    are then RGB, and libjpeg does no colour conversion). The entropy data is unchanged, so the
    "RGB" planes are simply the encoder's Y, Cb, Cr planes."""
    assert jpeg_bytes[:4] == b"\xff\xd8\xff\xe0"
    n = struct.unpack(">H", jpeg_bytes[4:6])[0]
    rest = jpeg_bytes[4 + n:]
    app14 = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0)
    seg = b"\xff\xee" + struct.pack(">H", len(app14) + 2) + app14
    return b"\xff\xd8" + seg + rest


# ---- A minimal baseline encoder for hand-made coefficient blocks -------------------------------
ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
          27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44,
          51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


def std_luma_tables():
    """(dc_counts, dc_values, ac_counts, ac_values) of libjpeg's standard luminance tables, read
    back from a JPEG that OpenCV's libjpeg wrote with them."""
    d = cv2_jpeg(np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    i, tables = 2, {}
    while d[i + 1] != 0xDA:
        n = struct.unpack(">H", d[i + 2:i + 4])[0]
        seg = d[i + 4:i + 2 + n]
        if d[i + 1] == 0xC4:
            j = 0
            while j < len(seg):
                counts = list(seg[j + 1:j + 17])
                tables[seg[j]] = (counts, list(seg[j + 17:j + 17 + sum(counts)]))
                j += 17 + sum(counts)
        i += 2 + n
    return tables[0x00] + tables[0x10]


def encode_scans(width, height, comps, scans, qtable, restart_interval=0):
    """An 8-bit baseline JPEG with hand-made quantized coefficients (natural order), standard
    luminance Huffman tables and one quantization table (natural order) for every component.
    comps: [(id, h, v)]; scans: [(component index, blocks)], one non-interleaved scan per entry,
    `blocks` in raster order over the component's own ceil(w/8) x ceil(h/8) blocks."""
    dc_counts, dc_values, ac_counts, ac_values = std_luma_tables()

    def codes(counts, values):
        out, code, k = {}, 0, 0
        for length in range(1, 17):
            for _ in range(counts[length - 1]):
                out[values[k]] = (code, length)
                k += 1
                code += 1
            code <<= 1
        return out

    dc, ac = codes(dc_counts, dc_values), codes(ac_counts, ac_values)

    def seg(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    def flush(bits):
        bits += [1] * (-len(bits) % 8)
        data = bytearray()
        for i in range(0, len(bits), 8):
            byte = int("".join(map(str, bits[i:i + 8])), 2)
            data.append(byte)
            if byte == 0xFF:
                data.append(0)
        bits.clear()
        return bytes(data)

    out = b"\xff\xd8" + seg(0xDB, b"\x00" + bytes(qtable[ZIGZAG[i]] for i in range(64)))
    sof = struct.pack(">BHHB", 8, height, width, len(comps))
    for cid, h, v in comps:
        sof += bytes([cid, (h << 4) | v, 0])
    out += seg(0xC0, sof)
    out += seg(0xC4, bytes([0x00] + dc_counts + dc_values + [0x10] + ac_counts + ac_values))
    if restart_interval:
        out += seg(0xDD, struct.pack(">H", restart_interval))
    for ci, blocks in scans:
        out += seg(0xDA, bytes([1, comps[ci][0], 0x00, 0, 63, 0]))
        bits, pred, data, rst = [], 0, b"", 0

        def put(value, n):
            bits.extend((value >> i) & 1 for i in range(n - 1, -1, -1))

        def put_value(v):
            s = abs(v).bit_length()
            if s:
                put(v if v >= 0 else v + (1 << s) - 1, s)

        for bi, block in enumerate(blocks):
            if restart_interval and bi > 0 and bi % restart_interval == 0:
                data += flush(bits) + bytes([0xFF, 0xD0 + rst])
                rst, pred = (rst + 1) % 8, 0
            z = [block[ZIGZAG[i]] for i in range(64)]
            diff, pred = z[0] - pred, z[0]
            put(*dc[abs(diff).bit_length()])
            put_value(diff)
            last = max([i for i in range(1, 64) if z[i]], default=0)
            run = 0
            for i in range(1, last + 1):
                if z[i] == 0:
                    run += 1
                    continue
                while run > 15:
                    put(*ac[0xF0])
                    run -= 16
                put(*ac[(run << 4) | abs(z[i]).bit_length()])
                put_value(z[i])
                run = 0
            if last < 63:
                put(*ac[0x00])
        out += data + flush(bits)
    return out + b"\xff\xd9"


def encode_blocks(blocks, qtable):
    """A greyscale 8 x 8*len(blocks) JPEG whose blocks have exactly the given coefficients."""
    return encode_scans(8 * len(blocks), 8, [(1, 1, 1)], [(0, blocks)], qtable)


def multiscan(width, height, sampling, restart_interval, seed):
    """A 3-component sequential JPEG with one scan per component (non-interleaved), random but
    image-like coefficients (smooth DC, a few small AC terms)."""
    rng = np.random.default_rng(seed)
    hmax = max(h for h, _ in sampling)
    vmax = max(v for _, v in sampling)
    comps, scans = [], []
    for ci, (h, v) in enumerate(sampling):
        comps.append((ci + 1, h, v))
        bw = -(-(-(-width * h // hmax)) // 8)
        bh = -(-(-(-height * v // vmax)) // 8)
        blocks = []
        for _ in range(bw * bh):
            c = [0] * 64
            c[0] = int(rng.integers(-60, 60))
            for i in rng.choice(63, int(rng.integers(0, 8)), replace=False):
                c[int(i) + 1] = int(rng.integers(-20, 21))
            blocks.append(c)
        scans.append((ci, blocks))
    q = [int(x) for x in rng.integers(2, 20, size=64)]
    return encode_scans(width, height, comps, scans, q, restart_interval)


def extreme_blocks():
    """Blocks whose IDCT leaves the sample range by far (|value| >= 512, 16-bit overflow of the
    dequantized coefficient): libjpeg's C code would wrap, its SIMD code saturates; Pillow on
    x86-64 shows which one it runs."""
    blocks = []
    # (a 0 between large values keeps every DC difference within the standard table's range)
    for dc in [300, -300, 100, -100, 60, -60, 200, -200, 1023, 0, -1024, 0, 2047, 0, -2047, 0]:
        c = [0] * 64
        c[0] = dc
        blocks.append(c)
    rng = np.random.default_rng(0)
    for _ in range(12):
        c = [0] * 64
        c[0] = int(rng.integers(-300, 300))
        for i in rng.choice(63, 6, replace=False):
            c[int(i) + 1] = int(rng.integers(-1000, 1000))
        blocks.append(c)
    for _ in range(4):
        # rows 1..7 zero but several first-row coefficients (the SIMD whole-block shortcut)
        c = [0] * 64
        c[0] = int(rng.integers(-1000, 1000))
        for i in range(1, 8):
            c[i] = int(rng.integers(-1023, 1024))
        blocks.append(c)
    return blocks


S = cv2.IMWRITE_JPEG_SAMPLING_FACTOR


def cases():
    big = synth(1, 83, 45)
    odd = synth(2, 17, 29)
    sq = synth(3, 64, 48)
    wide = synth(4, 131, 70)
    yield "q75_444_64x48", pil_jpeg(sq, quality=75, subsampling=0)
    yield "q90_422_83x45", pil_jpeg(big, quality=90, subsampling=1)
    yield "q95_420_17x29", pil_jpeg(odd, quality=95, subsampling=2)
    yield "q75_420_83x45", pil_jpeg(big, quality=75, subsampling=2)
    yield "q90_420_131x70_optimized", pil_jpeg(wide, quality=90, subsampling=2, optimize=True)
    yield "q50_420_131x70", pil_jpeg(wide, quality=50, subsampling=2)
    yield "q100_444_17x29", pil_jpeg(odd, quality=100, subsampling=0)
    yield "gray_q90_37x23", pil_jpeg(synth(5, 37, 23), mode="L", quality=90)
    yield "gray_q75_8x8", pil_jpeg(synth(6, 8, 8), mode="L", quality=75)
    # chroma 2 samples wide or less: libjpeg uses box (not fancy) h2v1/h2v2 upsampling
    yield "q90_420_4x7", pil_jpeg(synth(7, 4, 7), quality=90, subsampling=2)
    yield "q90_422_3x5", pil_jpeg(synth(8, 3, 5), quality=90, subsampling=1)
    yield "q90_420_1x1", pil_jpeg(synth(9, 1, 1), quality=90, subsampling=2)
    yield "q90_420_5x3", pil_jpeg(synth(10, 5, 3), quality=90, subsampling=2)
    # restart markers (every 2 MCUs, and every MCU row)
    yield "rst2_q90_420_83x45", cv2_jpeg(
        big, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_RST_INTERVAL, 2]
    )
    yield "rst6_q80_444_64x48", cv2_jpeg(
        sq,
        [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_RST_INTERVAL, 6,
         S, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444],
    )
    # 4:4:0 (h1v2 fancy) and 4:1:1 (h4v1: generic box upsampling)
    yield "q90_440_83x45", cv2_jpeg(
        big, [cv2.IMWRITE_JPEG_QUALITY, 90, S, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440]
    )
    yield "q90_440_17x29", cv2_jpeg(
        odd, [cv2.IMWRITE_JPEG_QUALITY, 90, S, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440]
    )
    yield "q90_411_83x45", cv2_jpeg(
        big, [cv2.IMWRITE_JPEG_QUALITY, 90, S, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411]
    )
    yield "cv2_q95_422_131x70", cv2_jpeg(
        wide, [cv2.IMWRITE_JPEG_QUALITY, 95, S, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
    )
    yield "adobe_rgb_q90_420_83x45", adobe_rgb(pil_jpeg(big, quality=90, subsampling=2))
    # saturated primaries at high quality: IDCT overshoot and the colour converter's clamping
    sat = np.zeros((40, 56, 3), np.uint8)
    yy, xx = np.mgrid[0:40, 0:56]
    sat[..., 0] = 255 * ((xx // 2 + yy // 3) % 2)
    sat[..., 2] = 255 * ((xx // 5) % 2)
    sat[..., 1] = 255 * ((yy // 7) % 2)
    yield "saturated_q98_420_56x40", pil_jpeg(sat, quality=98, subsampling=2)
    yield "saturated_q30_444_56x40", pil_jpeg(sat, quality=30, subsampling=0)
    # baseline files with one scan per component (non-interleaved), with and without restarts
    yield "multiscan_420_37x21", multiscan(37, 21, [(2, 2), (1, 1), (1, 1)], 0, 12)
    yield "multiscan_rst3_422_29x18", multiscan(29, 18, [(2, 1), (1, 1), (1, 1)], 3, 13)
    yield "multiscan_444_16x9", multiscan(16, 9, [(1, 1), (1, 1), (1, 1)], 0, 14)
    yield "extreme_coefs_gray_256x8", encode_blocks(extreme_blocks(), [16] * 64)
    yield "extreme_coefs_q1_gray_256x8", encode_blocks(extreme_blocks(), [1] * 64)


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    for name, data in cases():
        p = os.path.join(OUT, name + ".jpg")
        with open(p, "wb") as f:
            f.write(data)
        tensors[name] = np.ascontiguousarray(np.array(Image.open(p).convert("RGB")))
    for stem in VIDEO_STEMS:
        p = os.path.join(VIDEO, stem + ".jpg")
        tensors["video_test." + stem] = np.ascontiguousarray(np.array(Image.open(p).convert("RGB")))
    with open(os.path.join(OUT, "progressive.jpg"), "wb") as f:
        f.write(pil_jpeg(synth(11, 40, 24), quality=90, progressive=True))
    meta = {
        "pillow": PIL.__version__,
        "libjpeg_turbo": str(features.version("libjpeg_turbo")),
    }
    save_file(tensors, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(tensors)} expected decodes to {OUT} ({total} bytes), {meta}")


def opt_in(d, make_1080p):
    if make_1080p:
        import skimage

        src = os.path.join(os.path.dirname(skimage.__file__), "data", "rocket.jpg")
        im = Image.open(src).convert("RGB").resize((1920, 1080), Image.BICUBIC)
        im.save(os.path.join(d, "1080p.jpg"), quality=90, subsampling=2)
    for fn in sorted(os.listdir(d)):
        if fn.lower().endswith((".jpg", ".jpeg")):
            im = Image.open(os.path.join(d, fn))
            arr = np.ascontiguousarray(np.array(im.convert("RGB")))
            with open(os.path.join(d, fn + ".rgb"), "wb") as f:
                f.write(arr.tobytes())
            print(fn, im.size, im.mode, im.info.get("progressive", 0), getattr(im, "layer", None))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--opt-in":
        opt_in(sys.argv[2], "--make-1080p" in sys.argv[3:])
    else:
        main()
