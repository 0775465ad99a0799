//! A physics-informed network: an MLP `u(x)` learns the solution of a differential equation
//! from the equation alone, its loss built from the second derivative of the network in its
//! input.
//!
//! ```sh
//! cargo run --release --example pinn
//! ```
//!
//! The problem is the 1-D Poisson equation `−u''(x) = π² sin(πx)` on `(0, 1)` with
//! `u(0) = u(1) = 0`, whose solution is `u(x) = sin(πx)`. No value of `u` is given inside
//! the interval: the loss is the mean squared residual `u''(x) + π² sin(πx)` at 64 evenly
//! spaced collocation points plus `u(0)² + u(1)²`. The residual needs `u''` of the network in
//! its input, taken with `Tape::grad` twice on the tape that records the forward pass, and
//! the training step differentiates through both (third derivatives of the network in `x`,
//! mixed with its weights).
//!
//! Network: 1 → 32 → 32 → 1, tanh, Glorot-normal weights and zero biases (seeded); Adam,
//! learning rate 1e-3, 3000 steps, f32. `scripts/torch_recipes.py --recipe pinn` is the
//! same recipe in PyTorch.
//!
//! Prints the loss every 500 steps and, last, `result: max_error=.. rel_l2=.. loss=..
//! steps=.. seconds=.. ms_per_step=..`: the largest `|u(x) − sin(πx)|` and the relative L2
//! error over 201 points of `[0, 1]`, the final loss, and the training time. Flags
//! (`--help`): `--steps N --lr LR --points N --width N --seed S`.

#[path = "common/args.rs"]
mod args;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use std::f64::consts::PI;
use std::time::Instant;
use tapegrad::nn::{Adam, Bound, Init, Optimizer, ParamId, ParamStore};
use tapegrad::prelude::*;

/// What to run; `Default` is the recipe above.
#[derive(Clone, Debug)]
pub struct Options {
    /// Adam steps, each on all collocation points.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Collocation points inside (0, 1).
    pub points: usize,
    /// Units of each hidden layer.
    pub width: usize,
    /// Seeds the initial weights.
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            steps: 3000,
            lr: 1e-3,
            points: 64,
            width: 32,
            seed: 0,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The loss before the first step.
    pub initial_loss: f64,
    /// The loss after the last step.
    pub loss: f64,
    /// The largest `|u(x) − sin(πx)|` over 201 evenly spaced points of `[0, 1]`.
    pub max_error: f64,
    /// `‖u − sin(π·)‖₂ / ‖sin(π·)‖₂` over the same points.
    pub rel_l2: f64,
    /// Wall time of training.
    pub seconds: f64,
}

const USAGE: &str = "\
usage: cargo run --release --example pinn -- [flags]
  --steps N    Adam steps (default 3000)
  --lr LR      Adam's learning rate (default 0.001)
  --points N   collocation points inside (0, 1) (default 64)
  --width N    units of each hidden layer (default 32)
  --seed S     seed of the initial weights (default 0)
";

/// The flags of the command line; prints usage and exits on `--help`, or on a bad flag
/// with a message naming it.
fn parse_args() -> Options {
    args::parse_or_exit("pinn", USAGE, parse)
}

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--steps" => o.steps = next.value()?,
            "--lr" => o.lr = next.value()?,
            "--points" => o.points = next.value()?,
            "--width" => o.width = next.value()?,
            "--seed" => o.seed = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(format!("--lr must be a positive number, not {}", o.lr));
    }
    if o.points == 0 || o.width == 0 {
        return Err("--points and --width must be at least 1".into());
    }
    Ok(o)
}

/// The network `u(x)`: three linear layers, tanh between them.
struct Mlp {
    layers: [(ParamId, ParamId); 3],
}

impl Mlp {
    fn new(store: &mut ParamStore<f32>, width: usize, rng: &mut StdRng) -> Self {
        let mut layer = |name: &str, i: usize, o: usize| {
            let w = store.add(format!("{name}.w"), [i, o], Init::GlorotNormal, rng);
            let b = store.add(format!("{name}.b"), [o], Init::Zeros, rng);
            (w, b)
        };
        Mlp {
            layers: [
                layer("fc1", 1, width),
                layer("fc2", width, width),
                layer("fc3", width, 1),
            ],
        }
    }

    /// `u` at the points `x` (`[N, 1]`), `[N, 1]`.
    fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let [(w1, b1), (w2, b2), (w3, b3)] = self.layers;
        let h = (x.matmul(p[w1]) + p[b1]).tanh();
        let h = (h.matmul(p[w2]) + p[b2]).tanh();
        h.matmul(p[w3]) + p[b3]
    }
}

/// `n` points evenly spaced inside (0, 1) (cell centres), as `[n, 1]`.
fn collocation(n: usize) -> Tensor<f32> {
    Tensor::from_fn([n, 1], |i| ((i as f64 + 0.5) / n as f64) as f32)
}

/// The loss: mean squared residual of `−u'' = π² sin(πx)` at `x`, plus `u(0)² + u(1)²`.
fn loss<'t>(net: &Mlp, p: &Bound<'t, f32>, x: &Tensor<f32>, rhs: &Tensor<f32>) -> Var<'t, f32> {
    let tape = p.tape();
    // x is differentiated, so it needs a gradient: a param of the tape (not of the store).
    let xv = tape.param(x.clone());
    let u = net.forward(p, xv);
    // Each u_i depends on x_i alone, so the gradient of the sum holds every u'(x_i).
    let ux = tape.grad(u.sum(), &[xv])[0];
    let uxx = tape.grad(ux.sum(), &[xv])[0];
    let residual = uxx + tape.input(rhs.clone());
    let ends = net.forward(p, tape.input(Tensor::from_vec(vec![0.0, 1.0], [2, 1])));
    residual.square().mean() + ends.square().sum()
}

/// `(max |u − sin(πx)|, relative L2 error)` over 201 points of `[0, 1]`.
fn errors(net: &Mlp, store: &ParamStore<f32>) -> (f64, f64) {
    let tape = Tape::inference();
    let p = store.bind(&tape);
    let x = Tensor::from_fn([201, 1], |i| (i as f64 / 200.0) as f32);
    let u = net.forward(&p, tape.input(x.clone())).value();
    let (mut max, mut num, mut den) = (0.0f64, 0.0, 0.0);
    for (&xi, &ui) in x.data().iter().zip(u.data()) {
        let exact = (PI * f64::from(xi)).sin();
        let e = f64::from(ui) - exact;
        max = max.max(e.abs());
        num += e * e;
        den += exact * exact;
    }
    (max, (num / den).sqrt())
}

/// Trains the network on the equation and measures it against the exact solution.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn Error>> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut store = ParamStore::<f32>::new();
    let net = Mlp::new(&mut store, opts.width, &mut rng);
    let mut opt = Adam::new(opts.lr);
    let x = collocation(opts.points);
    // −u'' = π² sin(πx), so the residual is u'' + π² sin(πx).
    let rhs = x.map(|v| (PI * PI * (PI * f64::from(v)).sin()) as f32);

    let mut tape = Tape::new();
    let mut initial_loss = f64::NAN;
    let mut last = f64::NAN;
    let start = Instant::now();
    for step in 0..opts.steps {
        let p = store.bind(&tape);
        let l = loss(&net, &p, &x, &rhs);
        last = f64::from(l.value().item());
        if step == 0 {
            initial_loss = last;
        }
        if step % 500 == 0 {
            println!("step {step:>5}: loss {last:.4e}");
        }
        if !last.is_finite() {
            return Err(format!("the loss diverged at step {step}; try a smaller --lr").into());
        }
        let grads = p.grads(&tape.backward(l));
        tape.clear();
        opt.step(&mut store, &grads);
    }
    let seconds = start.elapsed().as_secs_f64();
    let loss = {
        let tape = Tape::new();
        let p = store.bind(&tape);
        f64::from(loss(&net, &p, &x, &rhs).value().item())
    };
    println!(
        "step {:>5}: loss {loss:.4e} (previous {last:.4e})",
        opts.steps
    );
    let (max_error, rel_l2) = errors(&net, &store);
    Ok(Summary {
        initial_loss: if opts.steps == 0 { loss } else { initial_loss },
        loss,
        max_error,
        rel_l2,
        seconds,
    })
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(s) => println!(
            "result: max_error={:.3e} rel_l2={:.3e} loss={:.3e} steps={} seconds={:.2} \
             ms_per_step={:.3}",
            s.max_error,
            s.rel_l2,
            s.loss,
            opts.steps,
            s.seconds,
            1e3 * s.seconds / opts.steps.max(1) as f64
        ),
        Err(e) => {
            eprintln!("pinn: {e}");
            std::process::exit(1)
        }
    }
}
