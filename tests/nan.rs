//! NaN propagation through every op, as in PyTorch: a NaN in the data stays a NaN in every
//! output that depends on it (elementwise ops at its place, reductions and softmax over its
//! lane, matmul and convolution over the outputs that read it), and never turns into a
//! number that hides it from the loss.

use rand::SeedableRng;
use tapegrad::prelude::*;

/// A forward of one op and how many NaN its output holds when the input `x` of shape
/// [2, 8] holds one, at [0, 3] (flat index 3).
type Case = (&'static str, fn(Var<'_, f32>) -> Var<'_, f32>, usize);

fn cases() -> Vec<Case> {
    fn ones<'t>(x: Var<'t, f32>, shape: &[usize]) -> Var<'t, f32> {
        x.tape().input(Tensor::ones(shape))
    }
    fn image(x: Var<'_, f32>) -> Var<'_, f32> {
        x.reshape([1, 1, 4, 4]) // the NaN at row 0, column 3
    }
    vec![
        // Elementwise: the NaN stays where it is.
        ("abs", |x| x.abs(), 1),
        ("neg", |x| -x, 1),
        ("exp", |x| x.exp(), 1),
        ("log", |x| x.log(), 1),
        ("log1p", |x| x.log1p(), 1),
        ("sqrt", |x| x.sqrt(), 1),
        ("square", |x| x.square(), 1),
        ("powf", |x| x.powf(3.0), 1),
        ("sigmoid", |x| x.sigmoid(), 1),
        ("tanh", |x| x.tanh(), 1),
        ("relu", |x| x.relu(), 1),
        ("softplus", |x| x.softplus(), 1),
        ("add_scalar", |x| x + 1.0, 1),
        ("sub_scalar", |x| x - 1.0, 1),
        ("rsub_scalar", |x| 1.0 - x, 1),
        ("mul_scalar", |x| x * 2.0, 1),
        ("div_scalar", |x| x / 2.0, 1),
        ("add", |x| x + ones(x, &[8]), 1),
        ("sub", |x| x - ones(x, &[2, 8]), 1),
        ("mul", |x| x * ones(x, &[1, 8]), 1),
        ("div", |x| ones(x, &[2, 8]) / x, 1),
        ("maximum", |x| x.maximum(ones(x, &[2, 8])), 1),
        ("minimum", |x| x.minimum(ones(x, &[2, 8])), 1),
        ("mse_loss", |x| x.mse_loss(&Tensor::zeros([2, 8])), 1),
        (
            "bce_with_logits",
            |x| x.bce_with_logits(&Tensor::ones([2, 8])),
            1,
        ),
        (
            "dropout",
            |x| {
                // Dropped or kept, NaN times the mask is NaN.
                let mut rng = rand::rngs::StdRng::seed_from_u64(3);
                x.dropout(0.5, &mut rng)
            },
            1,
        ),
        // Views and copies: the NaN moves, once per copy.
        ("reshape", |x| x.reshape([4, 4]), 1),
        ("flatten", |x| x.flatten(), 1),
        ("t", |x| x.t(), 1),
        ("permute", |x| x.reshape([2, 2, 4]).permute(&[2, 0, 1]), 1),
        ("narrow", |x| x.narrow(1, 2, 4), 1),
        (
            "broadcast_to",
            |x| x.reshape([1, 2, 8]).broadcast_to([3, 2, 8]),
            3,
        ),
        ("concat", |x| Var::concat(&[x, x], 0), 2),
        // Reductions and lanes: every output that reads the NaN.
        ("sum", |x| x.sum(), 1),
        ("sum_axes", |x| x.sum_axes(&[1], false), 1),
        ("mean", |x| x.mean(), 1),
        ("mean_axes", |x| x.mean_axes(&[0], false), 1),
        ("max", |x| x.max(), 1),
        ("max_axes", |x| x.max_axes(&[1], false), 1),
        ("softmax", |x| x.softmax(1), 8),
        ("log_softmax", |x| x.log_softmax(1), 8),
        ("cross_entropy", |x| x.cross_entropy(&[1, 2]), 1),
        ("matmul", |x| x.matmul(ones(x, &[8, 3])), 3),
        // 3x3 windows over the 4x4 image: the two whose columns reach column 3.
        (
            "conv2d",
            |x| image(x).conv2d(ones(x, &[1, 1, 3, 3]), ConvOptions::new()),
            1,
        ),
        ("max_pool2d", |x| image(x).max_pool2d(2), 1),
        ("avg_pool2d", |x| image(x).avg_pool2d(2), 1),
    ]
}

#[test]
fn a_nan_in_the_data_reaches_every_output_that_depends_on_it() {
    let mut data: Vec<f32> = (0..16).map(|i| 0.25 + 0.125 * i as f32).collect();
    data[3] = f32::NAN;
    let x = Tensor::from_vec(data, [2, 8]);
    let mut wrong = Vec::new();
    for (name, f, want) in cases() {
        let tape = Tape::<f32>::new();
        let y = f(tape.param(x.clone())).value();
        let nans = y.data().iter().filter(|v| v.is_nan()).count();
        if nans != want {
            wrong.push(format!(
                "{name}: {nans} NaN, expected {want}: {:?}",
                y.to_vec()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn relu_of_nan_is_nan_and_passes_its_gradient_as_pytorch() {
    for v in [f64::NAN, -f64::NAN] {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![v, -1.0, 2.0], [3]));
        let y = x.relu();
        let got = y.value().to_vec();
        assert!(got[0].is_nan(), "{got:?}");
        assert_eq!(&got[1..], &[0.0, 2.0]);
        // PyTorch's threshold_backward zeroes the gradient where the output is <= 0, which
        // a NaN output is not: the gradient passes.
        let g = tape.backward_with(y, Tensor::full([3], 5.0));
        assert_eq!(g[x].to_vec(), vec![5.0, 0.0, 5.0]);
    }
}

#[test]
fn bce_refuses_a_nan_probability_as_pytorch_does() {
    let tape = Tape::<f32>::new();
    let p = tape.input(Tensor::from_vec(vec![0.5, f32::NAN], [2]));
    let e = p.try_bce(&Tensor::ones([2])).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("bce: element 1 of the input is NaN"),
        "{e}"
    );
}
