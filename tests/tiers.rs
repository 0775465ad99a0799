//! Every instruction-set tier the CPU runs, forced in turn through `runtime::set_isa`,
//! against f64: convolutions on their three algorithms (Winograd, unfolding, depthwise
//! direct) forward and backward, max pooling, tanh and a matrix product of odd sizes.
//! Pooling, tanh and the depthwise convolution are compares and the same arithmetic in
//! wider lanes, so every tier gives the same bits;
//! products may differ in the last bits (the wider tiers fuse multiply-adds).
//!
//! Its own test binary, one test: the tier is process-wide, and other tests running beside
//! it would change tier under its feet (and a test that compares the bits of two runs would
//! see two tiers).

use rand::SeedableRng;
use rand::rngs::StdRng;
use tapegrad::prelude::*;
use tapegrad::runtime::{Isa, set_isa, widest_supported};

/// The values and input gradients of a small network through each op family, in T.
fn run<T: Float>(
    x: &Tensor<f64>,
    w3: &Tensor<f64>,
    w5: &Tensor<f64>,
    wd: &Tensor<f64>,
    m: &Tensor<f64>,
) -> Vec<Vec<f64>> {
    let cast = |t: &Tensor<f64>| {
        Tensor::<T>::from_vec(
            t.to_vec().iter().map(|&v| T::from_f64(v)).collect(),
            t.shape().to_vec(),
        )
    };
    let tape = Tape::<T>::new();
    let (xv, w3v, w5v, wdv, mv) = (
        tape.param(cast(x)),
        tape.param(cast(w3)),
        tape.param(cast(w5)),
        tape.param(cast(wd)),
        tape.param(cast(m)),
    );
    // 3×3 stride 1 with 16 channels: Winograd; 5×5 stride 2: unfolding.
    let a = xv.conv2d(w3v, ConvOptions::new().padding(1)).tanh();
    let b = xv
        .conv2d(w5v, ConvOptions::new().stride(2).padding(2))
        .max_pool2d(2);
    let c = a.max_pool2d(2).flatten().matmul(mv);
    // Depthwise, two filters per channel, stride 2: the direct kernel.
    let d = xv.conv2d(wdv, ConvOptions::new().stride(2).padding(1).groups(16));
    let loss = a.square().mean() + b.square().mean() + c.square().mean() + d.square().mean();
    let g = tape.backward(loss);
    let f = |t: &Tensor<T>| t.to_vec().iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    vec![
        f(&a.value()),
        f(&b.value()),
        f(&c.value()),
        f(&d.value()),
        f(&g[xv]),
        f(&g[w3v]),
        f(&g[w5v]),
        f(&g[wdv]),
        f(&g[mv]),
    ]
}

#[test]
fn every_tier_the_cpu_runs_agrees_with_f64() {
    let mut rng = StdRng::seed_from_u64(7);
    let x = Tensor::<f64>::randn([3, 16, 13, 11], &mut rng);
    let w3 = Tensor::<f64>::randn([17, 16, 3, 3], &mut rng) * 0.1;
    let w5 = Tensor::<f64>::randn([9, 16, 5, 5], &mut rng) * 0.1;
    let wd = Tensor::<f64>::randn([32, 1, 3, 3], &mut rng) * 0.3;
    let m = Tensor::<f64>::randn([17 * 6 * 5, 33], &mut rng) * 0.1;
    let want = run::<f64>(&x, &w3, &w5, &wd, &m);
    let names = [
        "conv3x3 tanh",
        "conv5x5 pool",
        "matmul",
        "depthwise",
        "dx",
        "dw3",
        "dw5",
        "dwd",
        "dm",
    ];
    let mut ran = Vec::new();
    let mut bits: Vec<(Isa, Vec<u32>)> = Vec::new();
    for tier in Isa::ALL {
        if !tier.supported() {
            continue;
        }
        assert_eq!(set_isa(Some(tier)), tier);
        let got = run::<f32>(&x, &w3, &w5, &wd, &m);
        for ((g, w), name) in got.iter().zip(&want).zip(names) {
            let scale = w.iter().fold(0.0f64, |s, v| s.max(v.abs())).max(1e-30);
            let worst = g
                .iter()
                .zip(w)
                .fold(0.0f64, |e, (a, b)| e.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{tier}: {name} is {worst:e} off (scale {scale:e})"
            );
        }
        // Max pooling, tanh and the depthwise convolution of the same input are compares and
        // elementwise arithmetic in a fixed order: every tier must give the generic tier's
        // bits.
        let tape = Tape::<f32>::new();
        let f32s = |t: &Tensor<f64>| t.cast::<f32>();
        let p = tape.input(f32s(&x));
        let dw = p.conv2d(
            tape.input(f32s(&wd)),
            ConvOptions::new().stride(2).padding(1).groups(16),
        );
        let pooled = (p.max_pool2d(2).tanh().value().to_vec().into_iter())
            .chain(dw.value().to_vec())
            .map(|v| v.to_bits())
            .collect();
        bits.push((tier, pooled));
        ran.push(tier.name());
    }
    set_isa(None);
    for (tier, b) in &bits[1..] {
        assert!(
            *b == bits[0].1,
            "{tier}: max-pool, tanh or depthwise differ from the generic tier's bits"
        );
    }
    let missing: Vec<&str> = Isa::ALL
        .iter()
        .filter(|t| !t.supported())
        .map(|t| t.name())
        .collect();
    println!("tiers tested: {ran:?}; not runnable on this CPU: {missing:?}");
    assert_eq!(ran.len(), Isa::ALL.iter().filter(|t| t.supported()).count());
    assert!(widest_supported().supported());
}
