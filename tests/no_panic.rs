//! Random option sets for conv2d and the pools, valid and invalid alike: every call either
//! returns a value of the predicted shape or an error, and never panics inside a kernel.

use rand::{RngExt, SeedableRng};
use tapegrad::prelude::*;

fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what} panicked: {msg}")
        }
    }
}

#[test]
fn conv2d_random_configurations_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let (mut ok, mut err) = (0, 0);
    for _ in 0..400 {
        // Each option is valid nine times in ten, so both outcomes are common.
        let mut pick = |valid: std::ops::Range<usize>, any: std::ops::Range<usize>| {
            if rng.random_range(0..10) == 0 {
                rng.random_range(any)
            } else {
                rng.random_range(valid)
            }
        };
        let g = pick(1..3, 0..4);
        let n = pick(1..3, 0..3);
        let c = g.max(1) * pick(1..3, 1..3);
        let wc = if pick(0..1, 0..2) == 0 {
            c / g.max(1)
        } else {
            c + 1
        };
        let o = g.max(1) * pick(1..3, 1..3);
        let (h, w) = (pick(3..9, 1..9), pick(3..9, 1..9));
        let (kh, kw) = (pick(1..4, 0..7), pick(1..4, 0..7));
        let s = (pick(1..4, 0..4), pick(1..4, 0..4));
        let p = (pick(0..2, 0..4), pick(0..2, 0..4));
        let d = (pick(1..3, 0..3), pick(1..3, 0..3));
        let bias = pick(0..2, 0..3);
        let what = format!(
            "conv2d x[{n},{c},{h},{w}] w[{o},{wc},{kh},{kw}] s{s:?} p{p:?} d{d:?} g{g} bias{bias}"
        );
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::rand([n, c, h, w], &mut rng));
        let wt = tape.param(Tensor::rand([o, wc, kh, kw], &mut rng));
        // One time in three the bias has the wrong length.
        let bias_len = if bias == 2 { o + 1 } else { o };
        let b = tape.param(Tensor::rand([bias_len], &mut rng));
        let opts = ConvOptions::new()
            .stride(s)
            .padding(p)
            .dilation(d)
            .groups(g);
        let r = no_panic(&what, || x.try_conv2d_bias(wt, b, opts));
        match r {
            Ok(y) => {
                ok += 1;
                let ho = (h + 2 * p.0 - d.0 * (kh - 1) - 1) / s.0 + 1;
                let wo = (w + 2 * p.1 - d.1 * (kw - 1) - 1) / s.1 + 1;
                assert_eq!(y.shape(), [n, o, ho, wo], "{what}");
                no_panic(&what, || tape.backward(y.sum()));
            }
            Err(e) => {
                err += 1;
                let m = e.to_string();
                assert!(
                    m.starts_with("conv2d: ") && m.contains("(called at tests/no_panic.rs:"),
                    "{m}"
                );
            }
        }
    }
    assert!(
        ok > 20 && err > 20,
        "{ok} valid, {err} refused: the generator should hit both"
    );
}

#[test]
fn pool_random_configurations_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(43);
    let (mut ok, mut err) = (0, 0);
    for i in 0..400 {
        let (h, w) = (rng.random_range(1..9usize), rng.random_range(1..9usize));
        let k = (rng.random_range(0..5usize), rng.random_range(0..5usize));
        let s = (rng.random_range(0..4usize), rng.random_range(0..4usize));
        let p = (rng.random_range(0..3usize), rng.random_range(0..3usize));
        let ceil = rng.random_range(0..2) == 1;
        let max = i % 2 == 0;
        let what = format!(
            "{} [1,2,{h},{w}] k{k:?} s{s:?} p{p:?} ceil {ceil}",
            if max { "max" } else { "avg" }
        );
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::rand([1, 2, h, w], &mut rng));
        let opts = PoolOptions::new(k).stride(s).padding(p).ceil_mode(ceil);
        let r = no_panic(&what, || {
            if max {
                x.try_max_pool2d(opts)
            } else {
                x.try_avg_pool2d(opts)
            }
        });
        match r {
            Ok(y) => {
                ok += 1;
                let dims = y.shape();
                assert!(dims[2] >= 1 && dims[3] >= 1, "{what}");
                let g = no_panic(&what, || tape.backward(y.sum()));
                assert!(g[x].data().iter().all(|v| v.is_finite()), "{what}");
            }
            Err(e) => {
                err += 1;
                let m = e.to_string();
                assert!(
                    m.contains("pool2d: ") && m.contains("(called at tests/no_panic.rs:"),
                    "{m}"
                );
            }
        }
    }
    assert!(ok > 20 && err > 20, "{ok} valid, {err} refused");
}

/// Cases the property tests once found: an empty batch whose output plane `ho · wo` alone
/// overflows `usize`, and paddings whose double overflows. Each is refused by the op, never
/// a panic inside a kernel.
#[test]
fn conv_sizes_past_usize_are_refused() {
    let tape = Tape::<f32>::new();
    let var = |dims: &[usize]| tape.input(Tensor::zeros(dims));
    let huge = usize::MAX;
    let cases: [(&[usize], &[usize], usize); 3] = [
        (&[0, 0, 0, 0], &[0, 0, 1, 1], huge),
        (&[0, 2, 1, 1], &[2, 2, 1, 1], 1 << 32),
        (&[2, 1, 3, 3], &[1, 1, 1, 1], huge / 2),
    ];
    for (x, w, p) in cases {
        let what = format!("conv2d x{x:?} w{w:?} padding {p}");
        let r = no_panic(&what, || {
            var(x).try_conv2d(var(w), ConvOptions::new().padding((p, p)))
        });
        let e = r.expect_err(&what).to_string();
        assert!(e.starts_with("conv2d: "), "{what}: {e}");
        assert!(e.contains("(called at tests/no_panic.rs:"), "{what}: {e}");
    }
    let cases: [(&[usize], &[usize], usize); 2] = [
        (&[0, 1, 1 << 33, 1 << 33], &[1, 1, 1, 1], 0),
        (&[1, 1, 2, 2], &[1, 1, 3, 3], huge),
    ];
    for (x, w, p) in cases {
        let what = format!("conv_transpose2d x{x:?} w{w:?} padding {p}");
        let opts = ConvTransposeOptions::new().padding((p, p));
        let r = no_panic(&what, || var(x).try_conv_transpose2d(var(w), opts));
        let e = r.expect_err(&what).to_string();
        assert!(e.starts_with("conv_transpose2d: "), "{what}: {e}");
    }
}

/// A depthwise convolution of an empty plane with a stride of `usize::MAX`: every output
/// reads padding, so the result is zeros, computed without a buffer as long as the stride.
#[test]
fn depthwise_stride_past_the_input_reads_padding() {
    let tape = Tape::<f32>::new();
    let x = tape.param(Tensor::zeros([1, 3, 0, 0]));
    let w = tape.param(Tensor::ones([3, 1, 1, 1]));
    let opts = ConvOptions::new()
        .stride((usize::MAX, 1))
        .padding(1)
        .groups(3);
    let y = no_panic("depthwise", || x.try_conv2d(w, opts)).unwrap();
    assert_eq!(y.shape().dims(), &[1, 3, 1, 2]);
    assert!(y.value().data().iter().all(|&v| v == 0.0));
    let g = no_panic("depthwise backward", || tape.backward(y.sum()));
    assert!(g[w].data().iter().all(|&v| v == 0.0));
}
