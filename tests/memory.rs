//! What the tape holds, measured by a global allocator that tracks live heap bytes: the
//! bytes held for backward fall to zero when backward has run, each VJP's saved values go as
//! soon as it has run, and a thousand training steps in a row keep memory flat.
//!
//! One test function only: the counter is global, and tests running side by side in one
//! binary would count each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::nn::{Init, Optimizer, ParamStore, Sgd};
use tapegrad::prelude::*;
use tapegrad::tape::Grads;

struct Tracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grow(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        grow(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        grow(new);
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static TRACKING: Tracking = Tracking;

/// The live heap, less what the tensor buffer cache keeps for the next step's outputs
/// (bounded by `buffers::cache_limit`; the thousand steps below check it stays flat too).
fn live() -> usize {
    LIVE.load(Relaxed) - tapegrad::buffers::cached_bytes()
}

/// The highest live heap since the last call.
fn take_peak() -> usize {
    PEAK.swap(LIVE.load(Relaxed), Relaxed)
}

/// A custom op that logs when its VJP runs and when what it saved is dropped.
struct Probe(&'static str, Rc<RefCell<Vec<String>>>);
impl Drop for Probe {
    fn drop(&mut self) {
        self.1.borrow_mut().push(format!("free {}", self.0));
    }
}

fn probed<'t>(x: Var<'t, f64>, name: &'static str, log: &Rc<RefCell<Vec<String>>>) -> Var<'t, f64> {
    let probe = Probe(name, log.clone());
    x.tape().record("probe", &[x], x.value(), move |g, _| {
        probe.1.borrow_mut().push(format!("run {}", probe.0));
        Grads::from_iter([Some(g.clone())])
    })
}

/// Each VJP, and what it keeps, is dropped as soon as it has run: before the VJP of the
/// node recorded before it runs.
fn saved_values_go_as_each_vjp_runs() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::ones([3]));
    let a = probed(x, "a", &log);
    let b = probed(a, "b", &log);
    let unused = probed(x, "unused", &log);
    let _ = unused;
    tape.backward(b.sum());
    let log = log.borrow().join(", ");
    // `unused` was recorded after `b`, so the reverse sweep meets it first: the loss does
    // not depend on it, and its VJP is dropped unrun.
    assert_eq!(log, "free unused, run b, free b, run a, free a");
}

/// The bytes held for backward (the report, and the heap) before and after backward.
fn held_bytes_fall_to_zero_after_backward() {
    let mut rng = StdRng::seed_from_u64(0);
    let w = Tensor::<f32>::randn([8, 3, 3, 3], &mut rng);
    let x = Tensor::<f32>::randn([16, 3, 32, 32], &mut rng);
    let mut tape = Tape::<f32>::new();
    fn forward<'t>(tape: &'t Tape<f32>, x: &Tensor<f32>, w: &Tensor<f32>) -> [Var<'t, f32>; 2] {
        let wv = tape.param(w.clone());
        let h = tape
            .input(x.clone())
            .conv2d(wv, ConvOptions::new().padding(1))
            .tanh()
            .max_pool2d(2);
        [wv, h.square().mean()]
    }
    // A first step makes the kernels' per-thread scratch buffers, kept for reuse.
    let [_, loss] = forward(&tape, &x, &w);
    tape.backward(loss);
    tape.clear();

    let base = live();
    {
        let [wv, loss] = forward(&tape, &x, &w);
        let before = tape.report();
        // conv2d keeps x (the input node's buffer) and w; tanh its output; the tiled
        // max-pool its input (tanh's output, already counted) and output; square its input
        // (the pool's output, already counted): x + w + 2 maps of [16, 8, 32, 32] and one
        // of [16, 8, 16, 16].
        let want = 4 * (16 * 3 * 32 * 32 + 8 * 27 + 16 * 8 * 32 * 32 + 16 * 8 * 16 * 16);
        assert_eq!(before.saved_bytes, want, "{before}");
        assert_eq!(before.pending_vjps, 5);
        let g = tape.backward(loss);
        let after = tape.report();
        assert_eq!((after.saved_bytes, after.pending_vjps), (0, 0), "{after}");
        assert_eq!(after.peak_saved_bytes, want);
        // What the heap still holds: the nodes' values but x's and w's buffers, which
        // were there before (the arena keeps values until clear), and w's gradient.
        let held = live() - base;
        let new_values = after.value_bytes - 4 * (16 * 3 * 32 * 32 + 8 * 27);
        let grad = 4 * 8 * 27;
        assert_eq!(g[wv].numel(), 8 * 27);
        assert!(
            held >= new_values + grad && held <= new_values + grad + (16 << 10),
            "held {held}, new values {new_values}"
        );
        println!("{after}");
        drop(g);
    }
    tape.clear();
    // Only the arena's capacity (nodes, not tensors) outlives a clear.
    let left = live() as isize - base as isize;
    assert!(left.abs() < 4 << 10, "{left} bytes left after clear");
}

/// A thousand training steps of a small CNN: the live heap after the last step is what it
/// was after the tenth (nothing accumulates), and the peak during a step does not grow.
fn a_thousand_steps_keep_memory_flat() -> (usize, usize, usize, usize) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut store = ParamStore::<f32>::new();
    let cw = store.add("conv.w", [6, 1, 5, 5], Init::HeNormal, &mut rng);
    let cb = store.add("conv.b", [6], Init::Zeros, &mut rng);
    let w1 = store.add("fc.w", [6 * 12 * 12, 10], Init::HeNormal, &mut rng);
    let b1 = store.add("fc.b", [10], Init::Zeros, &mut rng);
    let mut opt = Sgd::new(0.01).momentum(0.9);
    let x = Tensor::<f32>::randn([4, 1, 28, 28], &mut rng);
    let labels = [1usize, 7, 3, 0];
    let mut tape = Tape::new();
    let mut peak_saved = 0;
    let mut step = |tape: &mut Tape<f32>| {
        tape.clear();
        let p = store.bind(tape);
        let h = tape
            .input(x.clone())
            .conv2d_bias(p[cw], p[cb], ConvOptions::new())
            .relu()
            .max_pool2d(2);
        let loss = (h.flatten().matmul(p[w1]) + p[b1])
            .cross_entropy(&labels)
            .mean();
        let g = p.grads(&tape.backward(loss));
        peak_saved = tape.report().peak_saved_bytes;
        tape.clear();
        opt.step(&mut store, &g);
    };
    // Live heap after steps 10, 100 and 1000, and its peak during steps 11-100 and 901-1000
    // (the vectors that keep them are made first, so that they are not counted).
    let (mut after, mut peaks) = (Vec::with_capacity(3), Vec::with_capacity(2));
    let mut cached = Vec::with_capacity(3);
    for i in 1..=1000 {
        if i == 11 || i == 901 {
            take_peak();
        }
        step(&mut tape);
        if i == 10 || i == 100 || i == 1000 {
            after.push(live());
            cached.push(tapegrad::buffers::cached_bytes());
        }
        if i == 100 || i == 1000 {
            peaks.push(take_peak());
        }
    }
    // A few bytes of lazily made state (the optimiser's, the pool's) may appear in the first
    // hundred steps; after that, not one byte.
    assert!(
        after[1] - after[0] < 1024,
        "live heap after steps 10, 100, 1000: {after:?}"
    );
    assert_eq!(
        after[1], after[2],
        "live heap after steps 10, 100, 1000: {after:?}"
    );
    assert_eq!(
        cached[1], cached[2],
        "buffer cache after steps 10, 100, 1000: {cached:?}"
    );
    assert_eq!(
        peaks[0], peaks[1],
        "peak live heap in steps 11-100 and 901-1000"
    );
    (after[0], after[2], peaks[1], peak_saved)
}

#[test]
fn tape_memory_is_released_and_stays_flat() {
    tapegrad::threads::set_num_threads(1);
    saved_values_go_as_each_vjp_runs();
    held_bytes_fall_to_zero_after_backward();
    let (at10, at1000, peak, saved) = a_thousand_steps_keep_memory_flat();
    println!(
        "1000 steps: live heap {at10} bytes after step 10, {at1000} after step 1000, peak {peak} during steps 901-1000; held for backward at peak {saved} bytes"
    );
}
