//! The benchmark cases of `../shared/bench` (the same ids, shapes and FLOP counts as the
//! PyTorch side, `torch_conv.py`), each a closure that runs one call. Shared by the criterion
//! bench (`benches/ops.rs`) and the side-by-side runner (`examples/bench_ops.rs`), which
//! include this file by path.
//!
//! Beyond the shared table, the net cases (opt-in): the distinct convolutions of torchvision's
//! ResNet-18 and MobileNetV2 (width 1.0) at 224x224, each at batch 1 and 32, forward and
//! forward+backward (as the S cases: bias on, the gradients of input, weight and bias for a
//! given upstream gradient), padding k/2, and per network, batch and direction one
//! whole-network row whose one call runs every distinct layer as many times as the network
//! has it (its FLOPs are the sum). FLOPs of a forward: `2·N·Cout·Ho·Wo·(Cin/groups)·k·k`,
//! three times that forward+backward. The layers are [`RESNET18`] and [`MOBILENETV2`]
//! (label, Cin, H = W of the input, Cout, k, stride, groups, multiplicity); ids:
//!
//! | id | example |
//! |---|---|
//! | `R18 <label> b<N> <fwd or fwd+bwd>` | `R18 L3.conv3x3s2 b32 fwd` |
//! | `MV2 <label> b<N> <fwd or fwd+bwd>` | `MV2 dw3x3s2 c96 112 b1 fwd+bwd` |
//! | `resnet18 b<N> convs <fwd or fwd+bwd>` | `resnet18 b32 convs fwd+bwd` (20 convolutions) |
//! | `mobilenetv2 b<N> convs <fwd or fwd+bwd>` | `mobilenetv2 b1 convs fwd` (52 convolutions) |
//!
//! A run without `--only` leaves them out unless it has `--nets` (`TAPEGRAD_BENCH_NETS=1` for
//! the criterion bench). An `--only` key that names a network (`R18`, `MV2`, `resnet18`,
//! `mobilenetv2`) or is `nets` brings them in, filtered like every case by substring, `nets`
//! matching all of them: `--only R18` (ResNet-18's layers), `--only resnet18` (its
//! whole-network rows), `--only "MV2 dw3x3"`, `--only nets`; `--nets --only b1` (every
//! batch-1 net case). PyTorch's side, `scripts/bench/torch_conv.py`, has the same tables,
//! ids, FLOPs and flags.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::nn::{Init, Optimizer, ParamId, ParamStore, Sgd};
use tapegrad::ops::conv2d::ConvOptions;
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

/// A row of a convolution table: a name and seven sizes, which each table describes.
type ConvRow = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

/// The five convolution cases of the shared table: (name, N, Cin, H = W, Cout, k, stride,
/// pad), as in `torch_conv.py`.
pub const SHAPES: [ConvRow; 5] = [
    ("S1", 24, 1, 28, 1, 3, 1, 1),
    ("S2", 50, 1, 28, 30, 5, 1, 0),
    ("S3", 60, 1, 28, 32, 5, 1, 2),
    ("S4", 64, 32, 14, 64, 3, 1, 1),
    ("S5", 32, 64, 56, 64, 3, 1, 1),
];

/// One distinct convolution of a network: (label in the case ids, Cin, H = W of its input,
/// Cout, k, stride, groups, multiplicity = how many of the network's convolutions have this
/// geometry). Padding is k/2; bias on, as in every case.
type NetConv = ConvRow;

/// torchvision's ResNet-18 at 224x224: the stem, the 3x3 convolutions of the four stages
/// (the first of stages 2-4 with stride 2) and the 1x1 stride-2 downsampling shortcuts of
/// stages 2-4. 20 convolutions.
pub const RESNET18: [NetConv; 11] = [
    ("stem7x7s2", 3, 224, 64, 7, 2, 1, 1),
    ("L1.conv3x3", 64, 56, 64, 3, 1, 1, 4),
    ("L2.conv3x3s2", 64, 56, 128, 3, 2, 1, 1),
    ("L2.conv3x3", 128, 28, 128, 3, 1, 1, 3),
    ("L2.down1x1s2", 64, 56, 128, 1, 2, 1, 1),
    ("L3.conv3x3s2", 128, 28, 256, 3, 2, 1, 1),
    ("L3.conv3x3", 256, 14, 256, 3, 1, 1, 3),
    ("L3.down1x1s2", 128, 28, 256, 1, 2, 1, 1),
    ("L4.conv3x3s2", 256, 14, 512, 3, 2, 1, 1),
    ("L4.conv3x3", 512, 7, 512, 3, 1, 1, 3),
    ("L4.down1x1s2", 256, 14, 512, 1, 2, 1, 1),
];

/// torchvision's MobileNetV2 (width 1.0) at 224x224: the 3x3 stride-2 stem, the expand 1x1,
/// depthwise 3x3 and project 1x1 convolutions of the 17 inverted-residual blocks, and the
/// last 1x1. Labels: `exp1x1 Cin-Cout H`, `dw3x3[s2] cC H`, `proj1x1 Cin-Cout H`. 52
/// convolutions.
pub const MOBILENETV2: [NetConv; 30] = [
    ("stem3x3s2 3-32 224", 3, 224, 32, 3, 2, 1, 1),
    ("dw3x3 c32 112", 32, 112, 32, 3, 1, 32, 1),
    ("proj1x1 32-16 112", 32, 112, 16, 1, 1, 1, 1),
    ("exp1x1 16-96 112", 16, 112, 96, 1, 1, 1, 1),
    ("dw3x3s2 c96 112", 96, 112, 96, 3, 2, 96, 1),
    ("proj1x1 96-24 56", 96, 56, 24, 1, 1, 1, 1),
    ("exp1x1 24-144 56", 24, 56, 144, 1, 1, 1, 2),
    ("dw3x3 c144 56", 144, 56, 144, 3, 1, 144, 1),
    ("proj1x1 144-24 56", 144, 56, 24, 1, 1, 1, 1),
    ("dw3x3s2 c144 56", 144, 56, 144, 3, 2, 144, 1),
    ("proj1x1 144-32 28", 144, 28, 32, 1, 1, 1, 1),
    ("exp1x1 32-192 28", 32, 28, 192, 1, 1, 1, 3),
    ("dw3x3 c192 28", 192, 28, 192, 3, 1, 192, 2),
    ("proj1x1 192-32 28", 192, 28, 32, 1, 1, 1, 2),
    ("dw3x3s2 c192 28", 192, 28, 192, 3, 2, 192, 1),
    ("proj1x1 192-64 14", 192, 14, 64, 1, 1, 1, 1),
    ("exp1x1 64-384 14", 64, 14, 384, 1, 1, 1, 4),
    ("dw3x3 c384 14", 384, 14, 384, 3, 1, 384, 4),
    ("proj1x1 384-64 14", 384, 14, 64, 1, 1, 1, 3),
    ("proj1x1 384-96 14", 384, 14, 96, 1, 1, 1, 1),
    ("exp1x1 96-576 14", 96, 14, 576, 1, 1, 1, 3),
    ("dw3x3 c576 14", 576, 14, 576, 3, 1, 576, 2),
    ("proj1x1 576-96 14", 576, 14, 96, 1, 1, 1, 2),
    ("dw3x3s2 c576 14", 576, 14, 576, 3, 2, 576, 1),
    ("proj1x1 576-160 7", 576, 7, 160, 1, 1, 1, 1),
    ("exp1x1 160-960 7", 160, 7, 960, 1, 1, 1, 3),
    ("dw3x3 c960 7", 960, 7, 960, 3, 1, 960, 3),
    ("proj1x1 960-160 7", 960, 7, 160, 1, 1, 1, 2),
    ("proj1x1 960-320 7", 960, 7, 320, 1, 1, 1, 1),
    ("last1x1 320-1280 7", 320, 7, 1280, 1, 1, 1, 1),
];

/// The ResNet-8 of `examples/resnet.rs` at 28x28 (Fashion-MNIST): the stem, the 3x3
/// convolutions of its three one-block stages (the first of stages 2-3 with stride 2) and
/// the 1x1 stride-2 shortcuts. 9 convolutions of 16 to 64 channels.
pub const RESNET8: [NetConv; 8] = [
    ("stem3x3 1-16 28", 1, 28, 16, 3, 1, 1, 1),
    ("L1.conv3x3 c16 28", 16, 28, 16, 3, 1, 1, 2),
    ("L2.conv3x3s2 16-32 28", 16, 28, 32, 3, 2, 1, 1),
    ("L2.conv3x3 c32 14", 32, 14, 32, 3, 1, 1, 1),
    ("L2.down1x1s2 16-32 28", 16, 28, 32, 1, 2, 1, 1),
    ("L3.conv3x3s2 32-64 14", 32, 14, 64, 3, 2, 1, 1),
    ("L3.conv3x3 c64 7", 64, 7, 64, 3, 1, 1, 1),
    ("L3.down1x1s2 32-64 14", 32, 14, 64, 1, 2, 1, 1),
];

/// The networks of the net cases: (prefix of the layer ids, name in the whole-network ids,
/// distinct convolutions).
pub const NETS: [(&str, &str, &[NetConv]); 3] = [
    ("R18", "resnet18", &RESNET18),
    ("MV2", "mobilenetv2", &MOBILENETV2),
    ("R8", "resnet8", &RESNET8),
];

/// The batch sizes of the net cases.
pub const NET_BATCHES: [usize; 2] = [1, 32];

/// Whether an `--only` key asks for net cases: it names a network (`R18`, `MV2`, `R8`,
/// `resnet18`, `mobilenetv2`, `resnet8`) or is `nets`.
pub fn names_a_net(key: &str) -> bool {
    key == "nets"
        || NETS
            .iter()
            .any(|(prefix, net, _)| key.contains(prefix) || key.contains(net))
}

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

/// One convolution with bias over a square input and a square kernel (the weight is
/// `[cout, cin / groups, k, k]`).
#[derive(Clone, Copy)]
struct ConvSpec {
    n: usize,
    cin: usize,
    h: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
}

impl ConvSpec {
    /// FLOPs of one forward: `2·N·Cout·Ho·Wo·(Cin/groups)·k·k`.
    fn flops(&self) -> u64 {
        let c = *self;
        conv_flops(c.n, c.cin / c.groups, c.h, c.cout, c.k, c.stride, c.pad)
    }

    /// Random input, weight (scaled by 0.1), bias and upstream gradient, drawn in that
    /// order, and two calls on them: the forward, and the forward+backward (the output,
    /// then the gradients of input, weight and bias for the upstream gradient).
    fn calls<T: Float>(&self, rng: &mut StdRng) -> [Box<dyn FnMut()>; 2] {
        let c = *self;
        let x = Tensor::<T>::randn([c.n, c.cin, c.h, c.h], rng);
        let w = Tensor::<T>::randn([c.cout, c.cin / c.groups, c.k, c.k], rng)
            .map(|v| v * T::from_f64(0.1));
        let b = Tensor::<T>::randn([c.cout], rng);
        let o = out_hw(c.h, c.k, c.stride, c.pad);
        let gy = Tensor::<T>::randn([c.n, c.cout, o, o], rng);
        let opts = ConvOptions::new()
            .stride(c.stride)
            .padding(c.pad)
            .groups(c.groups);
        let (xf, wf, bf) = (x.clone(), w.clone(), b.clone());
        let mut tape = Tape::inference();
        let fwd = move || {
            tape.clear();
            let y = tape.input(xf.clone()).conv2d_bias(
                tape.input(wf.clone()),
                tape.input(bf.clone()),
                opts,
            );
            black_box(y.value());
        };
        let mut tape = Tape::new();
        let fwd_bwd = move || {
            tape.clear();
            let (xv, wv, bv) = (
                tape.param(x.clone()),
                tape.param(w.clone()),
                tape.param(b.clone()),
            );
            let y = xv.conv2d_bias(wv, bv, opts);
            black_box(tape.backward_with(y, gy.clone()));
        };
        [Box::new(fwd), Box::new(fwd_bwd)]
    }
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
            .conv2d_bias(p[cw], p[cb], ConvOptions::new())
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

/// Every case whose id contains one of `only` (all when `only` is empty), in the table's order,
/// then the net cases (see [`net_cases`]) when `nets` is set or a key of `only` names a
/// network ([`names_a_net`]): without either, a run takes only the cases it took before the
/// net cases existed.
pub fn cases<T: Float>(only: &[String], nets: bool) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut out = Vec::new();
    // Cases are built only when asked for, so a run of one case holds only its tensors.
    let want = |id: &str| only.is_empty() || only.iter().any(|k| id.contains(k.as_str()));
    for (name, n, cin, h, cout, k, s, p) in SHAPES {
        if !want(&format!("{name} conv fwd")) && !want(&format!("{name} conv fwd+bwd")) {
            continue;
        }
        let conv = ConvSpec {
            n,
            cin,
            h,
            cout,
            k,
            stride: s,
            pad: p,
            groups: 1,
        };
        let fl = conv.flops();
        let [fwd, fwd_bwd] = conv.calls::<T>(&mut rng);
        out.push(Case {
            id: format!("{name} conv fwd"),
            flops: Some(fl),
            run: fwd,
        });
        out.push(Case {
            id: format!("{name} conv fwd+bwd"),
            flops: Some(3 * fl),
            run: fwd_bwd,
        });
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
    out.extend(layer_cases::<T>(&want));
    out.retain(|c| want(&c.id));
    if nets || only.iter().any(|k| names_a_net(k)) {
        out.extend(net_cases::<T>(only));
    }
    out
}

/// Batch norm (training, with weight and bias) and transposed convolutions (bias on),
/// forward and forward+backward, each built only when `want` asks for it: the layers of a
/// small residual network and of convolutional decoders. Their own seed, so that adding
/// them changed no other case's data.
fn layer_cases<T: Float>(want: &dyn Fn(&str) -> bool) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Vec::new();
    for shape in [[128, 16, 28, 28], [32, 64, 56, 56]] {
        let name = format!("batchnorm {}", dims(&shape));
        if !want(&format!("{name} fwd")) && !want(&format!("{name} fwd+bwd")) {
            continue;
        }
        let x = Tensor::<T>::randn(shape, &mut rng);
        let w = Tensor::<T>::randn([shape[1]], &mut rng);
        let b = Tensor::<T>::randn([shape[1]], &mut rng);
        let gy = Tensor::<T>::randn(shape, &mut rng);
        let opts = BatchNormOptions::new();
        let (xf, wf, bf) = (x.clone(), w.clone(), b.clone());
        let mut tape = Tape::inference();
        out.push(case(format!("{name} fwd"), None, move || {
            tape.clear();
            let (w, b) = (tape.input(wf.clone()), tape.input(bf.clone()));
            let y = tape
                .input(xf.clone())
                .batch_norm(Some(w), Some(b), None, opts);
            black_box(y.value());
        }));
        let mut tape = Tape::new();
        out.push(case(format!("{name} fwd+bwd"), None, move || {
            tape.clear();
            let (xv, wv, bv) = (
                tape.param(x.clone()),
                tape.param(w.clone()),
                tape.param(b.clone()),
            );
            let y = xv.batch_norm(Some(wv), Some(bv), None, opts);
            black_box(tape.backward_with(y, gy.clone()));
        }));
    }
    // (input [N, C, H, W], output channels, kernel): stride 2, padding (k - 1) / 2, output
    // padding 1 for odd kernels: each doubles H and W.
    for (shape, o, k) in [([128, 32, 7, 7], 16, 3), ([32, 64, 16, 16], 32, 4)] {
        let name = format!("convT {}->{o} k{k}s2", dims(&shape));
        if !want(&format!("{name} fwd")) && !want(&format!("{name} fwd+bwd")) {
            continue;
        }
        let (pad, op) = ((k - 1) / 2, k % 2);
        let opts = ConvTransposeOptions::new()
            .stride(2)
            .padding(pad)
            .output_padding(op);
        let x = Tensor::<T>::randn(shape, &mut rng);
        let w = Tensor::<T>::randn([shape[1], o, k, k], &mut rng).map(|v| v * T::from_f64(0.1));
        let b = Tensor::<T>::randn([o], &mut rng);
        let gy = Tensor::<T>::randn([shape[0], o, 2 * shape[2], 2 * shape[3]], &mut rng);
        // Every input value meets every output channel through k·k taps.
        let flops = 2 * (shape.iter().product::<usize>() * o * k * k) as u64;
        let (xf, wf, bf) = (x.clone(), w.clone(), b.clone());
        let mut tape = Tape::inference();
        out.push(case(format!("{name} fwd"), Some(flops), move || {
            tape.clear();
            let (w, b) = (tape.input(wf.clone()), tape.input(bf.clone()));
            black_box(
                tape.input(xf.clone())
                    .conv_transpose2d_bias(w, b, opts)
                    .value(),
            );
        }));
        let mut tape = Tape::new();
        out.push(case(
            format!("{name} fwd+bwd"),
            Some(3 * flops),
            move || {
                tape.clear();
                let (xv, wv, bv) = (
                    tape.param(x.clone()),
                    tape.param(w.clone()),
                    tape.param(b.clone()),
                );
                let y = xv.conv_transpose2d_bias(wv, bv, opts);
                black_box(tape.backward_with(y, gy.clone()));
            },
        ));
    }
    out
}

/// `128x16x28x28`.
fn dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

/// A call shared by a layer's own case and its network's whole-network case.
type Shared = Rc<RefCell<Box<dyn FnMut()>>>;

/// The net cases, in [`NETS`] order, each batch of [`NET_BATCHES`] in turn: every distinct
/// layer forward and forward+backward (`R18 L3.conv3x3s2 b32 fwd`), then the whole-network
/// rows (`resnet18 b32 convs fwd`), whose one call runs each layer's call as many times as
/// the network has that layer. Only the cases matched by `only` (all when it is empty; `nets`
/// matches every one), and only the layers they need, are built.
fn net_cases<T: Float>(only: &[String]) -> Vec<Case> {
    // Their own seed: the other cases draw the same data with or without them.
    let mut rng = StdRng::seed_from_u64(1);
    let want =
        |id: &str| only.is_empty() || only.iter().any(|k| k == "nets" || id.contains(k.as_str()));
    let dirs = ["fwd", "fwd+bwd"];
    let mut out = Vec::new();
    for (prefix, net, layers) in NETS {
        for n in NET_BATCHES {
            let net_ids = dirs.map(|d| format!("{net} b{n} convs {d}"));
            let whole = net_ids.each_ref().map(|id| want(id));
            // Per direction: (call, multiplicity) of every layer, and the summed FLOPs.
            let mut parts: [Vec<(Shared, usize)>; 2] = [Vec::new(), Vec::new()];
            let mut net_flops = [0u64; 2];
            for &(label, cin, h, cout, k, stride, groups, mult) in layers {
                let ids = dirs.map(|d| format!("{prefix} {label} b{n} {d}"));
                let own = ids.each_ref().map(|id| want(id));
                if !own.iter().chain(&whole).any(|&w| w) {
                    continue;
                }
                let conv = ConvSpec {
                    n,
                    cin,
                    h,
                    cout,
                    k,
                    stride,
                    pad: k / 2,
                    groups,
                };
                let calls = conv.calls::<T>(&mut rng);
                for (d, (call, id)) in calls.into_iter().zip(ids).enumerate() {
                    let flops = conv.flops() * if d == 0 { 1 } else { 3 };
                    let call: Shared = Rc::new(RefCell::new(call));
                    net_flops[d] += mult as u64 * flops;
                    parts[d].push((call.clone(), mult));
                    if own[d] {
                        out.push(case(id, Some(flops), move || (call.borrow_mut())()));
                    }
                }
            }
            for (d, (id, list)) in net_ids.into_iter().zip(parts).enumerate() {
                if whole[d] {
                    out.push(case(id, Some(net_flops[d]), move || {
                        for (call, mult) in &list {
                            let mut call = call.borrow_mut();
                            for _ in 0..*mult {
                                call();
                            }
                        }
                    }));
                }
            }
        }
    }
    out
}
