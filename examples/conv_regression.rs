//! The smallest convolution tutorial: learn a 2x2 kernel from what it does to an image.
//!
//! ```sh
//! cargo run --release --example conv_regression
//! ```
//!
//! The data are four 3x3 images: one image and its horizontal, vertical and double flips.
//! The targets are made by convolving each with a known "true" 2x2 kernel (no padding,
//! stride 1, so each target is 2x2), and the model is a single 2x2 kernel, drawn at random,
//! trained on the mean squared error with plain SGD (learning rate 0.001) for 1000 epochs of
//! one step on the batch of all four images. Gradient descent has to find the true kernel
//! again from the images and targets alone.
//!
//! The image holds the digits of pi, `3 1 4 / 1 5 9 / 2 6 5`. Any image does not do: the
//! ramp `1 2 3 / 4 5 6 / 7 8 9`, for one, makes every 2x2 window the same linear function
//! of its top-left value, so many kernels fit its targets exactly and the true one cannot
//! be recovered. With the pi digits the loss surface is a well-rounded bowl (the smallest
//! curvature is about 8), so 1000 steps of 0.001 shrink the kernel's error about e^8-fold.
//!
//! Prints the loss every 100 epochs, the learned kernel beside the true one and, last,
//! `result: loss=.. kernel_error=..`, the final mean squared error and the largest
//! difference between a learned and a true weight. Flags (`--help`): `--epochs E --lr LR
//! --seed S`.

#[path = "common/args.rs"]
mod args;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use tapegrad::nn::{Init, Optimizer, ParamStore, Sgd};
use tapegrad::prelude::*;

/// The image the four samples are made from (the digits of pi).
const IMAGE: [[f32; 3]; 3] = [[3.0, 1.0, 4.0], [1.0, 5.0, 9.0], [2.0, 6.0, 5.0]];
/// The kernel that makes the targets, and that training should find again.
const TRUE_KERNEL: [[f32; 2]; 2] = [[1.0, -1.0], [0.5, 2.0]];

/// What to run; `Default` is the tutorial's settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Steps, each on the batch of all four images.
    pub epochs: usize,
    /// SGD's learning rate.
    pub lr: f64,
    /// Seeds the initial kernel.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 1000,
            lr: 0.001,
            seed: 0,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The mean squared error before the first step.
    pub initial_loss: f64,
    /// The mean squared error after the last step.
    pub loss: f64,
    /// The largest `|learned − true|` over the four weights, before training.
    pub initial_kernel_error: f64,
    /// The largest `|learned − true|` over the four weights, after training.
    pub kernel_error: f64,
    /// The learned kernel, row by row.
    pub kernel: [[f32; 2]; 2],
}

const USAGE: &str = "\
usage: cargo run --release --example conv_regression -- [flags]
  --epochs E   steps on the batch of four images (default 1000)
  --lr LR      SGD's learning rate (default 0.001)
  --seed S     seed of the initial kernel (default 0)
";

/// The flags of the command line; prints usage and exits on `--help`, or on a bad flag
/// with a message naming it.
fn parse_args() -> Options {
    args::parse_or_exit("conv_regression", USAGE, parse)
}

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--epochs" => o.epochs = next.value()?,
            "--lr" => o.lr = next.value()?,
            "--seed" => o.seed = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(format!("--lr must be a positive number, not {}", o.lr));
    }
    Ok(o)
}

/// The image and its horizontal, vertical and double flips, as one `[4, 1, 3, 3]` batch.
fn samples() -> Tensor<f32> {
    let flips = [(false, false), (true, false), (false, true), (true, true)];
    let mut data = Vec::with_capacity(36);
    for (flip_h, flip_v) in flips {
        for i in 0..3 {
            for j in 0..3 {
                let (r, c) = (
                    if flip_v { 2 - i } else { i },
                    if flip_h { 2 - j } else { j },
                );
                data.push(IMAGE[r][c]);
            }
        }
    }
    Tensor::from_vec(data, [4, 1, 3, 3])
}

/// `[[a, b], [c, d]]` as a `[1, 1, 2, 2]` convolution weight.
fn kernel_tensor(k: [[f32; 2]; 2]) -> Tensor<f32> {
    Tensor::from_vec(k.concat(), [1, 1, 2, 2])
}

/// The model: one 2x2 kernel, no bias, no padding.
fn forward<'t>(x: Var<'t, f32>, kernel: Var<'t, f32>) -> Var<'t, f32> {
    x.conv2d(kernel, ConvOptions::new())
}

/// The largest `|a − b|` between two kernels.
fn max_diff(a: &Tensor<f32>, b: &Tensor<f32>) -> f64 {
    let d = a.data().iter().zip(b.data()).map(|(x, y)| (x - y).abs());
    f64::from(d.fold(0.0, f32::max))
}

/// Trains the kernel and measures how close it came.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn Error>> {
    let x = samples();
    let truth = kernel_tensor(TRUE_KERNEL);
    // The targets are the true kernel's output: a constant, computed once.
    let targets = {
        let tape = Tape::inference();
        forward(tape.input(x.clone()), tape.input(truth.clone())).value()
    };

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut store = ParamStore::new();
    let w = store.add("kernel", [1, 1, 2, 2], Init::Normal { std: 1.0 }, &mut rng);
    let mut opt = Sgd::new(opts.lr);

    let initial_kernel_error = max_diff(&store[w], &truth);
    let mut initial_loss = f64::NAN;
    let mut tape = Tape::new();
    for epoch in 0..opts.epochs {
        let p = store.bind(&tape);
        let loss = forward(tape.input(x.clone()), p[w])
            .mse_loss(&targets)
            .mean();
        let l = f64::from(loss.value().item());
        if epoch == 0 {
            initial_loss = l;
        }
        if epoch % 100 == 0 {
            println!("epoch {epoch:>5}: loss {l:.6e}");
        }
        if !l.is_finite() {
            return Err(
                format!("the loss diverged at epoch {epoch} ({l}); try a smaller --lr").into(),
            );
        }
        let grads = p.grads(&tape.backward(loss));
        tape.clear(); // before the step, so that it updates the kernel in place
        opt.step(&mut store, &grads);
    }

    let tape = Tape::inference();
    let out = forward(tape.input(x), tape.input(store[w].clone()));
    let loss = f64::from(out.mse_loss(&targets).mean().value().item());
    println!("epoch {:>5}: loss {loss:.6e}", opts.epochs);
    if opts.epochs == 0 {
        initial_loss = loss;
    }

    let k = store[w].data();
    let kernel = [[k[0], k[1]], [k[2], k[3]]];
    println!("\n     learned            true");
    for (learned, truth) in kernel.iter().zip(TRUE_KERNEL) {
        println!(
            "{:8.4} {:8.4}    {:6.2} {:6.2}",
            learned[0], learned[1], truth[0], truth[1]
        );
    }
    Ok(Summary {
        initial_loss,
        loss,
        initial_kernel_error,
        kernel_error: max_diff(&store[w], &kernel_tensor(TRUE_KERNEL)),
        kernel,
    })
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(s) => println!(
            "result: loss={:.3e} kernel_error={:.3e} initial_loss={:.3e} epochs={} lr={}",
            s.loss, s.kernel_error, s.initial_loss, opts.epochs, opts.lr
        ),
        Err(e) => {
            eprintln!("conv_regression: {e}");
            std::process::exit(1)
        }
    }
}
