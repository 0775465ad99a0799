//! Criterion benches of every case of the shared benchmark table (`../shared/bench`): conv2d
//! S1-S5 forward and forward+backward, max_pool2d, the MNIST CNN training step, matmul, and
//! the cost of recording one small op. Run with `cargo bench --bench ops [-- FILTER]`;
//! `TAPEGRAD_THREADS` sets the thread count; `TAPEGRAD_BENCH_NETS=1` adds the convolutions of
//! ResNet-18 and MobileNetV2 (the net cases of `common/cases.rs`). For the side-by-side
//! comparison with PyTorch, see `examples/bench_ops.rs`.

#[path = "common/cases.rs"]
mod cases;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn all(c: &mut Criterion) {
    let nets = std::env::var_os("TAPEGRAD_BENCH_NETS").is_some_and(|v| v == "1");
    for mut case in cases::cases::<f32>(&[], nets) {
        // One group per case: a group's throughput would otherwise carry over to the next.
        let mut g = c.benchmark_group(case.id.as_str());
        g.sample_size(10);
        // Criterion's "elements per second" then reads as FLOP/s.
        if let Some(f) = case.flops {
            g.throughput(Throughput::Elements(f));
        }
        g.bench_function("run", |b| b.iter(&mut case.run));
        g.finish();
    }
}

criterion_group!(benches, all);
criterion_main!(benches);
