//! Shared pieces of the ops' gradient-check tests.

use crate::gradcheck::gradcheck;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Operand shapes of the binary ops' checks: broadcasting in each direction, scalars, size-1
/// axes, equal shapes, odd sizes.
pub(crate) const BROADCAST_PAIRS: &[(&[usize], &[usize])] = &[
    (&[3, 4], &[4]),
    (&[4], &[3, 4]),
    (&[2, 1, 3], &[4, 1]),
    (&[4, 1], &[2, 1, 3]),
    (&[], &[2, 3]),
    (&[2, 3], &[]),
    (&[], &[]),
    (&[1], &[5]),
    (&[5], &[1]),
    (&[3, 5], &[3, 5]),
    (&[1, 7], &[3, 1]),
    (&[2, 3, 5], &[2, 3, 5]),
    (&[3, 1, 1], &[1, 2, 1]),
];

/// Input shapes of the unary ops' checks: rank 0 to 3, size-1 axes, odd sizes.
pub(crate) const UNARY_SHAPES: &[&[usize]] = &[&[], &[1], &[7], &[2, 3], &[2, 3, 4], &[3, 1, 2]];

/// Standard normal samples of shape `s`, reproducible from `seed`.
pub(crate) fn randn(seed: u64, s: &[usize]) -> Tensor<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Tensor::randn(Shape::from(s), &mut rng)
}

/// Runs gradcheck, panicking with `what` and the report on failure; returns the largest
/// absolute error.
pub(crate) fn check<F>(what: &str, inputs: &[Tensor<f64>], f: F) -> f64
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    match gradcheck(f, inputs) {
        Ok(r) => r.max_abs_err(),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Gradchecks a unary op on every shape of [`UNARY_SHAPES`], with standard normal samples
/// passed through `domain` (to keep them inside the op's domain and away from kinks);
/// prints and returns the largest absolute error.
pub(crate) fn check_unary<F>(name: &str, domain: impl Fn(f64) -> f64, f: F) -> f64
where
    F: for<'t> Fn(Var<'t, f64>) -> Var<'t, f64>,
{
    let mut worst = 0.0f64;
    for (k, &s) in UNARY_SHAPES.iter().enumerate() {
        let x = randn(k as u64, s).map(&domain);
        worst = worst.max(check(&format!("{name} {s:?}"), &[x], |v| f(v[0])));
    }
    eprintln!(
        "{name}: {} configs, max |error| {worst:.3e}",
        UNARY_SHAPES.len()
    );
    worst
}

/// Operands for maximum and minimum: `a` on the grid `0.1 k + 0.05`, `b` on the grid
/// `0.1 k`, so every difference is at least 0.05, far from a tie at the finite-difference step.
pub(crate) fn untied_pair(k: usize, sa: &[usize], sb: &[usize]) -> [Tensor<f64>; 2] {
    let mut rng = StdRng::seed_from_u64(k as u64);
    let a = Tensor::randn(Shape::from(sa), &mut rng);
    let b = Tensor::randn(Shape::from(sb), &mut rng);
    [
        a.map(|v: f64| (v * 10.0).round() / 10.0 + 0.05),
        b.map(|v: f64| (v * 10.0).round() / 10.0),
    ]
}

/// Gradchecks a broadcasting binary op on every pair of [`BROADCAST_PAIRS`] with standard
/// normal operands; prints and returns the largest absolute error.
pub(crate) fn check_binary<F>(name: &str, f: F) -> f64
where
    F: for<'t> Fn(Var<'t, f64>, Var<'t, f64>) -> Var<'t, f64>,
{
    let mut worst = 0.0f64;
    for (k, &(sa, sb)) in BROADCAST_PAIRS.iter().enumerate() {
        let x = [randn(2 * k as u64, sa), randn(2 * k as u64 + 1, sb)];
        worst = worst.max(check(&format!("{name} {sa:?}, {sb:?}"), &x, |v| {
            f(v[0], v[1])
        }));
    }
    eprintln!(
        "{name}: {} configs, max |error| {worst:.3e}",
        BROADCAST_PAIRS.len()
    );
    worst
}

/// Gradchecks an op that resizes the last two axes (`f(x, (h, w))`, followed by tanh so that
/// the gradient depends on the output) over growing, shrinking, mixed, 1 × 1 and rank-2
/// cases; prints and returns the largest absolute error.
pub(crate) fn check_resizes<F>(name: &str, f: F) -> f64
where
    F: for<'t> Fn(Var<'t, f64>, (usize, usize)) -> Var<'t, f64>,
{
    let cases: &[(&[usize], (usize, usize))] = &[
        (&[1, 1, 2, 3], (4, 6)),
        (&[2, 3, 3, 3], (7, 5)),
        (&[1, 2, 5, 4], (3, 2)),
        (&[2, 1, 1, 1], (3, 4)),
        (&[2, 3, 4, 4], (1, 1)),
        (&[1, 2, 7, 5], (3, 2)),
        (&[3, 6, 9], (4, 4)),
    ];
    let mut worst = 0.0f64;
    for (k, &(s, size)) in cases.iter().enumerate() {
        let x = randn(k as u64, s);
        let what = format!("{name} {s:?} to {size:?}");
        worst = worst.max(check(&what, &[x], |v| f(v[0], size).tanh()));
    }
    eprintln!("{name}: {} configs, max |error| {worst:.3e}", cases.len());
    worst
}
