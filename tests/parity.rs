//! Forward values and gradients of every op against PyTorch, from the fixtures that
//! `scripts/make_fixtures.py` writes (format documented there). Each case runs in f64 and in
//! f32 (inputs rounded to f32, compared with PyTorch's f64 results).
//!
//! Tolerances, per element: f64 `|ours − torch| ≤ 1e-10 + 1e-9·|torch|`;
//! f32 `|ours − torch| ≤ 2e-5 + 2e-4·|torch|` (a few ulps of f32 after sums of up to 125
//! products, and the rounding of the inputs themselves).
//!
//! `cfg` layouts: powf `[10·p]`; conv2d `[sh, sw, ph, pw, dh, dw, groups, has_bias]`;
//! pools `[kh, kw, sh, sw, ph, pw, dh, dw, ceil, count_include_pad]`; reductions
//! `[keepdim, axes...]` (no axes: all); permute the permutation; broadcast_to the target
//! shape; concat `[axis]`; narrow `[axis, start, len]`; softmax and log_softmax `[axis]`;
//! the newer ops' layouts are documented beside their cases in the script.

use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use tapegrad::ops::conv2d::ConvOptions;
use tapegrad::ops::max_pool2d::PoolOptions;
use tapegrad::prelude::*;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/parity.safetensors"
);

struct Case {
    op: String,
    name: String,
    inputs: Vec<Tensor<f64>>,
    cfg: Vec<i64>,
    target: Option<Tensor<f64>>,
    target_idx: Vec<usize>,
    out: Tensor<f64>,
    gout: Tensor<f64>,
    grads: Vec<Tensor<f64>>,
}

fn f64_tensor(st: &SafeTensors, name: &str) -> Tensor<f64> {
    let v = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(v.dtype(), Dtype::F64, "{name}");
    let data = v
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_vec(data, v.shape())
}

fn i64s(st: &SafeTensors, name: &str) -> Vec<i64> {
    let v = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(v.dtype(), Dtype::I64, "{name}");
    v.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn load() -> Vec<Case> {
    let bytes = std::fs::read(FIXTURES).expect("tests/fixtures/parity.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("a valid safetensors file");
    let mut names: BTreeMap<String, ()> = BTreeMap::new();
    for n in st.names() {
        let mut parts = n.splitn(3, '/');
        let (op, k) = (parts.next().unwrap(), parts.next().unwrap());
        names.insert(format!("{op}/{k}"), ());
    }
    names
        .keys()
        .map(|p| {
            let count = |prefix: &str| {
                (0..)
                    .take_while(|i| st.tensor(&format!("{p}/{prefix}{i}")).is_ok())
                    .count()
            };
            let has = |n: &str| st.tensor(&format!("{p}/{n}")).is_ok();
            Case {
                op: p.split('/').next().unwrap().to_string(),
                name: p.clone(),
                inputs: (0..count("in"))
                    .map(|i| f64_tensor(&st, &format!("{p}/in{i}")))
                    .collect(),
                cfg: i64s(&st, &format!("{p}/cfg")),
                target: has("target").then(|| f64_tensor(&st, &format!("{p}/target"))),
                target_idx: if has("target_idx") {
                    i64s(&st, &format!("{p}/target_idx"))
                        .into_iter()
                        .map(|v| v as usize)
                        .collect()
                } else {
                    vec![]
                },
                out: f64_tensor(&st, &format!("{p}/out")),
                gout: f64_tensor(&st, &format!("{p}/gout")),
                grads: (0..count("grad"))
                    .map(|i| f64_tensor(&st, &format!("{p}/grad{i}")))
                    .collect(),
            }
        })
        .collect()
}

fn us(v: &[i64]) -> Vec<usize> {
    v.iter().map(|&x| x as usize).collect()
}

/// Runs one case in precision `T`: the output and the gradients of every input.
fn run<T: Float>(c: &Case) -> (Tensor<T>, Vec<Tensor<T>>) {
    let tape = Tape::<T>::new();
    let v: Vec<Var<'_, T>> = c.inputs.iter().map(|x| tape.param(x.cast())).collect();
    let cfg = &c.cfg;
    let target = || c.target.as_ref().unwrap().cast::<T>();
    let reduce_axes = |rank: usize| {
        let axes = us(&cfg[1..]);
        let axes = if axes.is_empty() {
            (0..rank).collect()
        } else {
            axes
        };
        (axes, cfg[0] == 1)
    };
    let y = match c.op.as_str() {
        "add" => v[0] + v[1],
        "sub" => v[0] - v[1],
        "mul" => v[0] * v[1],
        "div" => v[0] / v[1],
        "maximum" => v[0].maximum(v[1]),
        "minimum" => v[0].minimum(v[1]),
        "neg" => -v[0],
        "relu" => v[0].relu(),
        "sigmoid" => v[0].sigmoid(),
        "tanh" => v[0].tanh(),
        "exp" => v[0].exp(),
        "log" => v[0].log(),
        "log1p" => v[0].log1p(),
        "sqrt" => v[0].sqrt(),
        "abs" => v[0].abs(),
        "square" => v[0].square(),
        "powf" => v[0].powf(T::from_f64(cfg[0] as f64 / 10.0)),
        "leaky_relu" => v[0].leaky_relu(T::from_f64(cfg[0] as f64 / 100.0)),
        "elu" => v[0].elu(T::from_f64(cfg[0] as f64 / 100.0)),
        "gelu" => v[0].gelu(),
        "gelu_tanh" => v[0].gelu_tanh(),
        "silu" => v[0].silu(),
        "hardswish" => v[0].hardswish(),
        "pad" => {
            let mode = match cfg[0] {
                0 => PadMode::Constant(cfg[1] as f64 / 100.0),
                1 => PadMode::Reflect,
                _ => PadMode::Replicate,
            };
            let pairs: Vec<(usize, usize)> = cfg[2..]
                .chunks(2)
                .map(|p| (p[0] as usize, p[1] as usize))
                .collect();
            v[0].pad(&pairs, mode)
        }
        "interpolate" => {
            let mode = [Interpolation::Nearest, Interpolation::Bilinear][cfg[0] as usize];
            v[0].interpolate((cfg[1] as usize, cfg[2] as usize), mode)
        }
        "conv_transpose2d" => {
            let opts = ConvTransposeOptions::new()
                .stride((cfg[0] as usize, cfg[1] as usize))
                .padding((cfg[2] as usize, cfg[3] as usize))
                .output_padding((cfg[4] as usize, cfg[5] as usize))
                .dilation((cfg[6] as usize, cfg[7] as usize))
                .groups(cfg[8] as usize);
            match cfg[9] {
                1 => v[0].conv_transpose2d_bias(v[1], v[2], opts),
                _ => v[0].conv_transpose2d(v[1], opts),
            }
        }
        "batch_norm" => {
            let c = v[0].shape()[1];
            let t = target();
            let mut rm = Tensor::from_vec(t.data()[..c].to_vec(), [c]);
            let mut rv = Tensor::from_vec(t.data()[c..].to_vec(), [c]);
            let opts = BatchNormOptions::new()
                .training(cfg[0] == 1)
                .momentum(cfg[2] as f64 / 100.0);
            let running = Some(RunningStats {
                mean: &mut rm,
                var: &mut rv,
            });
            let (w, b) = (v.get(1).copied(), v.get(2).copied());
            let y = v[0].batch_norm(w, b, running, opts);
            let flat = y.reshape([y.shape().numel()]);
            Var::concat(&[flat, tape.input(rm), tape.input(rv)], 0)
        }
        "layer_norm" => {
            let s = v[0].shape();
            let ns = &s[s.len() - cfg[0] as usize..];
            v[0].layer_norm(ns, v.get(1).copied(), v.get(2).copied(), 1e-5)
        }
        "group_norm" => {
            v[0].group_norm(cfg[0] as usize, v.get(1).copied(), v.get(2).copied(), 1e-5)
        }
        "adaptive_avg_pool2d" => v[0].adaptive_avg_pool2d((cfg[0] as usize, cfg[1] as usize)),
        "matmul" => v[0].matmul(v[1]),
        "conv2d" => {
            let o = ConvOptions::new()
                .stride((cfg[0] as usize, cfg[1] as usize))
                .padding((cfg[2] as usize, cfg[3] as usize))
                .dilation((cfg[4] as usize, cfg[5] as usize))
                .groups(cfg[6] as usize);
            if cfg[7] == 1 {
                v[0].conv2d_bias(v[1], v[2], o)
            } else {
                v[0].conv2d(v[1], o)
            }
        }
        "max_pool2d" | "avg_pool2d" => {
            let o = PoolOptions::new((cfg[0] as usize, cfg[1] as usize))
                .stride((cfg[2] as usize, cfg[3] as usize))
                .padding((cfg[4] as usize, cfg[5] as usize))
                .ceil_mode(cfg[8] == 1);
            if c.op == "max_pool2d" {
                v[0].max_pool2d(o.dilation((cfg[6] as usize, cfg[7] as usize)))
            } else {
                v[0].avg_pool2d(o.count_include_pad(cfg[9] == 1))
            }
        }
        "sum" => {
            let (axes, keep) = reduce_axes(v[0].shape().rank());
            v[0].sum_axes(&axes, keep)
        }
        "mean" => {
            let (axes, keep) = reduce_axes(v[0].shape().rank());
            v[0].mean_axes(&axes, keep)
        }
        "max" => {
            let (axes, keep) = reduce_axes(v[0].shape().rank());
            v[0].max_axes(&axes, keep)
        }
        "permute" => v[0].permute(&us(cfg)),
        "broadcast_to" => v[0].broadcast_to(us(cfg)),
        "concat" => Var::concat(&v, cfg[0] as usize),
        "narrow" => v[0].narrow(cfg[0] as usize, cfg[1] as usize, cfg[2] as usize),
        "softmax" => v[0].softmax(cfg[0] as usize),
        "log_softmax" => v[0].log_softmax(cfg[0] as usize),
        "cross_entropy" => v[0].cross_entropy(&c.target_idx),
        "cross_entropy_smoothed" => {
            v[0].cross_entropy_smoothed(&c.target_idx, cfg[0] as f64 / 100.0)
        }
        "bce" => v[0].bce(&target()),
        "bce_with_logits" => v[0].bce_with_logits(&target()),
        "mse_loss" => v[0].mse_loss(&target()),
        other => panic!("no runner for op {other} ({})", c.name),
    };
    let out = y.value();
    let g = tape.backward_with(y, c.gout.cast());
    let grads = v.iter().map(|&x| g[x].clone()).collect();
    (out, grads)
}

/// The largest absolute and relative errors, and whether every element is within
/// `atol + rtol·|reference|`.
fn compare<T: Float>(
    ours: &Tensor<T>,
    theirs: &Tensor<f64>,
    atol: f64,
    rtol: f64,
) -> (f64, f64, bool) {
    assert_eq!(ours.shape(), theirs.shape(), "shapes differ");
    let mut worst = (0.0f64, 0.0f64, true);
    for (a, b) in ours.data().iter().zip(theirs.data()) {
        let e = (a.to_f64() - b).abs();
        worst.0 = worst.0.max(e);
        worst.1 = worst.1.max(e / b.abs().max(1e-300));
        worst.2 &= e <= atol + rtol * b.abs();
    }
    worst
}

fn check_all<T: Float>(atol: f64, rtol: f64) {
    let cases = load();
    assert!(
        cases.len() > 100,
        "fixture file holds {} cases",
        cases.len()
    );
    let mut per_op: BTreeMap<String, (usize, f64, f64)> = BTreeMap::new();
    let mut failures = vec![];
    for c in &cases {
        let (out, grads) = run::<T>(c);
        assert_eq!(grads.len(), c.grads.len(), "{}", c.name);
        let mut results = vec![("out".to_string(), compare(&out, &c.out, atol, rtol))];
        for (i, (g, r)) in grads.iter().zip(&c.grads).enumerate() {
            results.push((format!("grad{i}"), compare(g, r, atol, rtol)));
        }
        let e = per_op.entry(c.op.clone()).or_default();
        e.0 += 1;
        for (what, (abs, rel, ok)) in results {
            e.1 = e.1.max(abs);
            e.2 = e.2.max(rel);
            if !ok {
                failures.push(format!("{} {what}: max |error| {abs:.3e}", c.name));
            }
        }
    }
    println!(
        "{:<16} {:>5} {:>12} {:>12}   ({})",
        "op",
        "cases",
        "max |err|",
        "max rel err",
        T::NAME
    );
    for (op, (n, abs, rel)) in &per_op {
        println!("{op:<16} {n:>5} {abs:>12.3e} {rel:>12.3e}");
    }
    assert!(
        failures.is_empty(),
        "{} outside tolerance:\n{}",
        T::NAME,
        failures.join("\n")
    );
}

#[test]
fn parity_with_pytorch_f64() {
    check_all::<f64>(1e-10, 1e-9);
}

#[test]
fn parity_with_pytorch_f32() {
    check_all::<f32>(2e-5, 2e-4);
}
