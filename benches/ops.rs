//! Criterion benches of the kernels users compare first: conv2d forward and forward+backward
//! on the cases of the shared benchmark table, max_pool2d, matmul, and the cost of recording
//! one small op. Run with `cargo bench --bench ops`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use std::hint::black_box;
use tapegrad::ops::conv2d::Conv2d;
use tapegrad::prelude::*;

/// (id, N, Cin, H = W, Cout, k, pad)
const CASES: [(&str, usize, usize, usize, usize, usize, usize); 5] = [
    ("S1", 24, 1, 28, 1, 3, 1),
    ("S2", 50, 1, 28, 30, 5, 0),
    ("S3", 60, 1, 28, 32, 5, 2),
    ("S4", 64, 32, 14, 64, 3, 1),
    ("S5", 32, 64, 56, 64, 3, 1),
];

fn conv(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut g = c.benchmark_group("conv2d");
    g.sample_size(10);
    for (id, n, cin, hw, cout, k, pad) in CASES {
        let x = Tensor::<f32>::randn([n, cin, hw, hw], &mut rng);
        let w = Tensor::<f32>::randn([cout, cin, k, k], &mut rng) * 0.1;
        let b = Tensor::<f32>::randn([cout], &mut rng);
        let opts = Conv2d::new().padding(pad);
        g.bench_function(BenchmarkId::new("fwd", id), |bench| {
            bench.iter(|| {
                let tape = Tape::inference();
                let y = tape.input(x.clone()).conv2d_bias(
                    tape.param(w.clone()),
                    tape.param(b.clone()),
                    opts,
                );
                black_box(y.value());
            })
        });
        g.bench_function(BenchmarkId::new("fwd+bwd", id), |bench| {
            bench.iter(|| {
                let tape = Tape::new();
                let xv = tape.param(x.clone());
                let (wv, bv) = (tape.param(w.clone()), tape.param(b.clone()));
                let y = xv.conv2d_bias(wv, bv, opts);
                let seed = Tensor::ones(y.shape());
                black_box(tape.backward_with(y, seed));
            })
        });
    }
    g.finish();
}

fn pool(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut g = c.benchmark_group("max_pool2d");
    g.sample_size(10);
    for (id, shape) in [("S2-out", [50, 30, 24, 24]), ("S5-out", [32, 64, 56, 56])] {
        let x = Tensor::<f32>::randn(shape, &mut rng);
        g.bench_function(BenchmarkId::new("fwd", id), |bench| {
            bench.iter(|| {
                let tape = Tape::inference();
                black_box(tape.input(x.clone()).max_pool2d(2).value());
            })
        });
        g.bench_function(BenchmarkId::new("fwd+bwd", id), |bench| {
            bench.iter(|| {
                let tape = Tape::new();
                let xv = tape.param(x.clone());
                let y = xv.max_pool2d(2);
                black_box(tape.backward_with(y, Tensor::ones(y.shape())));
            })
        });
    }
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10);
    for n in [256usize, 512] {
        let a = Tensor::<f32>::randn([n, n], &mut rng);
        let b = Tensor::<f32>::randn([n, n], &mut rng);
        g.bench_function(BenchmarkId::from_parameter(n), |bench| {
            bench.iter(|| {
                let tape = Tape::inference();
                black_box(tape.input(a.clone()).matmul(tape.input(b.clone())).value());
            })
        });
    }
    g.finish();
}

fn overhead(c: &mut Criterion) {
    let x = Tensor::<f32>::arange(10);
    let mut tape = Tape::new();
    c.bench_function("overhead relu(10) autograd", |bench| {
        bench.iter(|| {
            tape.clear();
            let v = tape.param(x.clone());
            black_box(v.relu().id());
        })
    });
}

criterion_group!(benches, conv, pool, matmul, overhead);
criterion_main!(benches);
