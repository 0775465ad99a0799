//! Every op of a small CNN checked against finite differences, one op at a time.
//!
//! ```sh
//! cargo run --release --example gradcheck
//! ```
//!
//! The network, in `f64`, on a batch of two 2-channel 9x9 images:
//!
//! ```text
//! standardise each image:  (x − mean) / sqrt(mean((x − mean)²) + 1e-5)
//! conv2d_bias 3x3, 4 filters, stride 1, padding 1   -> [2, 4, 9, 9]
//! max_pool2d 3x3, stride 2, padding 1               -> [2, 4, 5, 5]
//! relu, dropout p = 0.25 (seeded)
//! conv2d 3x3 depthwise (groups 4), stride 2, padding 1 -> [2, 4, 3, 3]
//! tanh, avg_pool2d 2x2 stride 1                     -> [2, 4, 2, 2]
//! flatten, matmul with a [3, 16] weight transposed (t), add bias -> logits [2, 3]
//! loss = mean(cross_entropy) + mean(Σ softmax · log_softmax)
//!        + 0.5 · mean(mse_loss(softmax, one-hot)) + 0.5 · mean(bce(sigmoid, one-hot))
//! ```
//!
//! (Max-pooling comes before the ReLU, which gives the same values as after it, so that no
//! pooling window holds a tie of zeros, where finite differences are meaningless.)
//!
//! One forward pass records, for every use of an op, the values that flowed into it; each
//! use is then checked on its own with `tapegrad::gradcheck` (`eps 1e-6`, `atol 1e-5`,
//! `rtol 1e-3`), as a function of exactly those inputs, so a wrong gradient is pinned on
//! the op that has it. A last check runs the whole network against its six inputs.
//!
//! Prints a table, one row per op, of the worst relative error
//! `|analytic − numeric| / max(|numeric|, atol)` over its uses, and last
//! `result: ops=N passed=N worst_rel_err=.. network_rel_err=..`. Exits with status 1 when
//! any check fails. Flags (`--help`): `--seed S --eps E --atol A --rtol R`.

#[path = "common/args.rs"]
mod args;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::error::Error;
use tapegrad::gradcheck::GradcheckError;
use tapegrad::prelude::*;

/// What to run; `Default` is seed 0 and PyTorch's tolerances.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seeds the images and the weights.
    pub seed: u64,
    /// The checks' tolerances and finite-difference step.
    pub check: GradCheck,
}

/// How one op fared over all its uses in the network.
#[derive(Clone, Debug)]
pub struct OpRow {
    /// The op's method name.
    pub name: &'static str,
    /// How many times the network uses it (each use is one check).
    pub uses: usize,
    /// The input shapes of the use with the largest relative error.
    pub shapes: String,
    /// The largest relative error over its uses.
    pub worst_rel_err: f64,
    /// True when every use passed.
    pub passed: bool,
    /// The first failure, as `gradcheck` reports it.
    pub failure: Option<String>,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// One row per op, in the order the network first uses them.
    pub ops: Vec<OpRow>,
    /// The whole network's check: its worst relative error.
    pub network_rel_err: f64,
    /// The whole network's check passed.
    pub network_passed: bool,
}

impl Summary {
    /// Ops whose every use passed.
    pub fn passed(&self) -> usize {
        self.ops.iter().filter(|r| r.passed).count()
    }

    /// The largest relative error over all ops.
    pub fn worst_rel_err(&self) -> f64 {
        self.ops.iter().map(|r| r.worst_rel_err).fold(0.0, f64::max)
    }

    /// Every op and the whole network passed.
    pub fn all_passed(&self) -> bool {
        self.passed() == self.ops.len() && self.network_passed
    }
}

const USAGE: &str = "\
usage: cargo run --release --example gradcheck -- [flags]
  --seed S   seed of the images and weights (default 0)
  --eps E    finite-difference step (default 1e-6)
  --atol A   absolute tolerance (default 1e-5)
  --rtol R   relative tolerance (default 1e-3)
";

/// The flags of the command line; prints usage and exits on `--help`, or on a bad flag
/// with a message naming it.
fn parse_args() -> Options {
    args::parse_or_exit("gradcheck", USAGE, parse)
}

/// [`parse_args`] over any list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--seed" => o.seed = next.value()?,
            "--eps" => o.check.eps = next.value()?,
            "--atol" => o.check.atol = next.value()?,
            "--rtol" => o.check.rtol = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let c = o.check;
    if !(c.eps > 0.0 && c.atol > 0.0 && c.rtol >= 0.0 && c.eps.is_finite()) {
        return Err("--eps and --atol must be positive, --rtol 0 or more".into());
    }
    Ok(o)
}

/// A function of some tensors that applies one op; `'static` and valid on any tape, so it
/// can run inside the network and again, alone, inside a check.
type OpFn = Box<dyn for<'a> Fn(&[Var<'a, f64>]) -> Var<'a, f64>>;

/// One use of an op: the values that flowed into it and the op itself.
struct OpUse {
    name: &'static str,
    inputs: Vec<Tensor<f64>>,
    f: OpFn,
}

/// Applies ops for the network and keeps each use for its own check.
#[derive(Default)]
struct Recorder {
    uses: Vec<OpUse>,
}

impl Recorder {
    fn op<'t, F>(&mut self, name: &'static str, inputs: &[Var<'t, f64>], f: F) -> Var<'t, f64>
    where
        F: for<'a> Fn(&[Var<'a, f64>]) -> Var<'a, f64> + 'static,
    {
        let y = f(inputs);
        let inputs = inputs.iter().map(|v| v.value()).collect();
        self.uses.push(OpUse {
            name,
            inputs,
            f: Box::new(f),
        });
        y
    }
}

/// The class of each image, and the same as one-hot rows.
const LABELS: [usize; 2] = [2, 0];
fn one_hot() -> Tensor<f64> {
    Tensor::from_fn([2, 3], |i| if LABELS[i / 3] == i % 3 { 1.0 } else { 0.0 })
}

/// The network's six inputs: images `[2, 2, 9, 9]`, conv weight `[4, 2, 3, 3]` and bias
/// `[4]`, depthwise weight `[4, 1, 3, 3]`, linear weight `[3, 16]` (PyTorch's `[out, in]`
/// layout, hence the transpose) and bias `[3]`.
fn inputs(seed: u64) -> Vec<Tensor<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut randn = |shape: &[usize], scale: f64| Tensor::randn(shape, &mut rng) * scale;
    vec![
        randn(&[2, 2, 9, 9], 1.0),
        randn(&[4, 2, 3, 3], 0.5),
        randn(&[4], 0.1),
        randn(&[4, 1, 3, 3], 0.5),
        randn(&[3, 16], 0.5),
        randn(&[3], 0.1),
    ]
}

/// The network on its six inputs (see the module doc); every op goes through `rec`.
fn network<'t>(v: &[Var<'t, f64>], rec: &mut Recorder) -> Var<'t, f64> {
    let [x, w1, b1, w2, w3, b3] = [v[0], v[1], v[2], v[3], v[4], v[5]];

    // Standardise each image over its channels and pixels.
    let mean = rec.op("mean_axes", &[x], |v| v[0].mean_axes(&[1, 2, 3], true));
    let centred = rec.op("sub", &[x, mean], |v| v[0] - v[1]);
    let sq = rec.op("square", &[centred], |v| v[0].square());
    let var = rec.op("mean_axes", &[sq], |v| v[0].mean_axes(&[1, 2, 3], true));
    let var = rec.op("add_scalar", &[var], |v| v[0].add_scalar(1e-5));
    let std = rec.op("sqrt", &[var], |v| v[0].sqrt());
    let x = rec.op("div", &[centred, std], |v| v[0] / v[1]);

    let h = rec.op("conv2d_bias", &[x, w1, b1], |v| {
        v[0].conv2d_bias(v[1], v[2], ConvOptions::new().padding(1))
    });
    let h = rec.op("max_pool2d", &[h], |v| {
        v[0].max_pool2d(PoolOptions::new(3).stride(2).padding(1))
    });
    let h = rec.op("relu", &[h], |v| v[0].relu());
    // A fresh rng on every call: the same mask each time the check evaluates the op.
    let h = rec.op("dropout", &[h], |v| {
        v[0].dropout(0.25, &mut StdRng::seed_from_u64(7))
    });
    let h = rec.op("conv2d", &[h, w2], |v| {
        v[0].conv2d(v[1], ConvOptions::new().stride(2).padding(1).groups(4))
    });
    let h = rec.op("tanh", &[h], |v| v[0].tanh());
    let h = rec.op("avg_pool2d", &[h], |v| {
        v[0].avg_pool2d(PoolOptions::new(2).stride(1))
    });
    let h = rec.op("flatten", &[h], |v| v[0].flatten());
    let w3t = rec.op("t", &[w3], |v| v[0].t());
    let z = rec.op("matmul", &[h, w3t], |v| v[0].matmul(v[1]));
    let z = rec.op("add", &[z, b3], |v| v[0] + v[1]);

    let ce = rec.op("cross_entropy", &[z], |v| v[0].cross_entropy(&LABELS));
    let p = rec.op("softmax", &[z], |v| v[0].softmax(1));
    let logp = rec.op("log_softmax", &[z], |v| v[0].log_softmax(1));
    let plogp = rec.op("mul", &[p, logp], |v| v[0] * v[1]);
    let neg_entropy = rec.op("sum_axes", &[plogp], |v| v[0].sum_axes(&[1], false));
    let mse = rec.op("mse_loss", &[p], |v| v[0].mse_loss(&one_hot()));
    let s = rec.op("sigmoid", &[z], |v| v[0].sigmoid());
    let bce = rec.op("bce", &[s], |v| v[0].bce(&one_hot()));

    let mut loss = rec.op("mean", &[ce], |v| v[0].mean());
    let ent = rec.op("mean", &[neg_entropy], |v| v[0].mean());
    loss = rec.op("add", &[loss, ent], |v| v[0] + v[1]);
    for term in [mse, bce] {
        let m = rec.op("mean", &[term], |v| v[0].mean());
        let m = rec.op("mul_scalar", &[m], |v| v[0].mul_scalar(0.5));
        loss = rec.op("add", &[loss, m], |v| v[0] + v[1]);
    }
    loss
}

/// `|analytic − numeric| / max(|numeric|, atol)` of a failing element, as the report's
/// `max_rel_err` measures a passing one.
fn rel_err(e: &GradcheckError, atol: f64) -> f64 {
    e.worst()
        .map_or(f64::NAN, |w| w.abs_err / w.numeric.abs().max(atol))
}

/// Checks every use of every op, then the whole network; prints the table.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn Error>> {
    let check = opts.check;
    let values = inputs(opts.seed);

    // One recorded forward pass gives every op's inputs.
    let mut rec = Recorder::default();
    {
        let tape = Tape::<f64>::new();
        let vars: Vec<_> = values.iter().map(|t| tape.param(t.clone())).collect();
        let loss = network(&vars, &mut rec);
        println!(
            "network: {} op uses, loss {:.6}",
            rec.uses.len(),
            loss.value().item()
        );
    }

    let mut rows: Vec<OpRow> = Vec::new();
    for u in &rec.uses {
        let (rel, failure) = match check.check(&*u.f, &u.inputs) {
            Ok(report) => (report.max_rel_err(), None),
            Err(e) => (rel_err(&e, check.atol), Some(e.to_string())),
        };
        let shapes = u
            .inputs
            .iter()
            .map(|t| t.shape().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let row = match rows.iter_mut().position(|r| r.name == u.name) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(OpRow {
                    name: u.name,
                    uses: 0,
                    shapes: shapes.clone(),
                    worst_rel_err: -1.0,
                    passed: true,
                    failure: None,
                });
                rows.last_mut().expect("just pushed")
            }
        };
        row.uses += 1;
        // NaN counts as worst: a NaN gradient must show in the table.
        if rel.is_nan() || rel > row.worst_rel_err {
            row.worst_rel_err = rel;
            row.shapes = shapes;
        }
        if failure.is_some() && row.passed {
            row.passed = false;
            row.failure = failure;
        }
    }

    let (network_rel_err, network_failure) =
        match check.check(|v| network(v, &mut Recorder::default()), &values) {
            Ok(report) => (report.max_rel_err(), None),
            Err(e) => (rel_err(&e, check.atol), Some(e.to_string())),
        };

    println!(
        "\n{:<14} {:>4}  {:<36} {:>13}  status",
        "op", "uses", "input shapes (worst use)", "worst rel err"
    );
    for r in &rows {
        let status = if r.passed { "ok" } else { "FAILED" };
        println!(
            "{:<14} {:>4}  {:<36} {:>13.3e}  {status}",
            r.name, r.uses, r.shapes, r.worst_rel_err
        );
    }
    let status = if network_failure.is_none() {
        "ok"
    } else {
        "FAILED"
    };
    println!(
        "{:<14} {:>4}  {:<36} {:>13.3e}  {status}",
        "whole network", 1, "6 inputs", network_rel_err
    );
    for (name, f) in rows
        .iter()
        .filter_map(|r| Some((r.name, r.failure.as_ref()?)))
        .chain(network_failure.as_ref().map(|f| ("whole network", f)))
    {
        println!("{name}: {f}");
    }

    Ok(Summary {
        ops: rows,
        network_rel_err,
        network_passed: network_failure.is_none(),
    })
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(s) => {
            println!(
                "result: ops={} passed={} worst_rel_err={:.3e} network_rel_err={:.3e}",
                s.ops.len(),
                s.passed(),
                s.worst_rel_err(),
                s.network_rel_err
            );
            if !s.all_passed() {
                std::process::exit(1)
            }
        }
        Err(e) => {
            eprintln!("gradcheck: {e}");
            std::process::exit(1)
        }
    }
}
