//! Property tests: random valid configurations of conv2d, the pools, matmul and the
//! broadcasting binary ops pass gradcheck in f64; random invalid ones (and random option
//! values of any size) make the `try_` forms return `Err`, never panic.
//!
//! `tests/no_panic.rs` draws conv2d and pool options from small ranges with a fixed seed;
//! here proptest also reaches extreme values (`usize::MAX`, zero-size dimensions), the
//! other ops and the constructors, and shrinks any failure to a minimal case.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::gradcheck::gradcheck;
use tapegrad::ops::max_pool2d::PoolOptions;
use tapegrad::prelude::*;

/// Cases per property: each gradcheck runs two forward passes per input element.
const CASES: u32 = 64;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // No proptest-regressions files: each failure found was fixed with a unit test in
        // the op's file.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut StdRng::seed_from_u64(seed))
}

/// Runs `f`, failing the property with the panic's message if it panics.
fn no_panic<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}

fn check(what: &str, r: Result<tapegrad::gradcheck::GradReport, impl std::fmt::Display>) {
    if let Err(e) = r {
        panic!("{what}: {e}")
    }
}

/// Output size of a conv or pool axis, floor mode, or None when the window does not fit.
fn out_size(n: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = p.checked_mul(2)?.checked_add(n)?;
    (padded >= span && s > 0).then(|| (padded - span) / s + 1)
}

#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    groups: usize,
    cin_per_group: usize,
    cout_per_group: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
    bias: bool,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1..=2usize, 1..=2usize, 1..=2usize, 1..=2usize),
        (1..=3usize, 1..=3usize, 1..=3usize, 1..=3usize),
        (0..=1usize, 0..=1usize, 1..=2usize, 1..=2usize),
        (any::<bool>(), any::<u64>()),
        (0..=3usize, 0..=3usize),
    )
        .prop_map(
            |(
                (n, groups, cin_per_group, cout_per_group),
                (kh, kw, sh, sw),
                (ph, pw, dh, dw),
                (bias, seed),
                (eh, ew),
            )| {
                // The input at least as large as the dilated kernel, plus a little.
                let h = (dh * (kh - 1) + 1).saturating_sub(2 * ph).max(1) + eh;
                let w = (dw * (kw - 1) + 1).saturating_sub(2 * pw).max(1) + ew;
                ConvCase {
                    n,
                    groups,
                    cin_per_group,
                    cout_per_group,
                    h,
                    w,
                    k: (kh, kw),
                    s: (sh, sw),
                    p: (ph, pw),
                    d: (dh, dw),
                    bias,
                    seed,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct PoolCase {
    max: bool,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
    ceil: bool,
    include_pad: bool,
    seed: u64,
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    (
        (any::<bool>(), 1..=2usize, 1..=2usize),
        (1..=3usize, 1..=3usize, 1..=3usize, 1..=3usize),
        (0..=1usize, 0..=1usize, 1..=2usize, 1..=2usize),
        (
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
            0..=3usize,
            0..=3usize,
        ),
    )
        .prop_map(
            |(
                (max, n, c),
                (kh, kw, sh, sw),
                (ph, pw, dh, dw),
                (ceil, include_pad, seed, eh, ew),
            )| {
                // Padding at most half the kernel; dilation only for max pooling.
                let p = (ph.min(kh / 2), pw.min(kw / 2));
                let d = if max { (dh, dw) } else { (1, 1) };
                // The input at least the window's extent: with a dilation larger than the
                // padding, a smaller one lets a window's taps all fall in the padding, whose
                // maximum is -inf (as in PyTorch), which finite differences cannot check.
                let h = d.0 * (kh - 1) + 1 + eh;
                let w = d.1 * (kw - 1) + 1 + ew;
                PoolCase {
                    max,
                    n,
                    c,
                    h,
                    w,
                    k: (kh, kw),
                    s: (sh, sw),
                    p,
                    d,
                    ceil,
                    include_pad,
                    seed,
                }
            },
        )
}

/// A shape of rank `rank` whose every dimension is `full`'s or 1: broadcastable to `full`.
fn broadcastable(full: Vec<usize>) -> impl Strategy<Value = Vec<usize>> {
    let rank = full.len();
    (0..=rank, proptest::collection::vec(any::<bool>(), rank)).prop_map(move |(r, ones)| {
        full[rank - r..]
            .iter()
            .zip(&ones[rank - r..])
            .map(|(&d, &one)| if one { 1 } else { d })
            .collect()
    })
}

/// [`broadcast`] as the elementwise binary ops do it: they refuse a rank-1 operand longer
/// than 1 whose length is axis 1 of a rank-4 one (a per-channel value that NumPy would line
/// up with the width).
fn broadcast_binary(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let channels =
        |x: &[usize], v: &[usize]| x.len() == 4 && v.len() == 1 && v[0] > 1 && v[0] == x[1];
    if channels(a, b) || channels(b, a) {
        return None;
    }
    broadcast(a, b)
}

fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    proptest::collection::vec(1..=3usize, 0..=4)
        .prop_flat_map(|full| (broadcastable(full.clone()), broadcastable(full)))
}

/// The broadcast shape of `a` and `b` (NumPy rules), or None.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn conv2d_valid_configurations_pass_gradcheck(c in conv_case()) {
        let cin = c.groups * c.cin_per_group;
        let cout = c.groups * c.cout_per_group;
        let x = randn(&[c.n, cin, c.h, c.w], c.seed);
        let w = randn(&[cout, c.cin_per_group, c.k.0, c.k.1], c.seed ^ 1);
        let b = randn(&[cout], c.seed ^ 2);
        let opts = ConvOptions::new().stride(c.s).padding(c.p).dilation(c.d).groups(c.groups);
        let what = format!("{c:?}");
        let ho = out_size(c.h, c.k.0, c.s.0, c.p.0, c.d.0).unwrap();
        let wo = out_size(c.w, c.k.1, c.s.1, c.p.1, c.d.1).unwrap();
        if c.bias {
            check(&what, gradcheck(
                |v| {
                    let y = v[0].conv2d_bias(v[1], v[2], opts);
                    assert_eq!(y.shape(), [c.n, cout, ho, wo]);
                    y
                },
                &[x, w, b],
            ));
        } else {
            check(&what, gradcheck(
                |v| {
                    let y = v[0].conv2d(v[1], opts);
                    assert_eq!(y.shape(), [c.n, cout, ho, wo]);
                    y
                },
                &[x, w],
            ));
        }
    }

    #[test]
    fn pools_valid_configurations_pass_gradcheck(c in pool_case()) {
        let x = randn(&[c.n, c.c, c.h, c.w], c.seed);
        let opts = PoolOptions::new(c.k)
            .stride(c.s)
            .padding(c.p)
            .dilation(c.d)
            .ceil_mode(c.ceil)
            .count_include_pad(c.include_pad);
        let what = format!("{c:?}");
        if c.max {
            check(&what, gradcheck(|v| v[0].max_pool2d(opts), &[x]));
        } else {
            check(&what, gradcheck(|v| v[0].avg_pool2d(opts), &[x]));
        }
    }

    #[test]
    fn matmul_valid_configurations_pass_gradcheck(
        (m, k, n) in (1..=4usize, 1..=4usize, 1..=4usize),
        batch in 1..=3usize,
        // 0: 2-D, 1: 3-D with the batch, 2: 3-D with batch 1 (broadcast).
        ranks in (0..3usize, 0..3usize),
        seed in any::<u64>(),
    ) {
        let shape = |kind: usize, r: usize, c: usize| match kind {
            0 => vec![r, c],
            1 => vec![batch, r, c],
            _ => vec![1, r, c],
        };
        let (sa, sb) = (shape(ranks.0, m, k), shape(ranks.1, k, n));
        let a = randn(&sa, seed);
        let b = randn(&sb, seed ^ 1);
        let what = format!("{sa:?} x {sb:?}");
        check(&what, gradcheck(|v| v[0].matmul(v[1]), &[a, b]));
    }

    #[test]
    fn broadcasting_binary_ops_pass_gradcheck(
        (sa, sb) in broadcast_pair(),
        op in 0..4usize,
        seed in any::<u64>(),
    ) {
        let a = randn(&sa, seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 1);
        // Divisors kept away from zero.
        let b = if op == 3 {
            Tensor::uniform(sb.as_slice(), 0.5, 1.5, &mut rng)
        } else {
            Tensor::randn(sb.as_slice(), &mut rng)
        };
        // A [C] operand against [N, C, H, W] is refused (tested below), not differentiated.
        prop_assume!(broadcast_binary(&sa, &sb).is_some());
        let want = broadcast(&sa, &sb).unwrap();
        let what = format!("op {op} {sa:?} {sb:?}");
        check(&what, gradcheck(
            |v| {
                let y = match op {
                    0 => v[0] + v[1],
                    1 => v[0] * v[1],
                    2 => v[0] - v[1],
                    _ => v[0] / v[1],
                };
                assert_eq!(y.shape().dims(), want.as_slice());
                y
            },
            &[a, b],
        ));
    }
}

/// Sizes of any magnitude: mostly small, sometimes zero or huge.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0..=4usize,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2),
        1 => Just(1usize << 32),
    ]
}

fn pair() -> impl Strategy<Value = (usize, usize)> {
    (size(), size())
}

/// A small shape of rank 0 to 5, dimensions 0 to 3.
fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=3usize, 0..=5)
}

fn expect_err_or(
    what: &str,
    r: Result<Shape, tapegrad::error::Error>,
    valid: Option<Vec<usize>>,
    op: &str,
) -> Result<(), TestCaseError> {
    match (r, valid) {
        (Ok(s), Some(want)) => prop_assert_eq!(s.dims(), want.as_slice(), "{}", what),
        (Ok(s), None) => prop_assert!(false, "{what}: accepted with shape {s}, expected Err"),
        (Err(e), Some(want)) => {
            prop_assert!(false, "{what}: refused ({e}), expected shape {want:?}")
        }
        (Err(e), None) => {
            let m = e.to_string();
            prop_assert!(m.contains(op), "{what}: {m}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_any_options_err_or_predicted_shape(
        x in proptest::collection::vec(0..=3usize, 3..=5),
        wdims in proptest::collection::vec(0..=3usize, 3..=5),
        (s, p, d) in (pair(), pair(), pair()),
        groups in size(),
    ) {
        // A large padding with a small stride makes an honest but huge output: its
        // allocation would fail (an abort, not a panic), so such cases are skipped. Outputs
        // too large to address at all must still be refused, and are kept.
        if x.len() == 4 && wdims.len() == 4 {
            let ho = out_size(x[2], wdims[2], s.0, p.0, d.0);
            let wo = out_size(x[3], wdims[3], s.1, p.1, d.1);
            if let (Some(ho), Some(wo)) = (ho, wo) {
                let n = [x[0], wdims[0], ho, wo].iter().try_fold(1usize, |a, &b| a.checked_mul(b));
                if n.is_some_and(|n| n > 1 << 22 && n <= isize::MAX as usize / 8) {
                    return Ok(());
                }
            }
        }
        let tape = Tape::<f32>::new();
        let xv = tape.input(Tensor::zeros(x.as_slice()));
        let wv = tape.input(Tensor::zeros(wdims.as_slice()));
        let opts = ConvOptions::new().stride(s).padding(p).dilation(d).groups(groups);
        let what = format!("conv2d x{x:?} w{wdims:?} s{s:?} p{p:?} d{d:?} g{groups}");
        let r = no_panic(&what, || xv.try_conv2d(wv, opts).map(|y| y.shape()))?;
        if let Ok(y) = &r {
            // Accepted: the options must describe a real convolution of these shapes.
            prop_assert!(x.len() == 4 && wdims.len() == 4, "{what}: {y}");
            prop_assert!(s.0 > 0 && s.1 > 0 && d.0 > 0 && d.1 > 0 && groups > 0, "{what}");
            prop_assert_eq!(x[1], wdims[1] * groups, "{}", what);
            prop_assert_eq!(wdims[0] % groups, 0, "{}", what);
            let ho = out_size(x[2], wdims[2], s.0, p.0, d.0);
            let wo = out_size(x[3], wdims[3], s.1, p.1, d.1);
            prop_assert_eq!(y.dims(), &[x[0], wdims[0], ho.unwrap(), wo.unwrap()][..], "{}", what);
        }
        if let Err(e) = r {
            prop_assert!(e.to_string().starts_with("conv2d: "), "{e}");
        }
    }

    #[test]
    fn pools_any_options_err_or_ok(
        x in proptest::collection::vec(0..=4usize, 3..=5),
        (k, s, p, d) in (pair(), pair(), pair(), pair()),
        (max, ceil, include_pad) in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let tape = Tape::<f64>::new();
        let xv = tape.param(Tensor::zeros(x.as_slice()));
        let opts = PoolOptions::new(k).stride(s).padding(p).dilation(d).ceil_mode(ceil)
            .count_include_pad(include_pad);
        let what = format!("max {max} x{x:?} k{k:?} s{s:?} p{p:?} d{d:?} ceil {ceil}");
        let r = no_panic(&what, || if max { xv.try_max_pool2d(opts) } else { xv.try_avg_pool2d(opts) })?;
        match r {
            Ok(y) => {
                prop_assert!(x.len() == 4 && x[2] > 0 && x[3] > 0, "{what}");
                prop_assert!(k.0 > 0 && k.1 > 0 && s.0 > 0 && s.1 > 0, "{what}");
                prop_assert!(p.0 <= k.0 / 2 && p.1 <= k.1 / 2, "{what}");
                let dims = y.shape();
                prop_assert!(dims[2] >= 1 && dims[3] >= 1, "{what}");
                // A small enough output also runs backward.
                if y.value().numel() <= 1 << 16 {
                    no_panic(&what, || tape.backward(y.sum()))?;
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("pool2d: "), "{e}"),
        }
    }

    #[test]
    fn matmul_any_shapes_err_or_predicted(a in small_shape(), b in small_shape()) {
        let tape = Tape::<f32>::new();
        let (av, bv) = (tape.input(Tensor::zeros(a.as_slice())), tape.input(Tensor::zeros(b.as_slice())));
        let what = format!("matmul {a:?} {b:?}");
        let r = no_panic(&what, || av.try_matmul(bv).map(|y| y.shape()))?;
        let ok_rank = (2..=3).contains(&a.len()) && (2..=3).contains(&b.len());
        let valid = ok_rank.then(|| {
            let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
            let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
            let ba = if a.len() == 3 { a[0] } else { 1 };
            let bb = if b.len() == 3 { b[0] } else { 1 };
            let batch_ok = ba == bb || ba == 1 || bb == 1;
            // A batch of 1 broadcasts to the other's, 0 included.
            let batch = if ba == 1 { bb } else { ba };
            (k == k2 && batch_ok).then(|| {
                if a.len() == 3 || b.len() == 3 { vec![batch, m, n] } else { vec![m, n] }
            })
        }).flatten();
        expect_err_or(&what, r, valid, "matmul")?;
    }

    #[test]
    fn binary_ops_any_shapes_err_or_broadcast(a in small_shape(), b in small_shape(), op in 0..4usize) {
        let tape = Tape::<f64>::new();
        let (av, bv) = (tape.param(Tensor::zeros(a.as_slice())), tape.param(Tensor::ones(b.as_slice())));
        let what = format!("op {op} {a:?} {b:?}");
        let r = no_panic(&what, || match op {
            0 => av.try_add(bv),
            1 => av.try_mul(bv),
            2 => av.try_sub(bv),
            _ => av.try_div(bv),
        })?;
        let names = ["add", "mul", "sub", "div"];
        match (&r, broadcast_binary(&a, &b)) {
            (Ok(y), Some(want)) => {
                prop_assert_eq!(y.shape().to_vec(), want, "{}", what);
                no_panic(&what, || tape.backward(y.sum()))?;
            }
            (Ok(y), None) => prop_assert!(false, "{what}: accepted as {}", y.shape()),
            (Err(e), Some(_)) => prop_assert!(false, "{what}: refused: {e}"),
            (Err(e), None) => prop_assert!(e.to_string().starts_with(names[op]), "{e}"),
        }
    }

    #[test]
    fn shape_ops_any_arguments_never_panic(
        x in small_shape(),
        target in small_shape(),
        perm in proptest::collection::vec(0..=5usize, 0..=5),
        (axis, start, len) in (size(), size(), size()),
        others in proptest::collection::vec(small_shape(), 0..=3),
    ) {
        let tape = Tape::<f32>::new();
        let xv = tape.param(Tensor::zeros(x.as_slice()));
        let numel = |s: &[usize]| s.iter().product::<usize>();

        let what = format!("reshape {x:?} -> {target:?}");
        let r = no_panic(&what, || xv.try_reshape(target.as_slice()).map(|y| y.shape()))?;
        let valid = (numel(&x) == numel(&target)).then(|| target.clone());
        expect_err_or(&what, r, valid, "reshape")?;

        let what = format!("permute {x:?} by {perm:?}");
        let r = no_panic(&what, || xv.try_permute(&perm).map(|y| y.shape()))?;
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        let valid = (sorted == (0..x.len()).collect::<Vec<_>>())
            .then(|| perm.iter().map(|&i| x[i]).collect());
        expect_err_or(&what, r, valid, "permute")?;

        let what = format!("narrow {x:?} axis {axis} start {start} len {len}");
        let r = no_panic(&what, || xv.try_narrow(axis, start, len).map(|y| y.shape()))?;
        let valid = (axis < x.len() && start.checked_add(len).is_some_and(|e| e <= x[axis]))
            .then(|| {
                let mut s = x.clone();
                s[axis] = len;
                s
            });
        expect_err_or(&what, r, valid, "narrow")?;

        let what = format!("broadcast_to {x:?} -> {target:?}");
        let r = no_panic(&what, || xv.try_broadcast_to(target.as_slice()).map(|y| y.shape()))?;
        let valid = broadcast(&x, &target).filter(|b| *b == target);
        expect_err_or(&what, r, valid, "broadcast_to")?;

        let mut all = vec![x.clone()];
        all.extend(others.iter().cloned());
        let vars: Vec<_> = all.iter().map(|s| tape.param(Tensor::zeros(s.as_slice()))).collect();
        let what = format!("concat {all:?} axis {axis}");
        let r = no_panic(&what, || Var::try_concat(&vars, axis).map(|y| y.shape()))?;
        let valid = (axis < x.len()
            && all.iter().all(|s| {
                s.len() == x.len()
                    && s.iter().zip(&x).enumerate().all(|(i, (a, b))| i == axis || a == b)
            }))
        .then(|| {
            let mut s = x.clone();
            s[axis] = all.iter().map(|s| s[axis]).sum();
            s
        });
        expect_err_or(&what, r, valid, "concat")?;
    }

    #[test]
    fn tensor_constructors_any_shapes(shape in proptest::collection::vec(size(), 0..=4), len in 0..=40usize) {
        let what = format!("try_from_vec {len} values as {shape:?}");
        let r = no_panic(&what, || Tensor::<f32>::try_from_vec(vec![0.0; len], shape.as_slice()))?;
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        match r {
            Ok(t) => {
                prop_assert_eq!(Some(len), numel, "{}", what);
                prop_assert_eq!(t.shape().dims(), shape.as_slice());
            }
            Err(e) => {
                prop_assert_ne!(Some(len), numel, "{}: {}", what, e);
            }
        }
        if let Some(n) = numel.filter(|&n| n <= 64) {
            let t = Tensor::<f64>::zeros(shape.as_slice());
            prop_assert_eq!(t.numel(), n);
            let what = format!("try_reshape {shape:?} -> [{len}]");
            let r = no_panic(&what, || t.try_reshape([len]))?;
            prop_assert_eq!(r.is_ok(), n == len, "{}", what);
        }
    }
}
