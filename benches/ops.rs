//! Criterion benches of every case of the shared benchmark table (`../shared/bench`): conv2d
//! S1-S5 forward and forward+backward, max_pool2d, the MNIST CNN training step, matmul, and
//! the cost of recording one small op. Run with `cargo bench --bench ops [-- FILTER]`;
//! `TAPEGRAD_THREADS` sets the thread count. For the side-by-side comparison with PyTorch,
//! see `examples/bench_ops.rs`.

#[path = "cases.rs"]
mod cases;

use criterion::{Criterion, criterion_group, criterion_main};

fn all(c: &mut Criterion) {
    let mut g = c.benchmark_group("ops");
    g.sample_size(10);
    for mut case in cases::cases(&[]) {
        g.bench_function(case.id.as_str(), |b| b.iter(&mut case.run));
    }
    g.finish();
}

criterion_group!(benches, all);
criterion_main!(benches);
