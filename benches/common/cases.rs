//! The benchmark cases of `../shared/bench` (the same ids, shapes and FLOP counts as the
//! PyTorch side, `torch_conv.py`), each a closure that runs one call. Shared by the criterion
//! bench (`benches/ops.rs`) and the side-by-side runner (`examples/bench_ops.rs`), which
//! include this file by path.

use std::hint::black_box;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::nn::{Init, Optimizer, ParamId, ParamStore, Sgd};
use tapegrad::ops::conv2d::Conv2d;
use tapegrad::prelude::*;

/// One benchmark case (in f32 unless built with `cases::<f64>`): its id, its FLOP count (None where the table gives none), and one call.
pub struct Case {
    /// The id as the shared table writes it, e.g. `S2 conv fwd+bwd`.
    pub id: String,
    /// Floating-point operations of one call.
    pub flops: Option<u64>,
    /// Runs one call.
    pub run: Box<dyn FnMut()>,
}

/// (name, N, Cin, H = W, Cout, k, stride, pad), as in `torch_conv.py`.
type ConvShape = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// The five convolution cases of the shared table.
pub const SHAPES: [ConvShape; 5] = [
    ("S1", 24, 1, 28, 1, 3, 1, 1),
    ("S2", 50, 1, 28, 30, 5, 1, 0),
    ("S3", 60, 1, 28, 32, 5, 1, 2),
    ("S4", 64, 32, 14, 64, 3, 1, 1),
    ("S5", 32, 64, 56, 64, 3, 1, 1),
];

fn out_hw(h: usize, k: usize, s: usize, p: usize) -> usize {
    (h + 2 * p - k) / s + 1
}

/// FLOPs of one conv forward: `2·N·Cout·Ho·Wo·Cin·k·k`.
pub fn conv_flops(
    n: usize,
    cin: usize,
    h: usize,
    cout: usize,
    k: usize,
    s: usize,
    p: usize,
) -> u64 {
    let o = out_hw(h, k, s, p) as u64;
    2 * (n * cout * cin * k * k) as u64 * o * o
}

fn case(id: String, flops: Option<u64>, run: impl FnMut() + 'static) -> Case {
    Case {
        id,
        flops,
        run: Box::new(run),
    }
}

/// The MNIST CNN of the training-step case: conv 30@5x5, relu, max-pool 2, flatten,
/// linear 4320-100, relu, linear 100-10, softmax cross-entropy, SGD.
pub struct MnistCnn<T: Float> {
    /// The parameters.
    pub store: ParamStore<T>,
    ids: [ParamId; 6],
}

impl<T: Float> MnistCnn<T> {
    /// PyTorch's default initialisation (uniform ±1/√fan_in for weights and biases).
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = ParamStore::new();
        let mut add = |name: &str, shape: &[usize], fan_in: usize| {
            let b = 1.0 / (fan_in as f64).sqrt();
            store.add(name, shape, Init::Uniform { lo: -b, hi: b }, &mut rng)
        };
        let ids = [
            add("conv.w", &[30, 1, 5, 5], 25),
            add("conv.b", &[30], 25),
            add("fc1.w", &[4320, 100], 4320),
            add("fc1.b", &[100], 4320),
            add("fc2.w", &[100, 10], 100),
            add("fc2.b", &[10], 100),
        ];
        MnistCnn { store, ids }
    }

    /// The logits `[N, 10]` of a batch `[N, 1, 28, 28]`.
    pub fn forward<'t>(&self, p: &tapegrad::nn::Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let [cw, cb, w1, b1, w2, b2] = self.ids;
        let h = x
            .conv2d_bias(p[cw], p[cb], Conv2d::new())
            .relu()
            .max_pool2d(2);
        let h = (h.flatten().matmul(p[w1]) + p[b1]).relu();
        h.matmul(p[w2]) + p[b2]
    }
}

/// One SGD step of [`MnistCnn`] on a fixed batch, reusing one tape.
fn train_step_case<T: Float>(rng: &mut StdRng) -> Case {
    let mut model = MnistCnn::<T>::new(0);
    let mut opt = Sgd::new(0.01);
    let x = Tensor::<T>::randn([50, 1, 28, 28], rng);
    let labels: Vec<usize> = (0..50).map(|i| (i * 7 + 3) % 10).collect();
    let mut tape = Tape::new();
    let flops = 3 * (conv_flops(50, 1, 28, 30, 5, 1, 0) + 2 * 50 * 4320 * 100 + 2 * 50 * 100 * 10);
    case("train step CNN b50".into(), Some(flops), move || {
        tape.clear();
        let p = model.store.bind(&tape);
        let loss = model
            .forward(&p, tape.input(x.clone()))
            .cross_entropy(&labels)
            .mean();
        let g = p.grads(&tape.backward(loss));
        tape.clear();
        opt.step(&mut model.store, &g);
    })
}

/// Every case whose id contains one of `only` (all when `only` is empty), in the table's order.
pub fn cases<T: Float>(only: &[String]) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut out = Vec::new();
    // Cases are built only when asked for, so a run of one case holds only its tensors.
    let want = |id: &str| only.is_empty() || only.iter().any(|k| id.contains(k.as_str()));
    for (name, n, cin, h, cout, k, s, p) in SHAPES {
        if !want(&format!("{name} conv fwd")) && !want(&format!("{name} conv fwd+bwd")) {
            continue;
        }
        let fl = conv_flops(n, cin, h, cout, k, s, p);
        let x = Tensor::<T>::randn([n, cin, h, h], &mut rng);
        let w = Tensor::<T>::randn([cout, cin, k, k], &mut rng).map(|v| v * T::from_f64(0.1));
        let b = Tensor::<T>::randn([cout], &mut rng);
        let o = out_hw(h, k, s, p);
        let gy = Tensor::<T>::randn([n, cout, o, o], &mut rng);
        let opts = Conv2d::new().stride(s).padding(p);
        let (xf, wf, bf) = (x.clone(), w.clone(), b.clone());
        let mut tape = Tape::inference();
        out.push(case(format!("{name} conv fwd"), Some(fl), move || {
            tape.clear();
            let y = tape.input(xf.clone()).conv2d_bias(
                tape.input(wf.clone()),
                tape.input(bf.clone()),
                opts,
            );
            black_box(y.value());
        }));
        let mut tape = Tape::new();
        out.push(case(
            format!("{name} conv fwd+bwd"),
            Some(3 * fl),
            move || {
                tape.clear();
                let (xv, wv, bv) = (
                    tape.param(x.clone()),
                    tape.param(w.clone()),
                    tape.param(b.clone()),
                );
                let y = xv.conv2d_bias(wv, bv, opts);
                black_box(tape.backward_with(y, gy.clone()));
            },
        ));
    }
    for (name, shape) in [("S2", [50, 30, 24, 24]), ("S5", [32, 64, 56, 56])] {
        let id = format!("maxpool {name}-out");
        if !want(&format!("{id} fwd")) && !want(&format!("{id} fwd+bwd")) {
            continue;
        }
        let x = Tensor::<T>::randn(shape, &mut rng);
        let gy = Tensor::<T>::randn([shape[0], shape[1], shape[2] / 2, shape[3] / 2], &mut rng);
        let xf = x.clone();
        let mut tape = Tape::inference();
        out.push(case(format!("maxpool {name}-out fwd"), None, move || {
            tape.clear();
            black_box(tape.input(xf.clone()).max_pool2d(2).value());
        }));
        let mut tape = Tape::new();
        out.push(case(
            format!("maxpool {name}-out fwd+bwd"),
            None,
            move || {
                tape.clear();
                let y = tape.param(x.clone()).max_pool2d(2);
                black_box(tape.backward_with(y, gy.clone()));
            },
        ));
    }
    if want("train step CNN b50") {
        out.push(train_step_case::<T>(&mut rng));
    }
    for n in [256usize, 1024, 2048] {
        if !want(&format!("matmul {n}^3")) {
            continue;
        }
        let a = Tensor::<T>::randn([n, n], &mut rng);
        let b = Tensor::<T>::randn([n, n], &mut rng);
        let mut tape = Tape::inference();
        let flops = 2 * (n as u64).pow(3);
        out.push(case(format!("matmul {n}^3"), Some(flops), move || {
            tape.clear();
            black_box(tape.input(a.clone()).matmul(tape.input(b.clone())).value());
        }));
    }
    let t10 = Tensor::<T>::randn([10], &mut rng);
    let t10g = t10.clone();
    let t10a = t10.clone();
    // No leaf requires a gradient: the op runs and records no VJP, like torch.relu on a plain tensor.
    let mut tape = Tape::new();
    out.push(case("overhead relu(10) no-grad".into(), None, move || {
        tape.clear();
        black_box(tape.input(t10.clone()).relu().id());
    }));
    let mut tape = Tape::new();
    out.push(case("overhead relu(10) autograd".into(), None, move || {
        tape.clear();
        black_box(tape.param(t10g.clone()).relu().id());
    }));
    // The same with anomaly mode on: the value is scanned for NaN and infinity.
    let mut tape = Tape::new();
    tape.detect_anomaly(true);
    out.push(case("overhead relu(10) anomaly".into(), None, move || {
        tape.clear();
        black_box(tape.param(t10a.clone()).relu().id());
    }));
    out.retain(|c| want(&c.id));
    out
}
