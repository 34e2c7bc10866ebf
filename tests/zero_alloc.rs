//! The engine's buffer recycling, measured by the allocator rather than by pointers: after warm-up,
//! hundreds of further batches allocate no batch-sized buffer (a loader that copied each batch, or
//! allocated a fresh buffer per batch, fails here even if the allocator happened to hand back the
//! same addresses). Its own test binary (process), since it installs a counting global allocator
//! that sees every thread of the process.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use alexpipe::{Dataset, Layout, Loader, LoaderConfig, Mode};

use crate::common;

/// Allocations of at least this many bytes are "large": a 64 px record is 12,288 bytes, a one-image
/// 48 px f32 batch 27,648; everything else the engine allocates per batch (parameters, small vectors)
/// is far below.
const LARGE: usize = 4096;

struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LARGE_COUNT: AtomicUsize = AtomicUsize::new(0);
static LARGE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Allocations of exactly one batch buffer's size (set by the test), or larger: a fresh or copied
/// batch. (A record-sized one, 12,288 bytes, is a worker's scratch; counted apart.)
static BATCH_SIZED: AtomicUsize = AtomicUsize::new(0);
static BATCH_BYTES: AtomicUsize = AtomicUsize::new(usize::MAX);
static RECORD_SIZED: AtomicUsize = AtomicUsize::new(0);
const RECORD_BYTES: usize = 64 * 64 * 3;

fn count(size: usize) {
    if size >= LARGE && ON.load(Ordering::Relaxed) {
        LARGE_COUNT.fetch_add(1, Ordering::Relaxed);
        LARGE_BYTES.fetch_add(size, Ordering::Relaxed);
        let batch = BATCH_BYTES.load(Ordering::Relaxed);
        if size == batch || (size > batch && size > RECORD_BYTES) {
            BATCH_SIZED.fetch_add(1, Ordering::Relaxed);
        } else if size == RECORD_BYTES {
            RECORD_SIZED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            count(new_size);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Large allocations while running `epochs` epochs from `first`.
struct Counts {
    large: usize,
    bytes: usize,
    batch_sized: usize,
    record_sized: usize,
}

/// With `copy`, each batch's images are also copied (what the counter must catch).
fn measure(loader: &mut Loader, first: u64, epochs: u64, copy: bool) -> Counts {
    LARGE_COUNT.store(0, Ordering::SeqCst);
    LARGE_BYTES.store(0, Ordering::SeqCst);
    BATCH_SIZED.store(0, Ordering::SeqCst);
    RECORD_SIZED.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    let mut batches = 0;
    for e in first..first + epochs {
        loader.set_epoch(e);
        for batch in loader.iter() {
            let batch = batch.expect("batch");
            let bytes = match (batch.images_f32(), batch.images_u8()) {
                (Some(f), _) => std::mem::size_of_val(f),
                (None, Some(u)) => u.len(),
                (None, None) => panic!("a batch without images"),
            };
            assert_eq!(bytes, BATCH_BYTES.load(Ordering::SeqCst));
            if copy {
                std::hint::black_box(batch.images_f32().map(<[f32]>::to_vec));
                std::hint::black_box(batch.images_u8().map(<[u8]>::to_vec));
            }
            batches += 1;
        }
    }
    ON.store(false, Ordering::SeqCst);
    assert_eq!(batches, epochs as usize * loader.len());
    Counts {
        large: LARGE_COUNT.load(Ordering::SeqCst),
        bytes: LARGE_BYTES.load(Ordering::SeqCst),
        batch_sized: BATCH_SIZED.load(Ordering::SeqCst),
        record_sized: RECORD_SIZED.load(Ordering::SeqCst),
    }
}

#[test]
fn after_warm_up_batches_allocate_no_image_buffers() {
    let _alone = crate::alone();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("raw");
    common::build_fixtures(&out, 64, Mode::Raw, 8, None);
    let ds = Arc::new(Dataset::open(&out).expect("open"));
    for layout in [Layout::F32Nchw, Layout::U8Nhwc] {
        let threads = 2;
        let config = LoaderConfig {
            batch_size: 1, // 31 batches per epoch: many batches per per-epoch set-up
            crop: 48,
            threads,
            prefetch: 2,
            layout,
            seed: 5,
            ..LoaderConfig::default()
        };
        let elem = if layout == Layout::F32Nchw { 4 } else { 1 };
        BATCH_BYTES.store(3 * 48 * 48 * elem, Ordering::SeqCst);
        let mut loader = Loader::new(ds.clone(), config).expect("loader");
        measure(&mut loader, 0, 2, false); // warm-up: fills the pool
        let c = measure(&mut loader, 2, 10, false);
        let batches = 10 * loader.len();
        eprintln!(
            "{layout:?}, {batches} batches after warm-up: {} large allocations ({} bytes): {} batch-sized, \
             {} record-sized",
            c.large, c.bytes, c.batch_sized, c.record_sized
        );
        // Batch buffers come from the pool: none allocated over 310 batches (measured: 0; the bound
        // leaves room for the pool to grow by a buffer or two when timing lets more be in flight).
        // A loader that allocated or copied a buffer per batch makes 310 here.
        assert!(
            c.batch_sized <= 4,
            "{layout:?}: {} batch-sized allocations in {batches} batches",
            c.batch_sized
        );
        // The only other large allocation: each worker's record scratch, once per epoch (measured:
        // exactly threads × epochs), not per batch (31 batches per epoch here).
        assert!(
            c.record_sized <= 10 * threads,
            "{layout:?}: {} record-sized allocations in {batches} batches",
            c.record_sized
        );
        assert_eq!(
            c.large,
            c.batch_sized + c.record_sized,
            "{layout:?}: other large allocations ({} bytes in all)",
            c.bytes
        );
        // The instrument itself: a copy of every batch is seen, once per batch.
        let copied = measure(&mut loader, 12, 1, true);
        assert!(copied.batch_sized >= loader.len(), "{}", copied.batch_sized);
    }
}
