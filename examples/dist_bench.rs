//! The cost of averaging gradients across the ranks of an MPI job, alone: `Dist::
//! average_gradients` on the gradients (and batch-norm buffers) of the `mnist` classic CNN
//! and the `resnet` ResNet-8, after a barrier so that no rank waits for a slower one.
//!
//! ```sh
//! cargo build --release --features mpi --example dist_bench
//! mpirun -np 2 target/release/examples/dist_bench [--rounds 200]
//! ```
//!
//! Prints per model the bytes, the median time and its 10th and 90th percentiles, and the
//! bus bandwidth of a ring all-reduce, 2(N−1)/N × bytes / time.

#[path = "resnet.rs"]
#[allow(dead_code)]
mod resnet;

use rand::SeedableRng;
use std::time::Instant;
use tapegrad::dist::Dist;
use tapegrad::nn::{ParamGrads, ParamStore};
use tapegrad::prelude::*;

/// The classic CNN's parameters: conv 30@5x5, linear 4320→100, linear 100→10, with biases.
const CLASSIC: usize = 30 * 25 + 30 + 4320 * 100 + 100 + 100 * 10 + 10;

fn main() {
    let dist = Dist::init().unwrap_or_else(|e| panic!("{e}"));
    let mut args = std::env::args().skip(1);
    let mut rounds = 200;
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--rounds", Some(n)) => rounds = n,
            _ => dist.abort(format!("dist_bench: unknown flag {flag:?} (--rounds N)")),
        }
    }
    let mut store = ParamStore::<f32>::new();
    resnet::ResNet::new(
        &mut store,
        16,
        10,
        &mut rand::rngs::StdRng::seed_from_u64(0),
    );
    let trainable = store.trainable().map(|id| store[id].numel()).sum::<usize>();
    let buffers = store.num_elements() - trainable;
    for (name, elements) in [("classic CNN", CLASSIC), ("ResNet-8", trainable + buffers)] {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds + 10 {
            let mut grads = ParamGrads::from_tensors(vec![Tensor::<f32>::ones([elements])]);
            dist.barrier();
            let t = Instant::now();
            dist.average_gradients(&mut grads, 1)
                .unwrap_or_else(|e| dist.abort(e));
            times.push(t.elapsed().as_secs_f64());
        }
        times.drain(..10); // warm-up
        times.sort_by(f64::total_cmp);
        let at = |q: f64| 1e3 * times[((times.len() - 1) as f64 * q) as usize];
        let bytes = 4 * elements;
        let n = dist.size() as f64;
        let bus = 2.0 * (n - 1.0) / n * bytes as f64 / (at(0.5) / 1e3) / 1e9;
        if dist.is_root() {
            println!(
                "{name}: {elements} values ({:.2} MB) over {} ranks: median {:.3} ms (p10 {:.3}, \
                 p90 {:.3}), bus bandwidth {bus:.2} GB/s",
                bytes as f64 / 1e6,
                dist.size(),
                at(0.5),
                at(0.1),
                at(0.9)
            );
        }
    }
}
