//! Writing your own op: the forward value and its vector-Jacobian product, recorded on the
//! tape with [`Tape::record`], then checked against finite differences.
//!
//! ```sh
//! cargo run --release --example custom_op
//! ```
//!
//! Two ops, written outside the crate exactly as the crate's own ops are written inside it:
//!
//! - `swish(x) = x · σ(x)`, one input, elementwise. Its derivative is
//!   `σ(x) + x σ(x) (1 − σ(x))`, so the VJP keeps `x` and `σ(x)` from the forward.
//! - `conv1d(x, w)`, two inputs: a valid (no padding, stride 1) 1-D cross-correlation of
//!   `x: [N, C, L]` with `w: [O, C, K]`, giving `[N, O, L − K + 1]`. Its VJP sends the
//!   gradient back to both `x` and `w`, and skips the one whose `needs` flag is false.
//!
//! Each is proved with `gradcheck` in `f64` over several shapes, used once in `f32`, and
//! its errors are shown to point at the caller's line. The last line printed is
//! `result: swish_max_rel_err=.. conv1d_max_rel_err=.. configs=.. passed=..`. Flags
//! (`--help`): `--seed S`.

#[path = "common/args.rs"]
mod args;

use std::error::Error as StdError;
use tapegrad::prelude::*;
use tapegrad::rand::SeedableRng;
use tapegrad::rand::rngs::StdRng;

/// `x · σ(x)` elementwise (also called SiLU). Cannot fail, so there is no `try_` form.
///
/// Forward and VJP side by side: `y = x σ`, `∂L/∂x = g (σ + x σ (1 − σ))`.
#[track_caller] // the tape records the caller's line as the node's location
pub fn swish<'t, T: Float>(x: Var<'t, T>) -> Var<'t, T> {
    let xv = x.value(); // a cheap handle on the shared buffer, not a copy
    let sig = xv.map(sigmoid);
    let y = &xv * &sig;
    // The closure owns what it saved (x and σ(x)); the tape drops it once it has run, or at
    // once when nothing needs a gradient (an inference tape, constant inputs).
    x.tape().record("swish", &[x], y, move |g, _needs| {
        let dy_dx = xv.zip_map(&sig, |x, s| s + x * s * (T::ONE - s));
        [Some(g * &dy_dx)] // one gradient per input, in order
    })
}

/// The logistic function, without overflow for large `|x|`.
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// Valid 1-D cross-correlation: `y[n, o, t] = Σ_c Σ_k x[n, c, t + k] · w[o, c, k]`.
///
/// Shapes: `x: [N, C, L]`, `w: [O, C, K]` with `1 ≤ K ≤ L`, `y: [N, O, L − K + 1]`.
/// VJP: `∂L/∂x[n, c, t + k] += g[n, o, t] · w[o, c, k]`,
/// `∂L/∂w[o, c, k] = Σ_n Σ_t g[n, o, t] · x[n, c, t + k]`.
///
/// Errors name the shapes and point at the caller's line: the checks run here, in the
/// `#[track_caller]` function itself, never in a closure (a closure would report its own
/// line instead).
#[track_caller]
pub fn try_conv1d<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>) -> Result<Var<'t, T>, Error> {
    x.check_same_tape("conv1d", w)?;
    let (xv, wv) = (x.value(), w.value());
    let (xs, ws) = (xv.shape().clone(), wv.shape().clone());
    if xs.rank() != 3 {
        return Err(Error::bad_shape(
            "conv1d",
            &xs,
            "the input must be [N, C, L]",
        ));
    }
    if ws.rank() != 3 {
        return Err(Error::bad_shape(
            "conv1d",
            &ws,
            "the weight must be [O, C, K]",
        ));
    }
    let (n, c, l) = (xs[0], xs[1], xs[2]);
    let (o, k) = (ws[0], ws[2]);
    if ws[1] != c {
        return Err(Error::incompatible(
            "conv1d",
            &xs,
            &ws,
            format!(
                "the input has {c} channels but the weight expects {}",
                ws[1]
            ),
        ));
    }
    if k == 0 || k > l {
        return Err(Error::incompatible(
            "conv1d",
            &xs,
            &ws,
            format!("the kernel width {k} must be between 1 and the input length {l}"),
        ));
    }
    let lo = l - k + 1;
    let (xi, wi, yi) = (
        move |b: usize, ch: usize, t: usize| (b * c + ch) * l + t,
        move |oc: usize, ch: usize, j: usize| (oc * c + ch) * k + j,
        move |b: usize, oc: usize, t: usize| (b * o + oc) * lo + t,
    );

    let mut y = vec![T::ZERO; n * o * lo];
    let (xd, wd) = (xv.data(), wv.data());
    for b in 0..n {
        for oc in 0..o {
            for t in 0..lo {
                let mut acc = T::ZERO;
                for ch in 0..c {
                    for j in 0..k {
                        acc += xd[xi(b, ch, t + j)] * wd[wi(oc, ch, j)];
                    }
                }
                y[yi(b, oc, t)] = acc;
            }
        }
    }

    Ok(x.tape().record(
        "conv1d",
        &[x, w],
        Tensor::from_vec(y, [n, o, lo]),
        move |g, needs| {
            let (gd, xd, wd) = (g.data(), xv.data(), wv.data());
            // Each input's gradient only when asked for: a frozen weight, or data that is
            // an input rather than a parameter, costs nothing here.
            let gx = needs[0].then(|| {
                let mut gx = vec![T::ZERO; xd.len()];
                for b in 0..n {
                    for oc in 0..o {
                        for t in 0..lo {
                            let gy = gd[yi(b, oc, t)];
                            for ch in 0..c {
                                for j in 0..k {
                                    gx[xi(b, ch, t + j)] += gy * wd[wi(oc, ch, j)];
                                }
                            }
                        }
                    }
                }
                Tensor::from_vec(gx, xs.clone())
            });
            let gw = needs[1].then(|| {
                let mut gw = vec![T::ZERO; wd.len()];
                for b in 0..n {
                    for oc in 0..o {
                        for t in 0..lo {
                            let gy = gd[yi(b, oc, t)];
                            for ch in 0..c {
                                for j in 0..k {
                                    gw[wi(oc, ch, j)] += gy * xd[xi(b, ch, t + j)];
                                }
                            }
                        }
                    }
                }
                Tensor::from_vec(gw, ws.clone())
            });
            [gx, gw]
        },
    ))
}

/// [`try_conv1d`], panicking with the same message (which names the caller's line).
#[track_caller]
pub fn conv1d<'t, T: Float>(x: Var<'t, T>, w: Var<'t, T>) -> Var<'t, T> {
    // A `match`, not `unwrap_or_else(|e| ..)`: the panic itself then also sits on the
    // caller's line.
    match try_conv1d(x, w) {
        Ok(y) => y,
        Err(e) => panic!("{e}"),
    }
}

/// What to run; `Default` is the example's settings.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seeds the random inputs.
    pub seed: u64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Shapes of swish checked, and how many passed.
    pub swish_configs: usize,
    /// Largest relative error of swish's gradient against finite differences.
    pub swish_max_rel_err: f64,
    /// `(N, C, O, L, K)` configurations of conv1d checked.
    pub conv1d_configs: usize,
    /// Largest relative error of conv1d's gradients against finite differences.
    pub conv1d_max_rel_err: f64,
    /// Checks that passed, of `swish_configs + conv1d_configs`.
    pub passed: usize,
    /// The message of a conv1d called with mismatched channels.
    pub error_message: String,
}

const USAGE: &str = "\
usage: cargo run --release --example custom_op -- [flags]
  --seed S     seed of the random inputs (default 0)
";

/// [`Options`] from a list of arguments; `Err` names the flag at fault.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    args::each_flag(args, USAGE, |flag, next| {
        match flag {
            "--seed" => o.seed = next.value()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(o)
}

/// Gradient-checks both ops over their tables of shapes, runs them once in `f32`, and
/// shows an error message.
pub fn run(opts: &Options) -> Result<Summary, Box<dyn StdError>> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut passed = 0;

    println!("swish(x) = x * sigmoid(x)");
    let shapes: &[&[usize]] = &[&[], &[1], &[7], &[2, 3], &[2, 3, 4], &[4, 1, 5]];
    let mut swish_max_rel_err = 0.0f64;
    for &s in shapes {
        // Scale 3: both tails of the sigmoid are exercised.
        let x = Tensor::<f64>::randn(s, &mut rng).map(|v| 3.0 * v);
        let r = gradcheck(|v| swish(v[0]), &[x])
            .map_err(|e| format!("swish {s:?}: gradcheck failed: {e}"))?;
        println!(
            "  x {:<12} max abs err {:.2e}  max rel err {:.2e}",
            format!("{s:?}"),
            r.max_abs_err(),
            r.max_rel_err()
        );
        swish_max_rel_err = swish_max_rel_err.max(r.max_rel_err());
        passed += 1;
    }

    println!("conv1d(x [N, C, L], w [O, C, K]) -> [N, O, L - K + 1]");
    // (N, C, O, L, K): batch 1 and more, one and several channels, K = 1 and K = L.
    let configs = [
        (1, 1, 1, 5, 3),
        (2, 3, 2, 7, 3),
        (3, 2, 4, 6, 1),
        (1, 2, 3, 4, 4),
        (2, 1, 3, 9, 2),
    ];
    let mut conv1d_max_rel_err = 0.0f64;
    for (n, c, o, l, k) in configs {
        let x = Tensor::<f64>::randn([n, c, l], &mut rng);
        let w = Tensor::<f64>::randn([o, c, k], &mut rng);
        // Through a nonlinearity, so the upstream gradient is not a constant.
        let r = gradcheck(|v| swish(conv1d(v[0], v[1])), &[x, w])
            .map_err(|e| format!("conv1d {:?}: gradcheck failed: {e}", (n, c, o, l, k)))?;
        println!(
            "  N={n} C={c} O={o} L={l} K={k}  max abs err {:.2e}  max rel err {:.2e}",
            r.max_abs_err(),
            r.max_rel_err()
        );
        conv1d_max_rel_err = conv1d_max_rel_err.max(r.max_rel_err());
        passed += 1;
    }

    // The same code in f32, with one gradient skipped: the signal is an input, not a param.
    let tape = Tape::<f32>::new();
    let signal = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 4]));
    let kernel = tape.param(Tensor::from_vec(vec![1.0, -1.0], [1, 1, 2]));
    let y = conv1d(signal, kernel);
    println!(
        "f32: conv1d([1 2 3 4], [1 -1]) = {:?}, d sum / d w = {:?}",
        y.value().to_vec(),
        tape.backward(y.sum())[kernel].to_vec()
    );

    // An error names the shapes and the line of this file that called conv1d.
    let tape = Tape::<f64>::new();
    let e = try_conv1d(
        tape.input(Tensor::zeros([2, 3, 8])),
        tape.input(Tensor::zeros([4, 2, 3])),
    )
    .expect_err("3 channels against 2");
    println!("error: {e}");

    Ok(Summary {
        swish_configs: shapes.len(),
        swish_max_rel_err,
        conv1d_configs: configs.len(),
        conv1d_max_rel_err,
        passed,
        error_message: e.to_string(),
    })
}

fn main() {
    let opts = args::parse_or_exit("custom_op", USAGE, parse);
    match run(&opts) {
        Ok(s) => println!(
            "result: swish_max_rel_err={:.2e} conv1d_max_rel_err={:.2e} configs={} passed={}",
            s.swish_max_rel_err,
            s.conv1d_max_rel_err,
            s.swish_configs + s.conv1d_configs,
            s.passed
        ),
        Err(e) => {
            eprintln!("custom_op: {e}");
            std::process::exit(1)
        }
    }
}
