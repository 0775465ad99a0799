//! The `nn` layers: PyTorch's names, shapes and initial values; buffers that the training
//! step updates and no optimiser moves; gradient checks of a model with every layer; and a
//! PyTorch `state_dict` (tests/fixtures/torch_layers.safetensors, from
//! scripts/torch_layers_fixture.py) that loads by name and gives PyTorch's outputs,
//! gradients and running statistics.

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::nn::{
    Adam, BatchNorm2d, Bound, Conv2d, ConvTranspose2d, Dropout, GroupNorm, LayerNorm, Linear,
    Optimizer, ParamStore, Sgd,
};
use tapegrad::prelude::*;

/// The model of scripts/torch_layers_fixture.py.
struct Net {
    conv1: Conv2d,
    bn1: BatchNorm2d,
    conv2: Conv2d,
    gn: GroupNorm,
    up: ConvTranspose2d,
    ln: LayerNorm,
    fc: Linear,
}

impl Net {
    fn new<T: Float>(store: &mut ParamStore<T>, rng: &mut StdRng) -> Self {
        let c2 = ConvOptions::new().padding((1, 0)).groups(2);
        let up = ConvTransposeOptions::new().stride(2).padding(1);
        Net {
            conv1: Conv2d::new(
                store,
                "conv1",
                3,
                8,
                3,
                ConvOptions::new().stride(2).padding(1),
                rng,
            ),
            bn1: BatchNorm2d::new(store, "bn1", 8),
            conv2: Conv2d::no_bias(store, "conv2", 8, 8, (3, 1), c2, rng),
            gn: GroupNorm::new(store, "gn", 4, 8),
            up: ConvTranspose2d::new(store, "up", 8, 4, 4, up, rng),
            ln: LayerNorm::new(store, "ln", &[8]),
            fc: Linear::new(store, "fc", 4, 5, rng),
        }
    }

    fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let h = self.bn1.forward(p, self.conv1.forward(p, x)).relu();
        let h = self.gn.forward(p, self.conv2.forward(p, h)).gelu();
        let h = self.ln.forward(p, self.up.forward(p, h));
        self.fc.forward(p, h.mean_axes(&[2, 3], false))
    }
}

#[test]
fn names_shapes_and_initial_values_are_pytorchs() {
    let mut rng = StdRng::seed_from_u64(0);
    let mut store = ParamStore::<f32>::new();
    let net = Net::new(&mut store, &mut rng);
    let shapes: Vec<(String, Vec<usize>, bool)> = store
        .ids()
        .map(|id| {
            (
                store.name(id).to_string(),
                store[id].shape().dims().to_vec(),
                store.is_buffer(id),
            )
        })
        .collect();
    let want: &[(&str, &[usize], bool)] = &[
        ("conv1.weight", &[8, 3, 3, 3], false),
        ("conv1.bias", &[8], false),
        ("bn1.weight", &[8], false),
        ("bn1.bias", &[8], false),
        ("bn1.running_mean", &[8], true),
        ("bn1.running_var", &[8], true),
        ("bn1.num_batches_tracked", &[], true),
        ("conv2.weight", &[8, 4, 3, 1], false),
        ("gn.weight", &[8], false),
        ("gn.bias", &[8], false),
        ("up.weight", &[8, 4, 4, 4], false),
        ("up.bias", &[4], false),
        ("ln.weight", &[8], false),
        ("ln.bias", &[8], false),
        ("fc.weight", &[5, 4], false),
        ("fc.bias", &[5], false),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|&(n, s, b)| (n.to_string(), s.to_vec(), b))
        .collect();
    assert_eq!(shapes, want);
    assert_eq!(store.trainable().count(), 13);
    // U(−1/√fan_in, 1/√fan_in), and spread over most of it: fan_in 27, 12, 4·16 (the
    // transposed weight's second axis, as PyTorch reads it), 4.
    for (id, fan_in) in [
        (net.conv1.weight, 27.0),
        (net.conv1.bias.unwrap(), 27.0),
        (net.conv2.weight, 12.0),
        (net.up.weight, 64.0),
        (net.up.bias.unwrap(), 64.0),
        (net.fc.weight, 4.0),
    ] {
        let bound = 1.0 / f32::sqrt(fan_in);
        let v = store[id].to_vec();
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound && (v.len() < 8 || max > 0.5 * bound),
            "{}: max {max}, bound {bound}",
            store.name(id)
        );
    }
    assert_eq!(store[net.bn1.weight].to_vec(), vec![1.0; 8]);
    assert_eq!(store[net.bn1.running_var].to_vec(), vec![1.0; 8]);
    assert_eq!(store[net.gn.bias].to_vec(), vec![0.0; 8]);
    assert!(store.summary().contains("bn1.running_mean") && store.summary().contains("(buffer)"));
}

#[test]
fn buffers_are_updated_by_training_steps_and_never_by_optimisers() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut store = ParamStore::<f64>::new();
    let conv = Conv2d::no_bias(&mut store, "conv", 2, 3, 3, ConvOptions::new(), &mut rng);
    let bn = BatchNorm2d::new(&mut store, "bn", 3);
    // Adam with weight decay and a large rate: it would move a buffer it stepped.
    let mut opt = Adam::new(0.5).weight_decay(0.1);
    let (mut mean, mut var) = (Tensor::<f64>::zeros([3]), Tensor::<f64>::ones([3]));
    let mut tape = Tape::new();
    for step in 1..=4 {
        let x = Tensor::randn([4, 2, 5, 5], &mut rng);
        let p = store.bind(&tape);
        let h = conv.forward(&p, tape.input(x.clone()));
        // The statistics the layer should have: the op on the same input, by hand.
        let running = RunningStats {
            mean: &mut mean,
            var: &mut var,
        };
        h.batch_norm(None, None, Some(running), BatchNormOptions::new());
        let loss = bn.forward(&p, h).square().mean();
        let grads = p.grads(&tape.backward(loss));
        assert_eq!(grads[bn.running_mean].to_vec(), vec![0.0; 3]);
        // Not before the step.
        assert_eq!(store[bn.num_batches_tracked].item(), (step - 1) as f64);
        tape.clear();
        opt.step(&mut store, &grads);
        assert_eq!(store[bn.running_mean].to_vec(), mean.to_vec());
        assert_eq!(store[bn.running_var].to_vec(), var.to_vec());
        assert_eq!(store[bn.num_batches_tracked].item(), step as f64);
    }
    // The optimiser's state has no entry for a buffer.
    let state = opt.state(&store);
    assert!(state.by_name("bn.weight.exp_avg").is_some());
    assert!(state.by_name("bn.running_mean.exp_avg").is_none());

    // Evaluation reads the running statistics and records no update, even on a tape
    // that takes gradients (fine-tuning with frozen statistics).
    let tape = Tape::new();
    tape.set_training(false);
    let p = store.bind(&tape);
    let x = tape.input(Tensor::ones([1, 3, 2, 2]));
    let y = bn.forward(&p, x);
    let (m, v) = (
        store[bn.running_mean].to_vec(),
        store[bn.running_var].to_vec(),
    );
    let (w, b) = (store[bn.weight].to_vec(), store[bn.bias].to_vec());
    for c in 0..3 {
        let want = (1.0 - m[c]) / (v[c] + 1e-5).sqrt() * w[c] + b[c];
        assert!((y.value().to_vec()[4 * c] - want).abs() < 1e-12);
    }
    let grads = p.grads(&tape.backward(y.sum()));
    Sgd::new(0.1).step(&mut store, &grads);
    assert_eq!(store[bn.running_mean].to_vec(), m);
    assert_eq!(store[bn.num_batches_tracked].item(), 4.0);
}

#[test]
fn a_layer_called_twice_in_a_step_updates_twice_as_pytorch_does() {
    let mut store = ParamStore::<f64>::new();
    let bn = BatchNorm2d::new(&mut store, "bn", 1);
    let tape = Tape::new();
    let p = store.bind(&tape);
    let a = tape.input(Tensor::from_vec(vec![1.0, 3.0], [2, 1]));
    let b = tape.input(Tensor::from_vec(vec![5.0, 9.0], [2, 1]));
    let loss = (bn.forward(&p, a) + bn.forward(&p, b)).sum();
    let grads = p.grads(&tape.backward(loss));
    store.apply_buffers(&grads);
    // 0.9 · (0.9 · 0 + 0.1 · 2) + 0.1 · 7, and the count twice.
    assert!((store[bn.running_mean].item() - 0.88).abs() < 1e-12);
    assert_eq!(store[bn.num_batches_tracked].item(), 2.0);
}

#[test]
fn set_buffer_refuses_parameters_and_other_shapes() {
    let mut store = ParamStore::<f32>::new();
    let bn = BatchNorm2d::new(&mut store, "bn", 2);
    let tape = Tape::new();
    let p = store.bind(&tape);
    let e = p
        .try_set_buffer(bn.weight, Tensor::zeros([2]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Bound::set_buffer: ParamId 0 is a trainable parameter, not a buffer"),
        "{e}"
    );
    let e = p
        .try_set_buffer(bn.running_mean, Tensor::zeros([3]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the buffer has shape [2], the new value [3]"),
        "{e}"
    );
    // Refused calls record nothing.
    let grads = p.grads(&tape.backward(p[bn.weight].sum()));
    store.apply_buffers(&grads);
    assert_eq!(store[bn.running_mean].to_vec(), vec![0.0, 0.0]);
}

#[test]
fn bad_layer_settings_are_refused_at_the_callers_line() {
    let mut rng = StdRng::seed_from_u64(0);
    let msg = |f: &dyn Fn()| {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let mut store = ParamStore::<f32>::new();
    let m = msg(&|| {
        let mut s = ParamStore::<f32>::new();
        Conv2d::new(
            &mut s,
            "c",
            3,
            4,
            3,
            ConvOptions::new().groups(2),
            &mut StdRng::seed_from_u64(0),
        );
    });
    assert!(m.starts_with("Conv2d::new: groups = 2 must be at least 1 and divide both the 3 input and the 4 output channels (called at tests/layers.rs:"), "{m}");
    let m = msg(&|| {
        let mut s = ParamStore::<f32>::new();
        GroupNorm::new(&mut s, "g", 3, 8);
    });
    assert!(
        m.contains("groups = 3 must be at least 1 and divide the 8 channels"),
        "{m}"
    );
    Linear::new(&mut store, "fc", 3, 2, &mut rng);
    let e = store
        .try_add_buffer("fc.weight", Tensor::zeros([1]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("ParamStore::add_buffer: a parameter named \"fc.weight\" already exists"),
        "{e}"
    );
    let tape = Tape::new();
    let p = store.bind(&tape);
    let fc = Linear {
        weight: store.by_name("fc.weight").unwrap(),
        bias: store.by_name("fc.bias"),
    };
    let e = fc
        .try_forward(&p, tape.input(Tensor::zeros([2, 4])))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linear: shapes [2, 4] and [2, 3] are incompatible"),
        "{e}"
    );
    let e = Dropout::new(1.0)
        .try_forward(tape.input(Tensor::<f32>::zeros([2])), &mut rng)
        .unwrap_err();
    assert!(
        e.to_string().contains("p = 1 is not a drop probability"),
        "{e}"
    );
}

#[test]
fn gradcheck_of_a_model_with_every_layer() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut store = ParamStore::<f64>::new();
    let net = Net::new(&mut store, &mut rng);
    let x = Tensor::randn([2, 3, 8, 8], &mut rng);
    let report = gradcheck_model(&store, |p, v| net.forward(p, v[0]).tanh().sum(), &[x]).unwrap();
    // Every trainable parameter and the input; no buffer.
    assert_eq!(report.inputs.len(), 13 + 1);
    assert!(report.inputs.iter().all(|i| !i.name.contains("running")));
    eprintln!(
        "layers model gradcheck: max |error| {:.3e}",
        report.max_abs_err()
    );
}

#[cfg(feature = "safetensors")]
#[test]
fn a_pytorch_state_dict_loads_by_name_and_gives_pytorchs_results() {
    use tapegrad::nn::load_safetensors;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_layers.safetensors"
    );
    let file = load_safetensors::<f64>(path).unwrap();
    let fixture = |name: &str| file[file.by_name(&format!("fixture.{name}")).unwrap()].clone();
    let mut rng = StdRng::seed_from_u64(9);
    let mut store = ParamStore::<f64>::new();
    let net = Net::new(&mut store, &mut rng);
    store.load_from(path).unwrap();
    assert_eq!(store[net.bn1.num_batches_tracked].item(), 3.0); // int64 in the file
    let close = |what: &str, a: &Tensor<f64>, b: &Tensor<f64>, tol: f64| {
        assert_eq!(a.shape(), b.shape(), "{what}");
        let err = a
            .to_vec()
            .iter()
            .zip(b.to_vec())
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < tol, "{what}: max |difference| {err:.3e}");
        err
    };
    let x = fixture("input");
    let tape = Tape::inference();
    let out = net
        .forward(&store.bind(&tape), tape.input(x.clone()))
        .value();
    let mut worst = close("eval output", &out, &fixture("out_eval"), 1e-12);

    let tape = Tape::new();
    let p = store.bind(&tape);
    let out = net.forward(&p, tape.input(x));
    worst = worst.max(close(
        "train output",
        &out.value(),
        &fixture("out_train"),
        1e-12,
    ));
    let loss = (out * tape.input(fixture("r"))).sum();
    let grads = p.grads(&tape.backward(loss));
    for id in store.trainable() {
        let name = store.name(id).to_string();
        worst = worst.max(close(
            &name,
            &grads[id],
            &fixture(&format!("grad.{name}")),
            1e-12,
        ));
    }
    drop(p);
    drop(tape);
    Sgd::new(0.0).step(&mut store, &grads);
    for id in store.ids().filter(|&id| store.is_buffer(id)) {
        let name = store.name(id).to_string();
        worst = worst.max(close(
            &name,
            &store[id],
            &fixture(&format!("after.{name}")),
            1e-12,
        ));
    }
    eprintln!("torch state_dict: outputs, gradients and running statistics within {worst:.1e}");
}
