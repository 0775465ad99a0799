//! One way to write a model that both trains and gradchecks: a struct of `ParamId`s with a
//! `forward` generic over the float type, taking the bound parameters and the input.

use tapegrad::nn::{Bound, Init, Optimizer, ParamId, ParamStore, Sgd};
use tapegrad::prelude::*;
use tapegrad::rand::SeedableRng;
use tapegrad::rand::rngs::StdRng;

/// conv 3x3 (stride 2, padding 1) + bias, max-pool, tanh, linear: a small CNN.
struct Cnn {
    conv_w: ParamId,
    conv_b: ParamId,
    fc_w: ParamId,
    fc_b: ParamId,
}

impl Cnn {
    fn new<T: Float>(store: &mut ParamStore<T>, rng: &mut StdRng) -> Cnn {
        Cnn {
            conv_w: store.add("conv.w", [3, 2, 3, 3], Init::HeNormal, rng),
            conv_b: store.add("conv.b", [3], Init::Normal { std: 0.1 }, rng),
            fc_w: store.add("fc.w", [12, 4], Init::GlorotNormal, rng),
            fc_b: store.add("fc.b", [4], Init::Normal { std: 0.1 }, rng),
        }
    }

    fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let conv = ConvOptions::new().stride(2).padding(1);
        x.conv2d_bias(p[self.conv_w], p[self.conv_b], conv)
            .max_pool2d(2)
            .tanh()
            .flatten()
            .matmul(p[self.fc_w])
            + p[self.fc_b]
    }
}

fn images<T: Float>(rng: &mut StdRng) -> Tensor<T> {
    Tensor::<f64>::randn([2, 2, 7, 9], rng).cast()
}

#[test]
fn the_model_that_trains_in_f32_is_gradchecked_as_written() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut store = ParamStore::<f32>::new();
    let net = Cnn::new(&mut store, &mut rng);
    let x: Tensor<f32> = images(&mut rng);
    let labels = [1, 3];

    // Train a few steps in f32 ...
    let mut opt = Sgd::new(0.05);
    let mut tape = Tape::new();
    let mut losses = vec![];
    for _ in 0..5 {
        let p = store.bind(&tape);
        let loss = net
            .forward(&p, tape.input(x.clone()))
            .cross_entropy(&labels)
            .mean();
        losses.push(loss.value().item());
        let g = p.grads(&tape.backward(loss));
        tape.clear();
        opt.step(&mut store, &g);
    }
    assert!(losses[4] < losses[0], "{losses:?}");

    // ... and check the same forward, on an f64 copy of the trained store.
    let x64: Tensor<f64> = x.cast();
    let report = gradcheck_model(
        &store.cast(),
        |p, v| net.forward(p, v[0]).cross_entropy(&labels).mean(),
        &[x64],
    )
    .expect("the model's gradients agree with finite differences");
    let names: Vec<&str> = report.inputs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["conv.w", "conv.b", "fc.w", "fc.b", "input 0"]);
    assert!(report.max_rel_err() < 1e-5, "{report}");
    assert!(
        report.to_string().starts_with("conv.w: max |error| "),
        "{report}"
    );
}

/// A bias added through an op whose VJP forgets a factor of 2: the failure names the
/// parameter by its name in the store.
#[test]
fn a_wrong_gradient_is_reported_under_the_parameters_name() {
    fn doubled_bias<'t>(y: Var<'t, f64>, b: Var<'t, f64>) -> Var<'t, f64> {
        let value = &y.value() + &(&b.value() * 2.0);
        y.tape().record("doubled_bias", &[y, b], value, |g, _| {
            let gb = g.sum_to_shape([4]); // should be 2 · this
            [Some(g.clone()), Some(gb)]
        })
    }
    let mut rng = StdRng::seed_from_u64(3);
    let mut store = ParamStore::<f64>::new();
    let w = store.add("head.w", [3, 4], Init::GlorotNormal, &mut rng);
    let b = store.add("head.b", [4], Init::Normal { std: 0.5 }, &mut rng);
    let x = Tensor::<f64>::randn([5, 3], &mut rng);
    let e = gradcheck_model(
        &store,
        |p, v| doubled_bias(v[0].matmul(p[w]), p[b]).tanh(),
        &[x],
    )
    .unwrap_err();
    assert_eq!(e.worst().unwrap().name, "head.b");
    assert_eq!(e.failures(), 4);
    assert!(
        e.to_string()
            .starts_with("gradcheck failed on 4 element(s); worst: head.b at ["),
        "{e}"
    );
}

/// An input captured by the forward (not given to the check) is not checked.
#[test]
fn inputs_captured_by_the_forward_are_left_out() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut store = ParamStore::<f64>::new();
    let w = store.add("w", [3, 2], Init::GlorotNormal, &mut rng);
    let x = Tensor::<f64>::randn([4, 3], &mut rng);
    let report =
        gradcheck_model(&store, |p, _| p.tape().input(x.clone()).matmul(p[w]), &[]).unwrap();
    assert_eq!(report.inputs.len(), 1);
    assert_eq!(report.get("w").unwrap().worst.name, "w");
}
