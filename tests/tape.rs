//! The tape's contract: handles, accumulation, unreached parameters, inference, reuse and
//! misuse.

use tapegrad::prelude::*;

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s)
}

#[test]
fn a_value_used_twice_accumulates_both_gradients() {
    let tape = Tape::<f64>::new();
    let x = tape.param(t(&[3.0, -2.0], &[2]));
    // y = x*x + x  ->  dy/dx = 2x + 1
    let y = (x * x + x).sum();
    assert_eq!(tape.backward(y)[x].to_vec(), vec![7.0, -3.0]);
}

#[test]
fn a_parameter_the_loss_ignores_gets_zeros() {
    let tape = Tape::<f64>::new();
    let a = tape.param(t(&[1.0, 2.0], &[2]));
    let unused = tape.param(Tensor::ones([2, 3]));
    let g = tape.backward(a.sum());
    assert_eq!(g[unused].to_vec(), vec![0.0; 6]);
    assert_eq!(g[unused].shape(), &[2, 3]);
}

#[test]
fn inputs_get_no_gradient_and_intermediates_none() {
    let tape = Tape::<f64>::new();
    let x = tape.input(t(&[1.0], &[1]));
    let w = tape.param(t(&[2.0], &[1]));
    let h = x * w;
    let g = tape.backward(h.sum());
    assert!(g.get(x).is_none());
    assert!(g.get(h).is_none());
    assert_eq!(g[w].to_vec(), vec![1.0]);
}

#[test]
fn backward_with_a_seed_gives_a_vjp() {
    let tape = Tape::<f64>::new();
    let x = tape.param(t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    let w = tape.param(t(&[1.0, 0.0, 0.0, 2.0], &[2, 2]));
    let y = x.matmul(w);
    let g = tape.backward_with(y, t(&[1.0, 0.0, 0.0, 1.0], &[2, 2]));
    // dL/dw = x^T · seed
    assert_eq!(g[w].to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
}

/// A model is a plain function over handles; it runs on a recording tape and on an
/// inference tape alike.
fn model<'t>(x: Var<'t, f32>, w: Var<'t, f32>) -> Var<'t, f32> {
    x.matmul(w).relu()
}

#[test]
fn inference_tape_runs_the_same_model_without_recording() {
    let x = Tensor::<f32>::from_vec(vec![1.0, -1.0, 2.0, 0.5], [2, 2]);
    let w = Tensor::<f32>::from_vec(vec![0.5, 1.0, -1.0, 2.0], [2, 2]);
    let train = Tape::new();
    let y1 = model(train.input(x.clone()), train.param(w.clone())).value();
    let infer = Tape::inference();
    let (xi, wi) = (infer.input(x), infer.param(w));
    let y = model(xi, wi);
    assert_eq!(y.value(), y1);
    assert!(!y.requires_grad() && !wi.requires_grad());
    let e = infer.try_backward(y.sum()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("backward: this tape was made with Tape::inference and records no VJPs"),
        "{e}"
    );
}

#[test]
fn a_cleared_tape_is_reused_and_keeps_no_stale_gradients() {
    let mut tape = Tape::<f64>::new();
    let mut w = t(&[1.0, 2.0], &[2]);
    for step in 0..3 {
        tape.clear();
        let wv = tape.param(w.clone());
        let loss = (wv * wv).sum();
        let g = tape.backward(loss)[wv].clone();
        assert_eq!(tape.len(), 3, "step {step}"); // param, mul, sum: nothing left from the last step
        // SGD on the plain tensor; the tape's copy is shared until the next clear.
        w = Tensor::from_fn(w.shape(), |i| w.data()[i] - 0.25 * g.data()[i]);
    }
    assert_eq!(w.to_vec(), vec![0.125, 0.25]);
}

#[test]
fn backward_twice_is_an_error() {
    let tape = Tape::<f64>::new();
    let x = tape.param(t(&[1.0], &[1]));
    let y = (x * x).sum();
    let _ = tape.backward(y);
    let e = tape.try_backward(y).unwrap_err();
    assert_eq!(*e.kind, ErrorKind::BackwardTwice);
    assert!(e.to_string().contains("backward already ran on this tape"));
}

#[test]
fn backward_of_a_non_scalar_names_the_shape_and_the_way_out() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::ones([2, 3]));
    let e = tape.try_backward(x * 2.0).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "backward: shape [2, 3] refused: backward needs a one-element output: reduce it to \
             one with .mean() or .sum() first (softmax, cross_entropy, bce, bce_with_logits and \
             mse_loss return one value per row or element, unreduced); to backpropagate from \
             every element with an explicit seed gradient, use backward_with"
        ),
        "{e}"
    );
    let e = tape
        .try_backward_with(x * 2.0, Tensor::ones([3]))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("backward: shapes [2, 3] and [3] are incompatible"),
        "{e}"
    );
}

#[test]
fn a_handle_from_another_tape_is_refused_with_the_callers_line() {
    let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
    let a = t1.param(Tensor::ones([2]));
    let b = t2.param(Tensor::ones([2]));
    let line = line!() + 1;
    let e = a.try_add(b).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "add: a handle from another tape was used on this one (called at tests/tape.rs:{line}:15)"
        )
    );
    assert!(t1.try_backward(b).is_err());
    let e = a.try_matmul(b).unwrap_err();
    assert_eq!(*e.kind, ErrorKind::ForeignTape);
}

#[test]
fn operators_panic_with_the_structured_message() {
    let tape = Tape::<f32>::new();
    let a = tape.param(Tensor::ones([2, 3]));
    let b = tape.param(Tensor::ones([4, 3]));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a + b)).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(
        msg.starts_with("add: shapes [2, 3] and [4, 3] are incompatible: they do not broadcast"),
        "{msg}"
    );
    assert!(msg.contains("(called at tests/tape.rs:"), "{msg}");
}

#[test]
fn matmul_errors_name_both_shapes() {
    let tape = Tape::<f32>::new();
    let a = tape.param(Tensor::ones([2, 3]));
    let b = tape.param(Tensor::ones([4, 5]));
    let e = a.try_matmul(b).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "matmul: shapes [2, 3] and [4, 5] are incompatible: inner dimensions differ: 3 (columns of the left) vs 4 (rows of the right)"
        ),
        "{e}"
    );
    let c = tape.param(Tensor::ones([3]));
    assert!(
        a.try_matmul(c)
            .unwrap_err()
            .to_string()
            .contains("operands of rank 2")
    );
    let (d, e3) = (
        tape.param(Tensor::ones([2, 3, 4])),
        tape.param(Tensor::ones([3, 4, 5])),
    );
    assert!(
        d.try_matmul(e3)
            .unwrap_err()
            .to_string()
            .contains("batch sizes 2 and 3 do not broadcast")
    );
}

#[test]
fn matmul_gradcheck_2d_and_batched_with_broadcasting() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[1, 1], &[1, 1]),
        (&[3, 5], &[5, 2]),
        (&[1, 4], &[4, 7]),
        (&[2, 3, 4], &[2, 4, 5]),
        (&[2, 3, 4], &[4, 5]),
        (&[3, 4], &[2, 4, 5]),
        (&[1, 3, 4], &[3, 4, 2]),
    ];
    for (sa, sb) in shapes {
        let a = Tensor::<f64>::randn(sa, &mut rng);
        let b = Tensor::<f64>::randn(sb, &mut rng);
        if let Err(e) = gradcheck(|v| v[0].matmul(v[1]), &[a, b]) {
            panic!("matmul {sa:?} x {sb:?}: {e}");
        }
    }
}

#[test]
fn handles_are_small_and_copy() {
    assert!(std::mem::size_of::<Var<'_, f32>>() <= 16);
    let tape = Tape::<f32>::new();
    let x = tape.param(Tensor::ones([1]));
    let (a, b) = (x, x); // Copy: no clone needed to reuse a value
    assert_eq!(a.id(), b.id());
}
