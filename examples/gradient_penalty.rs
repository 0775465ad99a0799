//! A Wasserstein GAN with gradient penalty (WGAN-GP, Gulrajani et al. 2017) on
//! Fashion-MNIST: the critic's loss holds the norm of its own input gradient, so every
//! critic step differentiates through a backward pass (conv2d, relu, max_pool2d, matmul).
//!
//! ```sh
//! cargo run --release --features data --example gradient_penalty
//! ```
//!
//! Critic: conv 16@5x5 pad 2, relu, max-pool 2, conv 32@5x5 pad 2, relu, max-pool 2, linear
//! 1568 → 1. Generator: an MLP, noise 32 → 256 (relu) → 784 (tanh), as a 28x28 image.
//! Images are scaled to [−1, 1]. Each critic step takes a batch of real images `x`, a batch
//! of generated ones `x̃`, and points `x̂ = εx + (1 − ε)x̃` between them (`ε ~ U(0, 1)` per
//! image), and minimises `mean D(x̃) − mean D(x) + λ mean (‖∇D(x̂)‖₂ − 1)²`, `λ = 10`, the
//! gradient taken with `Tape::grad` on the step's own tape. The generator minimises
//! `−mean D(G(z))` once every 5 critic steps. Adam, lr 1e-4, betas (0.5, 0.9), batch 64,
//! f32, seeded. `scripts/torch_recipes.py --recipe wgan-gp` is the same step in PyTorch.
//!
//! Prints a line every 50 generator steps and, last, `result: generator_steps=..
//! critic_steps=.. w_distance=.. grad_norm=.. ms_per_critic_step=..
//! ms_per_generator_step=.. seconds=..`: the critic's estimate of the Wasserstein distance
//! `mean D(x) − mean D(x̃)` and the mean gradient norm at `x̂`, both averaged over the last 50
//! critic steps, and the time per step. Flags (`--help`): `--data DIR --steps N --limit N
//! --batch N --seed S`.

#[path = "common/args.rs"]
mod args;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use std::error::Error;
use std::time::Instant;
use tapegrad::data::load_mnist_dir;
use tapegrad::nn::{Adam, Bound, Init, Optimizer, ParamId, ParamStore};
use tapegrad::ops::conv2d::ConvOptions;
use tapegrad::prelude::*;

/// The penalty's weight.
const LAMBDA: f32 = 10.0;
/// Critic steps per generator step.
const N_CRITIC: usize = 5;
/// The generator's noise.
const NOISE: usize = 32;

/// What to run; `Default` is the recipe above.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder of the IDX files.
    pub data: String,
    /// Generator steps (each after 5 critic steps).
    pub steps: usize,
    /// Training images used (the first ones).
    pub limit: usize,
    /// Images per batch.
    pub batch: usize,
    /// Seeds the weights, the noise and the batch order.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data: "/usr/share/datasets/fashion-mnist".into(),
            steps: 300,
            limit: 60_000,
            batch: 64,
            seed: 0,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// `mean D(x) − mean D(x̃)`, averaged over the first 50 critic steps.
    pub first_w_distance: f64,
    /// The same over the last 50 critic steps.
    pub w_distance: f64,
    /// The mean `‖∇D(x̂)‖₂` over the last 50 critic steps.
    pub grad_norm: f64,
    /// Critic steps taken.
    pub critic_steps: usize,
    /// Milliseconds per critic step (the double backward included).
    pub ms_per_critic_step: f64,
    /// Milliseconds per generator step.
    pub ms_per_generator_step: f64,
    /// Wall time of training.
    pub seconds: f64,
}

const USAGE: &str = "\
usage: cargo run --release --features data --example gradient_penalty -- [flags]
  --data DIR   folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
  --steps N    generator steps, each after 5 critic steps (default 300)
  --limit N    training images used (default 60000)
  --batch N    images per batch (default 64)
  --seed S     seed of the weights, noise and batch order (default 0)
";

/// The flags of the command line; prints usage and exits on `--help`, or on a bad flag
/// with a message naming it.
fn parse_args() -> Options {
    args::parse_or_exit("gradient_penalty", USAGE, parse)
}

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--data" => o.data = next.value()?,
            "--steps" => o.steps = next.value()?,
            "--limit" => o.limit = next.value()?,
            "--batch" => o.batch = next.value()?,
            "--seed" => o.seed = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if o.batch == 0 || o.limit < o.batch {
        return Err(format!(
            "--batch must be at least 1 and at most --limit ({} and {})",
            o.batch, o.limit
        ));
    }
    Ok(o)
}

/// The critic: two conv-relu-pool stages and a linear score.
pub struct Critic {
    conv1: (ParamId, ParamId),
    conv2: (ParamId, ParamId),
    fc: (ParamId, ParamId),
}

impl Critic {
    /// Its parameters, added to `store` under `critic.*`.
    pub fn new(store: &mut ParamStore<f32>, rng: &mut StdRng) -> Self {
        let mut add = |name: &str, shape: &[usize], init: Init| {
            store.add(format!("critic.{name}"), shape, init, &mut *rng)
        };
        Critic {
            conv1: (
                add("conv1.w", &[16, 1, 5, 5], Init::HeNormal),
                add("conv1.b", &[16], Init::Zeros),
            ),
            conv2: (
                add("conv2.w", &[32, 16, 5, 5], Init::HeNormal),
                add("conv2.b", &[32], Init::Zeros),
            ),
            fc: (
                add("fc.w", &[32 * 7 * 7, 1], Init::GlorotNormal),
                add("fc.b", &[1], Init::Zeros),
            ),
        }
    }

    /// One score per image of `x` (`[N, 1, 28, 28]`), `[N, 1]`.
    pub fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let same = ConvOptions::new().padding(2);
        let h = x.conv2d_bias(p[self.conv1.0], p[self.conv1.1], same);
        let h = h.relu().max_pool2d(2);
        let h = h.conv2d_bias(p[self.conv2.0], p[self.conv2.1], same);
        let h = h.relu().max_pool2d(2);
        h.flatten().matmul(p[self.fc.0]) + p[self.fc.1]
    }
}

/// The generator: an MLP from noise to a 28x28 image in [−1, 1].
pub struct Generator {
    fc1: (ParamId, ParamId),
    fc2: (ParamId, ParamId),
}

impl Generator {
    /// Its parameters, added to `store` under `generator.*`.
    pub fn new(store: &mut ParamStore<f32>, rng: &mut StdRng) -> Self {
        let mut add = |name: &str, shape: &[usize], init: Init| {
            store.add(format!("generator.{name}"), shape, init, &mut *rng)
        };
        Generator {
            fc1: (
                add("fc1.w", &[NOISE, 256], Init::HeNormal),
                add("fc1.b", &[256], Init::Zeros),
            ),
            fc2: (
                add("fc2.w", &[256, 784], Init::GlorotNormal),
                add("fc2.b", &[784], Init::Zeros),
            ),
        }
    }

    /// Images `[N, 1, 28, 28]` from noise `[N, 32]`.
    pub fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, z: Var<'t, T>) -> Var<'t, T> {
        let h = (z.matmul(p[self.fc1.0]) + p[self.fc1.1]).relu();
        let x = (h.matmul(p[self.fc2.0]) + p[self.fc2.1]).tanh();
        x.reshape([z.shape()[0], 1, 28, 28])
    }
}

/// The critic's loss for one batch of real images, and (W estimate, mean gradient norm).
fn critic_loss<'t>(
    critic: &Critic,
    p: &Bound<'t, f32>,
    real: &Tensor<f32>,
    fake: &Tensor<f32>,
    eps: &Tensor<f32>,
) -> (Var<'t, f32>, f64, f64) {
    let tape = p.tape();
    let n = real.shape()[0];
    let d_real = critic.forward(p, tape.input(real.clone())).mean();
    let d_fake = critic.forward(p, tape.input(fake.clone())).mean();
    // x̂ = ε x + (1 − ε) x̃, one ε per image; a param of the tape, so that ∇D(x̂) exists.
    let mixed = Tensor::from_fn(real.shape(), |i| {
        let e = eps.data()[i / 784];
        e * real.data()[i] + (1.0 - e) * fake.data()[i]
    });
    let xh = tape.param(mixed);
    let gx = tape.grad(critic.forward(p, xh).sum(), &[xh])[0];
    let norm = (gx.square().reshape([n, 784]).sum_axes(&[1], false) + 1e-12).sqrt();
    let penalty = (norm - 1.0).square().mean() * LAMBDA;
    let w = f64::from(d_real.value().item() - d_fake.value().item());
    let mean_norm = f64::from(norm.mean().value().item());
    (d_fake - d_real + penalty, w, mean_norm)
}

/// `n` rows of standard normal noise.
fn noise(n: usize, rng: &mut StdRng) -> Tensor<f32> {
    Tensor::randn([n, NOISE], rng)
}

/// Trains the GAN and reports the critic's estimates and the time per step.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn Error>> {
    let (train, _) = load_mnist_dir::<f32>(&opts.data).map_err(|e| format!("--data: {e}"))?;
    let n = opts.limit.min(train.len());
    // Pixels 0..1 to [−1, 1], the generator's range.
    let images = train.take(n).images().map(|v| 2.0 * v - 1.0);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    // Two stores, so that each optimiser steps its own network.
    let (mut store_c, mut store_g) = (ParamStore::<f32>::new(), ParamStore::<f32>::new());
    let critic = Critic::new(&mut store_c, &mut rng);
    let generator = Generator::new(&mut store_g, &mut rng);
    let mut opt_c = Adam::new(1e-4).betas(0.5, 0.9);
    let mut opt_g = Adam::new(1e-4).betas(0.5, 0.9);

    let b = opts.batch;
    let mut order: Vec<usize> = (0..n).collect();
    let mut next = n; // past the end: shuffle first
    let mut batch = |rng: &mut StdRng| {
        if next + b > n {
            order.shuffle(rng);
            next = 0;
        }
        let idx = &order[next..next + b];
        next += b;
        Tensor::from_fn([b, 1, 28, 28], |i| {
            images.data()[idx[i / 784] * 784 + i % 784]
        })
    };

    let (mut w_hist, mut norm_hist) = (Vec::new(), Vec::new());
    let (mut critic_time, mut gen_time) = (0.0, 0.0);
    let mut tape = Tape::new();
    let start = Instant::now();
    for step in 0..opts.steps {
        for _ in 0..N_CRITIC {
            let real = batch(&mut rng);
            let z = noise(b, &mut rng);
            let eps = Tensor::from_fn([b], |_| rng.random::<f32>());
            let t0 = Instant::now();
            // The generated images are data for the critic: made on an inference tape.
            let fake = {
                let t = Tape::inference();
                generator.forward(&store_g.bind(&t), t.input(z)).value()
            };
            let p = store_c.bind(&tape);
            let (loss, w, norm) = critic_loss(&critic, &p, &real, &fake, &eps);
            if !w.is_finite() {
                return Err(format!("the critic diverged at generator step {step}").into());
            }
            let grads = p.grads(&tape.backward(loss));
            tape.clear();
            opt_c.step(&mut store_c, &grads);
            critic_time += t0.elapsed().as_secs_f64();
            w_hist.push(w);
            norm_hist.push(norm);
        }
        let t0 = Instant::now();
        let (pc, pg) = (store_c.bind(&tape), store_g.bind(&tape));
        let z = tape.input(noise(b, &mut rng));
        let loss = -critic.forward(&pc, generator.forward(&pg, z)).mean();
        let grads = pg.grads(&tape.backward(loss));
        tape.clear();
        opt_g.step(&mut store_g, &grads);
        gen_time += t0.elapsed().as_secs_f64();
        if (step + 1) % 50 == 0 || step + 1 == opts.steps {
            let k = w_hist.len().saturating_sub(50);
            println!(
                "generator step {:>4}: W estimate {:.4}, gradient norm {:.3}",
                step + 1,
                mean(&w_hist[k..]),
                mean(&norm_hist[k..])
            );
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let critic_steps = w_hist.len();
    let last = critic_steps.saturating_sub(50);
    Ok(Summary {
        first_w_distance: mean(&w_hist[..critic_steps.min(50)]),
        w_distance: mean(&w_hist[last..]),
        grad_norm: mean(&norm_hist[last..]),
        critic_steps,
        ms_per_critic_step: 1e3 * critic_time / critic_steps.max(1) as f64,
        ms_per_generator_step: 1e3 * gen_time / opts.steps.max(1) as f64,
        seconds,
    })
}

/// The mean of `v` (NaN when empty).
fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(s) => println!(
            "result: generator_steps={} critic_steps={} w_distance={:.4} grad_norm={:.3} \
             ms_per_critic_step={:.2} ms_per_generator_step={:.2} seconds={:.1}",
            opts.steps,
            s.critic_steps,
            s.w_distance,
            s.grad_norm,
            s.ms_per_critic_step,
            s.ms_per_generator_step,
            s.seconds
        ),
        Err(e) => {
            eprintln!("gradient_penalty: {e}");
            std::process::exit(1)
        }
    }
}
