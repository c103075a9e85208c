//! Shared pieces of the vosbench fuzz targets.
//!
//! - A global allocator that aborts on any single allocation above a cap, so an allocation
//!   sized by a bogus length in the input is a crash libFuzzer records, also without a
//!   sanitizer build (`cargo fuzz run -s none`, where `-malloc_limit_mb` has no malloc hooks).
//!   The cap is `VOSBENCH_FUZZ_MALLOC_LIMIT_MB` (default 512 MiB); inputs are at most a few
//!   hundred KiB, so any allocation that large was not bounded by the input.
//! - [`scratch_file`]: the readers under test take a path; each input is written to one file
//!   in a private folder of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

struct CappedAlloc;

static CAP: AtomicUsize = AtomicUsize::new(0);

fn check(size: usize) {
    let limit = CAP.load(Ordering::Relaxed);
    let limit = if limit == 0 { 512 << 20 } else { limit };
    if size > limit {
        let _ = std::io::stderr().write_all(b"==vosbench-fuzz== allocation above the cap (VOSBENCH_FUZZ_MALLOC_LIMIT_MB): not bounded by the input\n");
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: CappedAlloc = CappedAlloc;

/// Read the cap from the environment once (call at the start of each input; cheap after).
pub fn init() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let mb = std::env::var("VOSBENCH_FUZZ_MALLOC_LIMIT_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(512);
        CAP.store(mb.max(1) << 20, Ordering::Relaxed);
    });
}

/// A private folder of this process (created once).
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vosbench-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

/// Write `data` to `<scratch>/<name>` and return its path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    init();
    let p = scratch_dir().join(name);
    std::fs::write(&p, data).expect("scratch file");
    p
}

/// For targets whose code under test deliberately contains a dependency's panics with
/// `catch_unwind` (vosbench's `.pt` reader runs candle's pickle reader that way and reports a
/// malformed file): replace libfuzzer-sys's abort-on-every-panic hook, so only a panic that
/// escapes the code under test is a crash (libfuzzer-sys still aborts on those). Set
/// `VOSBENCH_FUZZ_PRINT_PANICS=1` to print the caught ones.
pub fn allow_caught_panics() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let print = std::env::var_os("VOSBENCH_FUZZ_PRINT_PANICS").is_some();
        std::panic::set_hook(Box::new(move |info| {
            if print {
                eprintln!(
                    "==vosbench-fuzz== panic (contained unless libFuzzer aborts next): {info}"
                );
            }
        }));
    });
}
