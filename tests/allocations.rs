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
use tapegrad::nn::{Init, Optimizer, ParamStore, Sgd};
use tapegrad::ops::conv2d::ConvOptions;
use tapegrad::prelude::*;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

fn note(bytes: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    BYTES.fetch_add(bytes, Relaxed);
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

/// Allocations of the call that allocated fewest bytes among eight, after six to warm up:
/// what the code allocates on every call, without a rare first meeting of a thread and a
/// kind of chunk (rayon decides who steals what, differently each call). A kernel that
/// allocates per call does so in all eight and fails the bound.
fn warm(mut run: impl FnMut()) -> (usize, usize) {
    for _ in 0..6 {
        run();
    }
    let calls: Vec<(usize, usize)> = (0..8).map(|_| count(&mut run)).collect();
    *calls.iter().min_by_key(|c| (c.1, c.0)).unwrap()
}

/// A tensor's bytes, when it is under the 64 KiB from which the buffer cache keeps buffers
/// (smaller ones go to the allocator every time); 0 for the cached ones.
fn uncached(elems: usize) -> usize {
    let bytes = elems * std::mem::size_of::<f32>();
    if bytes < 64 << 10 { bytes } else { 0 }
}

/// (N, C, H = W, O, k, pad): S2 (Cin = 1, im2col), S4-like (Winograd), a pointwise conv,
/// batch 1 (products split across threads), and a 3×3 conv with few channels (im2col,
/// several bands per image).
const CONVS: [(usize, usize, usize, usize, usize, usize); 5] = [
    (50, 1, 28, 30, 5, 0),
    (16, 32, 14, 64, 3, 1),
    (8, 16, 10, 16, 1, 0),
    (1, 32, 20, 32, 3, 1),
    (2, 8, 120, 8, 3, 1),
];

/// A conv2d and a max-pool, forward and backward through the tape, warm: what they allocate
/// is the tape's nodes and the tensors too small for the buffer cache, nothing in the
/// kernels (im2col columns, Winograd blocks, packed operands and partial sums come from
/// reused scratch, which for these sizes is hundreds of KiB).
fn kernels_allocate_nothing_when_warm(threads: usize) {
    tapegrad::threads::set_num_threads(threads);
    let mut rng = StdRng::seed_from_u64(1);
    let mut tape = Tape::<f32>::new();
    for (n, c, hw, o, k, pad) in CONVS {
        let x = Tensor::<f32>::randn([n, c, hw, hw], &mut rng);
        let w = Tensor::<f32>::randn([o, c, k, k], &mut rng);
        let b = Tensor::<f32>::randn([o], &mut rng);
        let out = hw + 2 * pad - k + 1;
        let gy = Tensor::<f32>::randn([n, o, out, out], &mut rng);
        let mut run = || {
            tape.clear();
            let (xv, wv, bv) = (
                tape.param(x.clone()),
                tape.param(w.clone()),
                tape.param(b.clone()),
            );
            let y = xv.conv2d_bias(wv, bv, ConvOptions::new().padding(pad));
            let grads = tape.backward_with(y, gy.clone());
            std::hint::black_box((&grads[xv], &grads[wv], &grads[bv]));
        };
        // Warm: every pool thread must have run each kind of chunk (and held its nested
        // scratch buffers) once, and which thread steals which chunk varies from call to
        // call, so a call can still meet a chunk its thread never held; scratch only grows,
        // so the fewest of several warm calls is what a kernel allocates every time.
        let (count, bytes) = warm(&mut run);
        // The output and the three gradients, where too small to be cached, and the tape's
        // bookkeeping (nodes, the gradient table: a few KiB).
        let tensors = uncached(n * o * out * out)
            + uncached(x.numel())
            + uncached(w.numel())
            + uncached(b.numel());
        println!(
            "{threads} threads, conv {n}x{c}x{hw}x{hw} -> {o}, k {k}, pad {pad}: {count} allocations, \
             {bytes} bytes ({tensors} of them small tensors)"
        );
        let slack = if threads == 1 { 0 } else { 8 };
        assert!(
            count <= 24 + slack && bytes <= tensors + (4 << 10),
            "conv {n}x{c}x{hw}x{hw} -> {o}, k {k}: {count} allocations, {bytes} bytes when warm"
        );
    }
    let x = Tensor::<f32>::randn([50, 30, 24, 24], &mut rng);
    let gy = Tensor::<f32>::randn([50, 30, 12, 12], &mut rng);
    let mut run = || {
        tape.clear();
        let xv = tape.param(x.clone());
        let grads = tape.backward_with(xv.max_pool2d(2), gy.clone());
        std::hint::black_box(&grads[xv]);
    };
    let (count, bytes) = warm(&mut run);
    println!("{threads} threads, max-pool: {count} allocations, {bytes} bytes");
    assert!(
        count <= 16 && bytes <= 16 << 10,
        "{threads} threads: pooling allocates {count} blocks, {bytes} bytes when warm"
    );
}

/// The MNIST CNN's training step (batch 50): the allocation count per step, after warm-up,
/// is the same every step and small (tensors and nodes, not kernel scratch). Returns the
/// largest (count, bytes) of the five steps kept.
fn training_step_allocations_are_flat() -> (usize, usize) {
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
            .conv2d_bias(p[cw], p[cb], ConvOptions::new())
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
    let mut counts: Vec<(usize, usize)> = (0..6).map(|_| count(&mut step)).collect();
    // Flat: the same blocks every step, give or take a rayon job or two. The step with the
    // most bytes is set aside: a pool thread meeting a kind of chunk for the first time
    // grows its scratch once (see `warm`), which is not growth per step.
    counts.sort_by_key(|c| (c.1, c.0));
    let counts = &counts[..5];
    let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(hi.0 - lo.0 <= 4, "allocations per step vary: {counts:?}");
    assert!(hi.1 - lo.1 <= 1 << 16, "bytes per step vary: {counts:?}");
    *hi
}

#[test]
fn warm_kernels_allocate_nothing_and_training_steps_stay_flat() {
    kernels_allocate_nothing_when_warm(1);
    kernels_allocate_nothing_when_warm(2);
    tapegrad::threads::set_num_threads(2);
    let (n, bytes) = training_step_allocations_are_flat();
    println!("training step (MNIST CNN, batch 50): {n} allocations, {bytes} bytes per step");
    // Tensors and tape nodes only: every f32 product runs on the in-crate kernel, which
    // packs into reused scratch, on every instruction-set tier.
    assert!(n <= 100, "{n} allocations per step");
}
