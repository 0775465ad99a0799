//! Gradient checking: the tape's gradients against central finite differences, in `f64`.
//!
//! For a forward function `f` and inputs `x₁..xₙ`, the check forms the scalar
//! `L = ⟨r, f(x)⟩` (with `r = 1` when `f` returns one element, otherwise a fixed random
//! vector, so the whole VJP is exercised in one random direction), asks the tape for
//! `∂L/∂xᵢ`, and compares every element with `(L(x + εeⱼ) − L(x − εeⱼ)) / 2ε`. An element
//! passes when `|analytic − numeric| ≤ atol + rtol · |numeric|`. The defaults are PyTorch's:
//! `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`.
//!
//! Finite differences are meaningless where the function has a kink within `eps` of the
//! point: relu at 0, abs at 0, a max or max-pool window with two equal (or nearly equal)
//! largest values, maximum/minimum of equal operands. Choose inputs away from those points.
//! `f` must be deterministic: re-seed any rng inside it (dropout) on every call.
//!
//! ```
//! use tapegrad::prelude::*;
//! let x = Tensor::<f64>::from_vec(vec![0.5, -1.5, 2.0], [3]);
//! let report = gradcheck(|v| (v[0] * v[0]).sum(), &[x]).unwrap();
//! assert!(report.max_abs_err() < 1e-6);
//! ```

use crate::nn::{Bound, ParamStore};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;
use rand::SeedableRng;
use std::fmt;

/// Options of a gradient check; [`gradcheck`] uses the defaults.
#[derive(Clone, Copy, Debug)]
pub struct GradCheck {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Seed of the random projection used for outputs with several elements.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
            seed: 0x5eed,
        }
    }
}

/// How one input fared.
#[derive(Clone, Debug, PartialEq)]
pub struct InputReport {
    /// Position of the input among those checked (a model's parameters first, in store
    /// order, then its inputs).
    pub input: usize,
    /// The parameter's name in its store, or `input N` for the `N`th input tensor.
    pub name: String,
    /// Largest `|analytic − numeric|`.
    pub max_abs_err: f64,
    /// Largest `|analytic − numeric| / max(|numeric|, atol)`.
    pub max_rel_err: f64,
    /// The element that came closest to (or went over) its tolerance.
    pub worst: Mismatch,
}

/// One element's two gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Position of the input among those checked (see [`InputReport::input`]).
    pub input: usize,
    /// The parameter's name in its store, or `input N` for the `N`th input tensor.
    pub name: String,
    /// Multi-index of the element within that input.
    pub index: Vec<usize>,
    /// The tape's gradient.
    pub analytic: f64,
    /// The finite-difference estimate.
    pub numeric: f64,
    /// `|analytic − numeric|`.
    pub abs_err: f64,
    /// `atol + rtol · |numeric|`.
    pub allowed: f64,
}

/// A passing check: per-input error figures.
#[derive(Clone, Debug, PartialEq)]
pub struct GradReport {
    /// One entry per input.
    pub inputs: Vec<InputReport>,
}

impl GradReport {
    /// The largest absolute error over all inputs.
    pub fn max_abs_err(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_abs_err)
            .fold(0.0, f64::max)
    }
    /// The largest relative error over all inputs.
    pub fn max_rel_err(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_rel_err)
            .fold(0.0, f64::max)
    }
    /// The report of the parameter or input called `name` (`"conv1.w"`, `"input 0"`).
    pub fn get(&self, name: &str) -> Option<&InputReport> {
        self.inputs.iter().find(|r| r.name == name)
    }
}

/// A failing check.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GradcheckError {
    /// Elements whose analytic and numeric gradients differ beyond the tolerance.
    Failed {
        /// The element that failed by the widest margin.
        worst: Mismatch,
        /// How many elements failed in all.
        failures: usize,
    },
    /// The gradients the check needs cannot be taken: [`GradCheck::check_gradgrad`] met an
    /// op whose VJP is first-order only ([`Tape::try_grad`]'s error, naming the op).
    Unsupported(Box<crate::Error>),
}

impl GradcheckError {
    /// The element that failed by the widest margin (`None` when the check could not run).
    pub fn worst(&self) -> Option<&Mismatch> {
        match self {
            GradcheckError::Failed { worst, .. } => Some(worst),
            GradcheckError::Unsupported(_) => None,
        }
    }

    /// How many elements failed (0 when the check could not run).
    pub fn failures(&self) -> usize {
        match self {
            GradcheckError::Failed { failures, .. } => *failures,
            GradcheckError::Unsupported(_) => 0,
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {:?}: analytic {:.9e}, numeric {:.9e}, |error| {:.3e} (allowed {:.3e})",
            self.name, self.index, self.analytic, self.numeric, self.abs_err, self.allowed
        )
    }
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradcheckError::Failed { worst, failures } => {
                write!(
                    f,
                    "gradcheck failed on {failures} element(s); worst: {worst}"
                )
            }
            GradcheckError::Unsupported(e) => write!(f, "gradgradcheck cannot run: {e}"),
        }
    }
}

impl std::error::Error for GradcheckError {}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.inputs {
            writeln!(
                f,
                "{}: max |error| {:.3e}, max relative error {:.3e}",
                r.name, r.max_abs_err, r.max_rel_err
            )?;
        }
        Ok(())
    }
}

fn unravel(mut i: usize, dims: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; dims.len()];
    for a in (0..dims.len()).rev() {
        idx[a] = i % dims[a];
        i /= dims[a];
    }
    idx
}

impl GradCheck {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the finite-difference step.
    pub fn eps(self, eps: f64) -> Self {
        GradCheck { eps, ..self }
    }
    /// Sets the absolute tolerance.
    pub fn atol(self, atol: f64) -> Self {
        GradCheck { atol, ..self }
    }
    /// Sets the relative tolerance.
    pub fn rtol(self, rtol: f64) -> Self {
        GradCheck { rtol, ..self }
    }

    /// Checks the gradients of `f` with respect to every tensor in `inputs`; `f` receives
    /// them as parameters of a fresh tape, in the same order. The report names them
    /// `input 0`, `input 1`, ..
    pub fn check<F>(&self, f: F, inputs: &[Tensor<f64>]) -> Result<GradReport, GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        let names = (0..inputs.len()).map(|i| format!("input {i}")).collect();
        self.run(names, inputs.to_vec(), |_, vars| f(vars))
    }

    /// Checks a model as it is written for training: `f` receives the parameters of `store`
    /// bound to a fresh tape and the `inputs` as handles, and returns the output (or the
    /// loss). Every parameter and every input is checked, and the report names the
    /// parameters by their names in the store. An input that should not be checked (a
    /// large batch of images) can be captured by `f` instead and put on the tape with
    /// `p.tape().input(..)`.
    ///
    /// A model trained in `f32` is checked on an `f64` copy of its store, made with
    /// [`ParamStore::cast`], whose ids are the model's.
    ///
    /// ```
    /// use tapegrad::nn::{Bound, Init, ParamId, ParamStore};
    /// use tapegrad::prelude::*;
    /// use tapegrad::rand::SeedableRng;
    ///
    /// struct Mlp { w: ParamId, b: ParamId }
    /// impl Mlp {
    ///     fn forward<'t, T: Float>(&self, p: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
    ///         (x.matmul(p[self.w]) + p[self.b]).tanh()
    ///     }
    /// }
    /// let mut rng = tapegrad::rand::rngs::StdRng::seed_from_u64(1);
    /// let mut store = ParamStore::<f32>::new();
    /// let net = Mlp {
    ///     w: store.add("w", [3, 2], Init::GlorotNormal, &mut rng),
    ///     b: store.add("b", [2], Init::Normal { std: 0.1 }, &mut rng),
    /// };
    /// let x = Tensor::<f64>::randn([4, 3], &mut rng);
    /// let report = GradCheck::new()
    ///     .check_model(&store.cast(), |p, v| net.forward(p, v[0]), &[x])
    ///     .unwrap();
    /// assert!(report.get("w").unwrap().max_rel_err < 1e-6);
    /// assert_eq!(report.inputs[2].name, "input 0");
    /// ```
    pub fn check_model<F>(
        &self,
        store: &ParamStore<f64>,
        f: F,
        inputs: &[Tensor<f64>],
    ) -> Result<GradReport, GradcheckError>
    where
        F: for<'t> Fn(&Bound<'t, f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    {
        // Buffers (running statistics) are constants of the model, not checked.
        let trainable: Vec<_> = store.trainable().collect();
        let n = trainable.len();
        let mut names: Vec<String> = trainable.iter().map(|&id| store.name(id).into()).collect();
        names.extend((0..inputs.len()).map(|i| format!("input {i}")));
        let mut tensors: Vec<Tensor<f64>> = trainable.iter().map(|&id| store[id].clone()).collect();
        tensors.extend(inputs.iter().cloned());
        self.run(names, tensors, |tape, vars| {
            let p = store.bound_to(tape, vars[..n].to_vec());
            f(&p, &vars[n..])
        })
    }

    /// Checks the second derivatives of `f` as PyTorch's `gradgradcheck` does: the first
    /// gradients `h(x, v) = ∂⟨v, f(x)⟩/∂x` (for a fixed random `v` of the output's shape,
    /// taken with [`Tape::grad`] so that they are recorded) are themselves gradchecked, with
    /// respect to every input and to `v` (reported as `grad_output`). Every VJP on the way
    /// must be differentiable ([`Tape::record_differentiable`]).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let x = Tensor::<f64>::from_vec(vec![0.5, -1.5, 2.0], [3]);
    /// let report = GradCheck::new().check_gradgrad(|v| v[0].tanh() * v[0], &[x]).unwrap();
    /// assert!(report.max_abs_err() < 1e-6);
    /// assert_eq!(report.inputs[1].name, "grad_output");
    /// ```
    ///
    /// Errors: [`GradcheckError::Unsupported`] when an op on the way has a first-order
    /// VJP only (with [`Tape::try_grad`]'s error, which names it); otherwise as
    /// [`GradCheck::check`].
    pub fn check_gradgrad<F>(
        &self,
        f: F,
        inputs: &[Tensor<f64>],
    ) -> Result<GradReport, GradcheckError>
    where
        F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
    {
        let n = inputs.len();
        let out_shape = {
            // A recording tape with parameters: `f` may take gradients itself (a check of
            // the third derivative).
            let t = Tape::<f64>::new();
            let vs: Vec<_> = inputs.iter().map(|x| t.param(x.clone())).collect();
            let y = f(&vs);
            // Once here, so that an op without a differentiable VJP is an error rather
            // than a panic inside the check.
            t.try_grad(y.sum(), &vs)
                .map_err(|e| GradcheckError::Unsupported(Box::new(e)))?;
            y.shape()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed ^ 0x9e37_79b9);
        let mut names: Vec<String> = (0..n).map(|i| format!("input {i}")).collect();
        names.push("grad_output".into());
        let mut tensors = inputs.to_vec();
        tensors.push(Tensor::randn(out_shape, &mut rng));
        self.run(names, tensors, |tape, vars| {
            let y = f(&vars[..n]);
            let first = tape.grad((y * vars[n]).sum(), &vars[..n]);
            let flat: Vec<_> = first
                .iter()
                .map(|g| g.reshape([g.shape().numel()]))
                .collect();
            Var::concat(&flat, 0)
        })
    }

    /// The check itself, over named tensors that `f` receives as parameters of `tape`.
    fn run<F>(
        &self,
        names: Vec<String>,
        inputs: Vec<Tensor<f64>>,
        f: F,
    ) -> Result<GradReport, GradcheckError>
    where
        F: for<'t> Fn(&'t Tape<f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
    {
        // Analytic gradients of L = <r, f(x)>.
        let tape = Tape::<f64>::new();
        let vars: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
        let out = f(&tape, &vars);
        let r = if out.shape().numel() == 1 {
            Tensor::ones(out.shape())
        } else {
            let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
            Tensor::randn(out.shape(), &mut rng)
        };
        let grads = tape.backward_with(out, r.clone());
        let analytic: Vec<Tensor<f64>> = vars.iter().map(|&v| grads[v].clone()).collect();

        // L at a perturbed point, on a recording tape: `f` may take gradients itself (a
        // gradient penalty, or the first gradients of `check_gradgrad`).
        let loss_at = |xs: &[Tensor<f64>]| -> f64 {
            let t = Tape::<f64>::new();
            t.set_training(tape.is_training());
            let vs: Vec<_> = xs.iter().map(|x| t.param(x.clone())).collect();
            let y = f(&t, &vs).value();
            y.data().iter().zip(r.data()).map(|(a, b)| a * b).sum()
        };

        let mut xs: Vec<Tensor<f64>> = inputs.clone();
        let mut reports = Vec::new();
        let mut worst_fail: Option<Mismatch> = None;
        let mut failures = 0;
        for i in 0..inputs.len() {
            let mut rep = InputReport {
                input: i,
                name: names[i].clone(),
                max_abs_err: 0.0,
                max_rel_err: 0.0,
                worst: Mismatch {
                    input: i,
                    name: names[i].clone(),
                    index: vec![],
                    analytic: 0.0,
                    numeric: 0.0,
                    abs_err: 0.0,
                    allowed: 0.0,
                },
            };
            let mut worst_ratio = -1.0;
            for j in 0..inputs[i].numel() {
                let x0 = inputs[i].data()[j];
                xs[i].data_mut()[j] = x0 + self.eps;
                let lp = loss_at(&xs);
                xs[i].data_mut()[j] = x0 - self.eps;
                let lm = loss_at(&xs);
                xs[i].data_mut()[j] = x0;
                let numeric = (lp - lm) / (2.0 * self.eps);
                let a = analytic[i].data()[j];
                let abs_err = (a - numeric).abs();
                let allowed = self.atol + self.rtol * numeric.abs();
                let m = Mismatch {
                    input: i,
                    name: names[i].clone(),
                    index: unravel(j, inputs[i].shape()),
                    analytic: a,
                    numeric,
                    abs_err,
                    allowed,
                };
                rep.max_abs_err = rep.max_abs_err.max(abs_err);
                rep.max_rel_err = rep.max_rel_err.max(abs_err / numeric.abs().max(self.atol));
                let ratio = if abs_err.is_nan() {
                    f64::INFINITY
                } else {
                    abs_err / allowed
                };
                if ratio > 1.0 {
                    failures += 1;
                    let worse = worst_fail
                        .as_ref()
                        .is_none_or(|w| ratio > w.abs_err / w.allowed);
                    if worse {
                        worst_fail = Some(m.clone());
                    }
                }
                if ratio > worst_ratio {
                    worst_ratio = ratio;
                    rep.worst = m;
                }
            }
            reports.push(rep);
        }
        match worst_fail {
            Some(worst) => Err(GradcheckError::Failed { worst, failures }),
            None => Ok(GradReport { inputs: reports }),
        }
    }
}

/// [`GradCheck::check_gradgrad`] with PyTorch's default tolerances (eps 1e-6, atol 1e-5,
/// rtol 1e-3): the second derivatives of `f`, as PyTorch's `gradgradcheck`.
///
/// ```
/// use tapegrad::prelude::*;
/// let x = Tensor::<f64>::from_vec(vec![0.3, -0.7], [2]);
/// let report = gradgradcheck(|v| (v[0].exp() * v[0].sigmoid()).sum(), &[x]).unwrap();
/// assert!(report.max_rel_err() < 1e-5);
/// ```
pub fn gradgradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<GradReport, GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    GradCheck::default().check_gradgrad(f, inputs)
}

/// [`GradCheck::check`] with PyTorch's default tolerances (eps 1e-6, atol 1e-5, rtol 1e-3).
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>]) -> Result<GradReport, GradcheckError>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    GradCheck::default().check(f, inputs)
}

/// [`GradCheck::check_model`] with PyTorch's default tolerances: a model written as a
/// function of its bound parameters and its inputs, checked with respect to both, the
/// report naming each parameter by its name in the store.
pub fn gradcheck_model<F>(
    store: &ParamStore<f64>,
    f: F,
    inputs: &[Tensor<f64>],
) -> Result<GradReport, GradcheckError>
where
    F: for<'t> Fn(&Bound<'t, f64>, &[Var<'t, f64>]) -> Var<'t, f64>,
{
    GradCheck::default().check_model(store, f, inputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // d/dx of x^2 claimed to be x (wrong by a factor of 2). A `fn` item (or a closure
    // written inline in the call) has the higher-ranked signature gradcheck needs.
    fn wrong<'t>(v: &[Var<'t, f64>]) -> Var<'t, f64> {
        let x = v[0];
        let xv = x.value();
        let y = xv.map(|a| a * a);
        x.tape()
            .record("bad_square", &[x], y, move |g, _| {
                [Some(Tensor::from_fn(g.shape(), |i| {
                    g.data()[i] * xv.data()[i]
                }))]
            })
            .sum()
    }

    #[test]
    fn a_wrong_vjp_is_caught_and_located() {
        let x = Tensor::from_vec(vec![1.0, 2.0, -3.0], [3]);
        let e = gradcheck(wrong, &[x]).unwrap_err();
        assert_eq!(e.failures(), 3);
        assert_eq!(e.worst().unwrap().index, vec![2]);
        assert!(
            e.to_string()
                .starts_with("gradcheck failed on 3 element(s); worst: input 0 at [2]"),
            "{e}"
        );
    }
}
