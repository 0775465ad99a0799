//! A user-defined op with two inputs and NumPy broadcasting, written against the public API
//! only (`Tape::record`, `Var::value`, `Tensor`'s broadcasting arithmetic and
//! `sum_to_shape`), checked against finite differences; its errors point at the caller's line.

use tapegrad::prelude::*;
use tapegrad::rand::SeedableRng;
use tapegrad::rand::rngs::StdRng;

/// `a * b + a`, broadcasting as NumPy does.
///
/// VJP: `∂L/∂a = sum_to_shape(g ⊙ (b + 1))`, `∂L/∂b = sum_to_shape(g ⊙ a)`: each product
/// summed back over the axes its operand was broadcast along.
#[track_caller]
fn try_mul_add_self<'t>(a: Var<'t, f64>, b: Var<'t, f64>) -> Result<Var<'t, f64>, Error> {
    a.check_same_tape("mul_add_self", b)?;
    let (av, bv) = (a.value(), b.value());
    // The broadcast's error, under this op's name; located at our caller, since both
    // functions are #[track_caller].
    let y = av.try_zip_map(&bv, |x, y| x * y + x).map_err(|e| Error {
        op: "mul_add_self",
        ..e
    })?;
    Ok(a.tape()
        .record("mul_add_self", &[a, b], y, move |g, needs| {
            let ga = needs[0].then(|| (g * &(&bv + 1.0)).sum_to_shape(av.shape()));
            let gb = needs[1].then(|| (g * &av).sum_to_shape(bv.shape()));
            [ga, gb]
        }))
}

#[track_caller]
fn mul_add_self<'t>(a: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
    match try_mul_add_self(a, b) {
        Ok(y) => y,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn forward_known_values() {
    let tape = Tape::<f64>::new();
    let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    let b = tape.param(Tensor::from_vec(vec![10.0, 0.0, -1.0], [3]));
    let y = mul_add_self(a, b);
    // Row by row: a * (b + 1).
    assert_eq!(y.value().to_vec(), vec![11.0, 2.0, 0.0, 44.0, 5.0, 0.0]);
    let g = tape.backward(y.sum());
    assert_eq!(g[a].to_vec(), vec![11.0, 1.0, 0.0, 11.0, 1.0, 0.0]);
    // b's gradient sums a over the rows it was broadcast along.
    assert_eq!(g[b].to_vec(), vec![5.0, 7.0, 9.0]);
}

#[test]
fn gradcheck_broadcast_shapes() {
    let configs: &[(&[usize], &[usize])] = &[
        (&[3, 4], &[4]),       // b along rows
        (&[3, 4], &[1, 4]),    // the same, with the row axis kept
        (&[3, 4], &[3, 1]),    // b along columns
        (&[2, 3, 4], &[3, 1]), // two axes of a broadcast over b
        (&[4], &[3, 4]),       // a broadcast as well
        (&[1], &[5]),          // a single element against a vector
        (&[2, 1, 3], &[4, 1]), // both broadcast: out [2, 4, 3]
        (&[], &[2, 2]),        // a rank-0 a
    ];
    let mut worst = 0.0f64;
    for (k, &(sa, sb)) in configs.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(k as u64);
        let a = Tensor::<f64>::randn(sa, &mut rng);
        let b = Tensor::<f64>::randn(sb, &mut rng);
        let r = gradcheck(|v| mul_add_self(v[0], v[1]).tanh(), &[a, b]);
        match r {
            Ok(r) => worst = worst.max(r.max_rel_err()),
            Err(e) => panic!("{sa:?} x {sb:?}: {e}"),
        }
    }
    eprintln!(
        "{} configurations, worst relative error {worst:.2e}",
        configs.len()
    );
}

#[test]
fn skips_the_gradient_nobody_needs() {
    let tape = Tape::<f64>::new();
    let a = tape.input(Tensor::ones([2, 2])); // an input: no gradient wanted
    let b = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    let g = tape.backward(mul_add_self(a, b).sum());
    assert_eq!(g[b].to_vec(), vec![2.0, 2.0]);
    assert!(g.get(a).is_none());
}

#[test]
fn error_names_the_shapes_and_the_callers_line() {
    let tape = Tape::<f64>::new();
    let a = tape.input(Tensor::zeros([2, 3]));
    let b = tape.input(Tensor::zeros([4]));
    let line = line!() + 1;
    let e = try_mul_add_self(a, b).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "mul_add_self: shapes [2, 3] and [4] are incompatible: they do not broadcast \
             (aligned from the right, each pair of extents must be equal or 1) \
             (called at tests/custom_op.rs:{line}:13)"
        )
    );
}

#[test]
fn panic_names_the_callers_line() {
    let tape = Tape::<f64>::new();
    let a = tape.input(Tensor::zeros([2, 3]));
    let b = tape.input(Tensor::zeros([2]));
    let line = line!() + 1;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mul_add_self(a, b)));
    let payload = r.expect_err("[2, 3] and [2] do not broadcast");
    let msg = payload
        .downcast_ref::<String>()
        .expect("a formatted message");
    // The panic's message carries the line of the `mul_add_self(a, b)` call above.
    assert!(
        msg.contains(&format!("(called at tests/custom_op.rs:{line}:")),
        "{msg}"
    );
}

#[test]
fn foreign_tape_is_refused() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = t1.input(Tensor::zeros([2]));
    let b = t2.input(Tensor::zeros([2]));
    let e = try_mul_add_self(a, b).unwrap_err();
    assert!(e.to_string().starts_with("mul_add_self: "), "{e}");
    assert!(e.to_string().contains("tests/custom_op.rs:"), "{e}");
}
