//! Second derivatives: every twice-differentiable op passes `gradgradcheck` (PyTorch's
//! tolerances, f64) over several configurations, and the ops whose second derivative is
//! zero almost everywhere (relu, leaky_relu, abs, max, maximum, max-pooling) give exactly
//! zero.

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::GradcheckError;
use tapegrad::ops::conv2d::ConvOptions;
use tapegrad::ops::max_pool2d::PoolOptions;
use tapegrad::prelude::*;

fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut StdRng::seed_from_u64(seed))
}

/// Values in [lo, lo + 1): away from the kinks and poles of log, sqrt, powf.
fn positive(shape: &[usize], seed: u64, lo: f64) -> Tensor<f64> {
    Tensor::<f64>::rand(shape, &mut StdRng::seed_from_u64(seed)).map(|v| v + lo)
}

/// Runs gradgradcheck, prints the worst errors, and fails with the report.
fn check(name: &str, f: impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>, xs: &[Tensor<f64>]) {
    match gradgradcheck(f, xs) {
        Ok(r) => println!(
            "{name}: worst abs {:.2e}, rel {:.2e}",
            r.max_abs_err(),
            r.max_rel_err()
        ),
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn unary_ops() {
    let x = randn(&[2, 3], 1);
    let p = positive(&[2, 3], 2, 0.5);
    check("tanh", |v| v[0].tanh(), std::slice::from_ref(&x));
    check("sigmoid", |v| v[0].sigmoid(), std::slice::from_ref(&x));
    check("exp", |v| v[0].exp(), std::slice::from_ref(&x));
    check("softplus", |v| v[0].softplus(), std::slice::from_ref(&x));
    check("square", |v| v[0].square(), std::slice::from_ref(&x));
    check(
        "neg, scalars",
        |v| (-v[0] * 3.0 + 1.0) / 2.0 - 0.5,
        std::slice::from_ref(&x),
    );
    check("rdiv", |v| 2.0 / v[0], std::slice::from_ref(&p));
    check("log", |v| v[0].log(), std::slice::from_ref(&p));
    check("log1p", |v| v[0].log1p(), std::slice::from_ref(&p));
    check("sqrt", |v| v[0].sqrt(), std::slice::from_ref(&p));
    check("powf 2.5", |v| v[0].powf(2.5), std::slice::from_ref(&p));
    check("powf 1", |v| v[0].powf(1.0), std::slice::from_ref(&p));
    check("powf -1.5", |v| v[0].powf(-1.5), &[p]);
}

/// The activations of modern networks, to the second and (through `Tape::grad` inside the
/// checked function) the third derivative. elu and hardswish are sampled on both sides of
/// their joins, away from them.
#[test]
fn activations_to_the_third_derivative() {
    let x = randn(&[3, 5], 3).map(|v| 2.0 * v + 0.1 * v.signum());
    let wide = randn(&[3, 5], 4).map(|v| {
        let v = 3.0 * v;
        if (v.abs() - 3.0).abs() < 0.1 {
            v + 0.2
        } else {
            v
        }
    });
    type Act = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
    let acts: [(&str, Act, &Tensor<f64>); 5] = [
        ("gelu", |v| v.gelu(), &x),
        ("gelu_tanh", |v| v.gelu_tanh(), &x),
        ("silu", |v| v.silu(), &x),
        ("elu", |v| v.elu(0.7), &x),
        ("hardswish", |v| v.hardswish(), &wide),
    ];
    for (name, f, x) in acts {
        check(name, |v| f(v[0]), std::slice::from_ref(x));
        // The first derivative as the checked function: its gradgradcheck is the third.
        check(
            &format!("{name}'"),
            |v| v[0].tape().grad(f(v[0]).sum(), &[v[0]])[0],
            std::slice::from_ref(x),
        );
    }
}

/// Padding, resizing and adaptive pooling are linear maps whose VJP is the transposed map:
/// tanh after each makes the second derivative depend on both.
#[test]
fn padding_resizing_and_adaptive_pooling() {
    let x = randn(&[2, 2, 4, 5], 5);
    let modes = [PadMode::Constant(0.3), PadMode::Reflect, PadMode::Replicate];
    for mode in modes {
        let name = format!("pad {mode:?}");
        check(
            &name,
            |v| v[0].pad(&[(1, 2), (3, 1)], mode).tanh(),
            std::slice::from_ref(&x),
        );
    }
    for mode in [Interpolation::Nearest, Interpolation::Bilinear] {
        let name = format!("interpolate {mode:?}");
        check(
            &name,
            |v| v[0].interpolate((7, 3), mode).tanh(),
            std::slice::from_ref(&x),
        );
    }
    for size in [(1, 1), (3, 2)] {
        let name = format!("adaptive_avg_pool2d {size:?}");
        check(
            &name,
            |v| v[0].adaptive_avg_pool2d(size).tanh(),
            std::slice::from_ref(&x),
        );
    }
}

/// Batch, layer and group norm share one normalisation op whose VJP is an op of its own;
/// its VJP in `x` is written in ops, so the third derivative is checked too.
#[test]
fn normalisation_to_the_third_derivative() {
    let x = randn(&[3, 2, 2, 3], 6).map(|v| 2.0 * v + 1.0);
    let w = randn(&[2], 7);
    let b = randn(&[2], 8);
    let xs = [x.clone(), w, b];
    let bn = BatchNormOptions::new();
    check(
        "batch_norm",
        |v| v[0].batch_norm(Some(v[1]), Some(v[2]), None, bn).tanh(),
        &xs,
    );
    check(
        "group_norm",
        |v| v[0].group_norm(2, Some(v[1]), Some(v[2]), 1e-5).tanh(),
        &xs,
    );
    fn ln(x: Var<'_, f64>) -> Var<'_, f64> {
        x.layer_norm(&[2, 3], None, None, 1e-5)
    }
    check("layer_norm", |v| ln(v[0]).tanh(), std::slice::from_ref(&x));
    check(
        "layer_norm'",
        |v| v[0].tape().grad(ln(v[0]).tanh().sum(), &[v[0]])[0],
        std::slice::from_ref(&x),
    );
    check(
        "batch_norm'",
        |v| {
            v[0].tape().grad(
                v[0].batch_norm(None, None, None, bn).square().sum(),
                &[v[0]],
            )[0]
            .tanh()
        },
        std::slice::from_ref(&x),
    );
}

#[test]
fn binary_ops_with_broadcasting() {
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3]),
        (&[2, 3], &[3]),
        (&[2, 1], &[1, 4]),
        (&[3], &[2, 2, 3]),
    ];
    for (k, (sa, sb)) in pairs.into_iter().enumerate() {
        let (a, b) = (randn(sa, 10 + k as u64), positive(sb, 20 + k as u64, 0.5));
        let xs = [a, b];
        check(&format!("add {sa:?} {sb:?}"), |v| v[0] + v[1], &xs);
        check(&format!("sub {sa:?} {sb:?}"), |v| v[0] - v[1], &xs);
        check(&format!("mul {sa:?} {sb:?}"), |v| v[0] * v[1], &xs);
        check(&format!("div {sa:?} {sb:?}"), |v| v[0] / v[1], &xs);
    }
}

#[test]
fn matmul() {
    let cases: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[4, 2]),
        (&[2, 3, 4], &[2, 4, 2]),
        (&[2, 3, 4], &[4, 2]),
        (&[3, 4], &[2, 4, 5]),
    ];
    for (k, (sa, sb)) in cases.into_iter().enumerate() {
        let xs = [randn(sa, 30 + k as u64), randn(sb, 40 + k as u64)];
        check(&format!("matmul {sa:?} {sb:?}"), |v| v[0].matmul(v[1]), &xs);
        // A nonlinearity after it, so that the second derivative mixes both operands.
        check(
            &format!("tanh(matmul) {sa:?} {sb:?}"),
            |v| v[0].matmul(v[1]).tanh(),
            &xs,
        );
    }
}

#[test]
fn conv2d() {
    // (input, weight, options, bias)
    let cases: [(&[usize], &[usize], ConvOptions, bool); 6] = [
        (&[1, 1, 5, 5], &[2, 1, 3, 3], ConvOptions::new(), false),
        (
            &[2, 2, 5, 6],
            &[3, 2, 3, 2],
            ConvOptions::new().stride(2).padding(1),
            true,
        ),
        (
            &[1, 2, 7, 7],
            &[2, 2, 3, 3],
            ConvOptions::new().dilation(2),
            true,
        ),
        (
            &[1, 4, 4, 5],
            &[4, 2, 2, 3],
            ConvOptions::new().groups(2).padding((1, 0)),
            false,
        ),
        (
            &[1, 3, 5, 5],
            &[3, 1, 3, 3],
            ConvOptions::new().groups(3).padding(1),
            true,
        ),
        (&[2, 3, 4, 4], &[2, 3, 1, 1], ConvOptions::new(), true),
    ];
    for (k, (sx, sw, opts, bias)) in cases.into_iter().enumerate() {
        let mut xs = vec![randn(sx, 50 + k as u64), randn(sw, 60 + k as u64)];
        let name = format!("conv2d {sx:?} {sw:?} {opts:?} bias {bias}");
        if bias {
            xs.push(randn(&[sw[0]], 70 + k as u64));
            // tanh after the convolution: the weight and input second derivatives mix.
            check(&name, |v| v[0].conv2d_bias(v[1], v[2], opts).tanh(), &xs);
        } else {
            check(&name, |v| v[0].conv2d(v[1], opts).square(), &xs);
        }
    }
}

/// The transposed convolution is conv2d's input gradient as an op: its VJPs are the
/// convolution and the weight gradient, each differentiable again.
#[test]
fn conv_transpose2d() {
    let opts = ConvTransposeOptions::new()
        .stride(2)
        .padding(1)
        .output_padding(1);
    let xs = [
        randn(&[2, 3, 3, 4], 40),
        randn(&[3, 2, 3, 3], 41).map(|v| v * 0.5),
        randn(&[2], 42),
    ];
    check(
        "conv_transpose2d",
        |v| v[0].conv_transpose2d_bias(v[1], v[2], opts).tanh(),
        &xs,
    );
    let dil = ConvTransposeOptions::new()
        .dilation(2)
        .output_padding(1)
        .groups(1);
    check(
        "conv_transpose2d dilated",
        |v| v[0].conv_transpose2d(v[1], dil).tanh(),
        &xs[..2],
    );
}

#[test]
fn pooling() {
    // Distinct values well apart, so that no window's maximum is within eps of a tie.
    let distinct = |shape: &[usize], seed: u64| {
        let n: usize = shape.iter().product();
        let mut v: Vec<f64> = (0..n).map(|i| i as f64 * 0.1).collect();
        use rand::seq::SliceRandom;
        v.shuffle(&mut StdRng::seed_from_u64(seed));
        Tensor::from_vec(v, shape)
    };
    let x = distinct(&[1, 2, 4, 6], 80);
    check(
        "max_pool2d 2 (tiled)",
        |v| v[0].max_pool2d(2).square(),
        std::slice::from_ref(&x),
    );
    let overlapping = PoolOptions::new(3).stride(2).padding(1);
    check(
        "max_pool2d 3/2 pad 1",
        |v| v[0].max_pool2d(overlapping).square(),
        std::slice::from_ref(&x),
    );
    check(
        "avg_pool2d 2",
        |v| v[0].avg_pool2d(2).square(),
        std::slice::from_ref(&x),
    );
    let avg = PoolOptions::new((3, 2)).stride(1).padding((1, 0));
    check(
        "avg_pool2d 3x2 pad",
        |v| v[0].avg_pool2d(avg).tanh(),
        std::slice::from_ref(&x),
    );
    check("max", |v| v[0].max_axes(&[3], false).square(), &[x]);
}

#[test]
fn reductions_and_shapes() {
    let x = randn(&[2, 3, 4], 90);
    check(
        "sum_axes",
        |v| v[0].sum_axes(&[1], true).square(),
        std::slice::from_ref(&x),
    );
    check(
        "mean_axes",
        |v| v[0].mean_axes(&[0, 2], false).square(),
        std::slice::from_ref(&x),
    );
    check(
        "permute",
        |v| v[0].permute(&[2, 0, 1]).square(),
        std::slice::from_ref(&x),
    );
    check(
        "narrow",
        |v| v[0].narrow(2, 1, 2).square(),
        std::slice::from_ref(&x),
    );
    check(
        "reshape",
        |v| v[0].reshape([4, 6]).square(),
        std::slice::from_ref(&x),
    );
    check(
        "broadcast_to",
        |v| v[0].broadcast_to([2, 2, 3, 4]).square(),
        std::slice::from_ref(&x),
    );
    check(
        "sum_to",
        |v| v[0].sum_to([1, 3, 1]).square(),
        std::slice::from_ref(&x),
    );
    let y = randn(&[2, 1, 4], 91);
    check(
        "concat",
        |v| Var::concat(&[v[0], v[1]], 1).square(),
        &[x, y],
    );
}

#[test]
fn softmax_and_losses() {
    let z = randn(&[3, 4], 100);
    check("softmax", |v| v[0].softmax(1), std::slice::from_ref(&z));
    check(
        "softmax axis 0",
        |v| v[0].softmax(0),
        std::slice::from_ref(&z),
    );
    check(
        "log_softmax",
        |v| v[0].log_softmax(1),
        std::slice::from_ref(&z),
    );
    check(
        "cross_entropy",
        |v| v[0].cross_entropy(&[1, 0, 3]),
        std::slice::from_ref(&z),
    );
    check(
        "cross_entropy_smoothed",
        |v| v[0].cross_entropy_smoothed(&[1, 0, 3], 0.2),
        std::slice::from_ref(&z),
    );
    let t = randn(&[3, 4], 101);
    check("mse_loss", |v| v[0].mse_loss(&t), std::slice::from_ref(&z));
    let y = Tensor::<f64>::rand([3, 4], &mut StdRng::seed_from_u64(102));
    check("bce_with_logits", |v| v[0].bce_with_logits(&y), &[z]);
    let p = Tensor::<f64>::rand([3, 4], &mut StdRng::seed_from_u64(103)).map(|v| 0.1 + 0.8 * v);
    check("bce", |v| v[0].bce(&y), &[p]);
    let x = randn(&[4, 5], 104);
    check(
        "dropout",
        |v| v[0].dropout(0.3, &mut StdRng::seed_from_u64(7)).tanh(),
        &[x],
    );
}

/// relu, leaky_relu, abs, max, maximum and max-pooling are piecewise linear: their second derivatives
/// are exactly zero away from the kinks.
#[test]
fn piecewise_linear_ops_have_zero_second_derivatives() {
    let tape = Tape::<f64>::new();
    let x = tape.param(randn(&[2, 3, 4, 4], 110));
    let b = tape.param(randn(&[4], 111));
    let fs: [(&str, Var<'_, f64>); 6] = [
        ("relu", x.relu()),
        ("leaky_relu", x.leaky_relu(0.1)),
        ("abs", x.abs()),
        ("max", x.max_axes(&[3], false)),
        ("maximum", x.maximum(b)),
        ("max_pool2d", x.max_pool2d(2)),
    ];
    for (name, y) in fs {
        let v = tape.input(randn(&y.shape(), 112));
        let [gx, gb] = tape.grad((y * v).sum(), &[x, b])[..] else {
            unreachable!()
        };
        let u = tape.input(randn(&x.shape(), 113));
        let w = tape.input(randn(&b.shape(), 114));
        let h = tape.grad((gx * u).sum() + (gb * w).sum(), &[x, b]);
        for (k, hk) in h.iter().enumerate() {
            assert!(
                hk.value().data().iter().all(|&e| e == 0.0),
                "{name}: second derivative {k} not zero"
            );
        }
    }
}

/// A gradient penalty: the loss holds the norm of an input gradient, and backward goes
/// through the first backward; against finite differences of the whole penalty.
#[test]
fn gradient_penalty_through_a_small_critic() {
    let x = randn(&[2, 1, 6, 6], 120);
    let w = randn(&[3, 1, 3, 3], 121).map(|v| v * 0.5);
    let w2 = randn(&[12, 1], 122).map(|v| v * 0.3);
    let report = gradcheck(
        |v| {
            let tape = v[0].tape();
            let critic = v[0]
                .conv2d(v[1], ConvOptions::new())
                .tanh()
                .max_pool2d(2)
                .flatten()
                .matmul(v[2])
                .sum();
            let gx = tape.grad(critic, &[v[0]])[0];
            let norm = (gx.square().sum_axes(&[1, 2, 3], false) + 1e-12).sqrt();
            critic + ((norm - 1.0).square()).mean()
        },
        &[x, w, w2],
    )
    .unwrap();
    println!("gradient penalty: worst rel {:.2e}", report.max_rel_err());
}

#[test]
fn a_first_order_op_is_refused_by_grad_with_its_name() {
    let tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    let cube = tape.record("cube", &[x], x.value().map(|v| v * v * v), |g, _| {
        [Some(g.clone())]
    });
    let e = tape.try_grad(cube.sum(), &[x]).unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("grad: the gradient flows through `cube` (recorded at tests/gradgrad.rs:"),
        "{s}"
    );
    assert!(s.contains("Tape::record_differentiable"), "{s}");
    // First order still works through it.
    assert_eq!(tape.backward(cube.sum())[x].to_vec(), vec![1.0, 1.0]);
}

/// gradgradcheck over an op with a first-order VJP only is an error naming the op, not a
/// panic inside the check.
#[test]
fn gradgradcheck_through_a_first_order_op_is_an_error() {
    let x = Tensor::from_vec(vec![1.0, 2.0], [2]);
    let e = gradgradcheck(
        |v| {
            let t = v[0].tape();
            t.record("cube", &[v[0]], v[0].value().map(|a| a * a * a), |g, _| {
                [Some(g.clone())]
            })
        },
        &[x],
    )
    .unwrap_err();
    assert!(matches!(e, GradcheckError::Unsupported(_)), "{e:?}");
    assert_eq!((e.failures(), e.worst()), (0, None));
    let s = e.to_string();
    assert!(
        s.starts_with("gradgradcheck cannot run: grad: the gradient flows through `cube`"),
        "{s}"
    );
}
