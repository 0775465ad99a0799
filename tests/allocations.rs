//! Heap allocations, counted by a global allocator: once warm, the kernels allocate nothing
//! (their scratch buffers are reused), and a training step allocates the same small number
//! of blocks every time (its tensors and tape nodes), so memory stays flat.
//!
//! One test function only: the counter is global, and tests running side by side in one
//! binary would count each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::kernels::conv::{
    ConvGeom, conv2d_backward_input, conv2d_backward_weight, conv2d_forward,
};
use tapegrad::kernels::pool::{PoolGeom, max_pool2d_tiled_backward, max_pool2d_tiled_forward};
use tapegrad::nn::{Init, Optimizer, ParamStore, Sgd};
use tapegrad::ops::conv2d::Conv2d;
use tapegrad::prelude::*;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// Of `ALLOCS`, those made inside the `gemm` crate (its packing buffers), which takes the
/// products the in-crate f32 kernel does not (f64, machines without AVX2 and FMA).
static GEMM_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn note(bytes: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
    if tapegrad::kernels::gemm::in_library() {
        GEMM_ALLOCS.fetch_add(1, Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations (count, bytes) made while `f` runs.
fn count(f: impl FnOnce()) -> (usize, usize) {
    let (a, b) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    f();
    (ALLOCS.load(Relaxed) - a, BYTES.load(Relaxed) - b)
}

/// Of the allocations made while `f` runs, (all, those inside the GEMM library).
fn count_split(f: impl FnOnce()) -> (usize, usize) {
    let g = GEMM_ALLOCS.load(Relaxed);
    let (n, _) = count(f);
    (n, GEMM_ALLOCS.load(Relaxed) - g)
}

fn data(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + 1.0) * seed).sin()).collect()
}

fn conv_geom(n: usize, c: usize, hw: usize, o: usize, k: usize, pad: usize) -> ConvGeom {
    let out = hw + 2 * pad - k + 1;
    ConvGeom {
        n,
        c,
        h: hw,
        w: hw,
        o,
        kh: k,
        kw: k,
        sh: 1,
        sw: 1,
        ph: pad,
        pw: pad,
        dh: 1,
        dw: 1,
        groups: 1,
        ho: out,
        wo: out,
    }
}

/// Allocations made inside the GEMM library while `f` runs.
fn gemm_count(f: impl FnOnce()) -> usize {
    let a = GEMM_ALLOCS.load(Relaxed);
    f();
    GEMM_ALLOCS.load(Relaxed) - a
}

/// Whether f32 products run on the crate's own kernel, which packs into reused scratch.
fn own_sgemm() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs every kernel once to warm up, then again, counting.
fn kernels_allocate_nothing_when_warm(threads: usize) {
    tapegrad::threads::set_num_threads(threads);
    // S2 (Cin = 1, im2col), S4 (Winograd), a pointwise conv, batch 1 (products split across
    // threads), and a 3×3 conv with few channels (im2col, several bands per image).
    for g in [
        conv_geom(50, 1, 28, 30, 5, 0),
        conv_geom(16, 32, 14, 64, 3, 1),
        conv_geom(8, 16, 10, 16, 1, 0),
        conv_geom(1, 32, 20, 32, 3, 1),
        conv_geom(2, 8, 120, 8, 3, 1),
    ] {
        let x = data(g.n * g.c * g.h * g.w, 0.37);
        let w = data(g.o * g.c * g.kh * g.kw, 0.71);
        let b = data(g.o, 1.3);
        let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut run = || {
            conv2d_forward(&g, &x, &w, Some(&b), &mut y);
            conv2d_backward_input(&g, &y, &w, &mut dx);
            conv2d_backward_weight(&g, &y, &x, &mut dw);
        };
        run();
        let mut lib = 0;
        let (n, bytes) = count(|| lib = gemm_count(&mut run));
        println!(
            "{threads} threads, conv {g:?}: {n} allocations ({bytes} bytes), {lib} of them inside the GEMM library"
        );
        // At most the GEMM library's own packing buffers (none with the in-crate kernel),
        // nothing else: the im2col columns, Winograd blocks, packed operands and partial
        // sums come from reused scratch. On the pool a rayon job or two may allocate.
        let slack = if threads == 1 { 0 } else { 8 };
        if own_sgemm() {
            assert_eq!(lib, 0, "conv {g:?}: f32 products went to the library");
        }
        assert!(
            n <= lib + slack,
            "conv {g:?}: {n} allocations when warm, {lib} of them inside the GEMM library"
        );
    }
    let p = PoolGeom {
        planes: 1500,
        h: 24,
        w: 24,
        oh: 12,
        ow: 12,
        kh: 2,
        kw: 2,
        sh: 2,
        sw: 2,
        ph: 0,
        pw: 0,
        dh: 1,
        dw: 1,
    };
    let x = data(1500 * 576, 0.37);
    let (mut y, mut gx) = (vec![0.0; 1500 * 144], vec![0.0; x.len()]);
    let gy = data(y.len(), 0.5);
    let mut run = || {
        max_pool2d_tiled_forward(&x, &p, &mut y);
        max_pool2d_tiled_backward(&x, &y, &gy, &p, &mut gx);
    };
    run();
    assert_eq!(count(&mut run).0, 0, "{threads} threads: pooling");
}

/// The MNIST CNN's training step (batch 50): the allocation count per step, after warm-up,
/// is the same every step and small (tensors and nodes, not kernel scratch). Returns the
/// largest (count, bytes) of five steps and the (count, inside the GEMM library) of a sixth.
fn training_step_allocations_are_flat() -> ((usize, usize), (usize, usize)) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut store = ParamStore::<f32>::new();
    let cw = store.add("conv.w", [30, 1, 5, 5], Init::HeNormal, &mut rng);
    let cb = store.add("conv.b", [30], Init::Zeros, &mut rng);
    let w1 = store.add("fc1.w", [4320, 100], Init::HeNormal, &mut rng);
    let b1 = store.add("fc1.b", [100], Init::Zeros, &mut rng);
    let w2 = store.add("fc2.w", [100, 10], Init::HeNormal, &mut rng);
    let b2 = store.add("fc2.b", [10], Init::Zeros, &mut rng);
    let mut opt = Sgd::new(0.01);
    let x = Tensor::<f32>::randn([50, 1, 28, 28], &mut rng);
    let labels: Vec<usize> = (0..50).map(|i| i % 10).collect();
    let mut tape = Tape::new();
    let mut step = || {
        tape.clear();
        let p = store.bind(&tape);
        let h = tape
            .input(x.clone())
            .conv2d_bias(p[cw], p[cb], Conv2d::new())
            .relu()
            .max_pool2d(2);
        let h = (h.flatten().matmul(p[w1]) + p[b1]).relu();
        let loss = (h.matmul(p[w2]) + p[b2]).cross_entropy(&labels).mean();
        let g = p.grads(&tape.backward(loss));
        tape.clear();
        opt.step(&mut store, &g);
    };
    for _ in 0..3 {
        step();
    }
    let counts: Vec<(usize, usize)> = (0..5).map(|_| count(&mut step)).collect();
    // Flat: the same blocks every step, give or take a rayon job or two.
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi.0 - lo.0 <= 4, "allocations per step vary: {counts:?}");
    assert!(hi.1 - lo.1 <= 1 << 16, "bytes per step vary: {counts:?}");
    (*hi, count_split(&mut step))
}

#[test]
fn warm_kernels_allocate_nothing_and_training_steps_stay_flat() {
    kernels_allocate_nothing_when_warm(1);
    kernels_allocate_nothing_when_warm(2);
    tapegrad::threads::set_num_threads(2);
    let ((n, bytes), (n6, in_gemm)) = training_step_allocations_are_flat();
    println!(
        "training step (MNIST CNN, batch 50): {n} allocations, {bytes} bytes per step; \
         {in_gemm} of another step's {n6} inside the GEMM library"
    );
    // Tensors and tape nodes; with the library, also its packing buffers (about 1.5 per
    // product).
    if own_sgemm() {
        assert_eq!(
            in_gemm, 0,
            "the training step's products went to the library"
        );
        assert!(n <= 100, "{n} allocations per step");
    } else {
        assert!(n <= 400, "{n} allocations per step");
    }
}
