//! Optimisers: [`Sgd`] (with momentum, Nesterov, weight decay), [`Adam`] (and AdamW, with
//! AMSGrad) and [`RmsProp`], each with
//! PyTorch's exact update rule, updating a [`ParamStore`] in place from [`ParamGrads`].

use crate::error::Error;
use crate::float::Float;
use crate::nn::params::{ParamGrads, ParamId, ParamStore};
use crate::tensor::Tensor;

/// Updates a store's parameters from their gradients, one step at a time.
///
/// The optimiser keeps per-parameter state (momentum, moment estimates) indexed by
/// [`ParamId`], allocated on a parameter's first step; use one
/// optimiser per store. Every parameter is updated at each step, as PyTorch updates every
/// parameter whose `.grad` is a tensor (an unused parameter has a zero gradient here, which
/// still moves momentum and Adam's moments).
///
/// Buffers ([`ParamStore::add_buffer`]: running statistics) are not stepped; each
/// optimiser's step first writes the values the step set for them
/// ([`ParamStore::apply_buffers`]), and an optimiser of your own should too.
///
/// For the update to write in place, clear the tape before the step (see
/// [`ParamStore`]'s training loop): a tape still holding the parameters makes each
/// write copy the buffer first.
pub trait Optimizer<T: Float> {
    /// Applies one update to every parameter of `store` from `grads` (in store order, as
    /// [`Bound::grads`](crate::nn::Bound::grads) returns them).
    ///
    /// # Panics
    /// When `grads` does not match the store (count or shapes), or the optimiser's settings
    /// are out of their domain.
    fn step(&mut self, store: &mut ParamStore<T>, grads: &ParamGrads<T>);
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (for a schedule); the state is kept.
    fn set_lr(&mut self, lr: f64);
    /// The optimiser's name, as its saved state records it.
    fn name(&self) -> &'static str {
        "optimizer"
    }
    /// The per-parameter state (momentum buffers, moment estimates, step counts) as named
    /// tensors in a store of its own, to save beside the parameters
    /// (`opt.state(&store).save(path)`): PyTorch's names after the parameter's
    /// (`w.momentum_buffer`, `w.exp_avg`, `w.exp_avg_sq`, `w.step`) and a marker
    /// `optimizer.<name>`. A parameter not yet stepped has none.
    fn state(&self, params: &ParamStore<T>) -> ParamStore<T> {
        marked(self.name(), params)
    }
    /// Restores the state [`Optimizer::state`] gave for the same parameters, so that a run
    /// stopped and resumed steps to the same bits as one that never stopped. `Err` (with
    /// nothing changed) when the state is another optimiser's, or a tensor of it does not
    /// have its parameter's shape.
    fn load_state(&mut self, params: &ParamStore<T>, state: &ParamStore<T>) -> Result<(), Error> {
        check_marker(self.name(), params, state)
    }
}

/// A store holding only the marker of optimiser `name`.
fn marked<T: Float>(name: &str, _params: &ParamStore<T>) -> ParamStore<T> {
    let mut st = ParamStore::new();
    st.insert(format!("optimizer.{name}"), Tensor::zeros([1]));
    st
}

/// `Err` unless `state` carries the marker of optimiser `name`.
#[track_caller]
fn check_marker<T: Float>(
    name: &'static str,
    _params: &ParamStore<T>,
    state: &ParamStore<T>,
) -> Result<(), Error> {
    let found: Vec<&str> = state
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("optimizer."))
        .collect();
    if found == [name] {
        return Ok(());
    }
    let why = match found.first() {
        Some(other) => format!("the state is {other}'s, not {name}'s"),
        None => "the state has no optimizer.<name> marker: it is not an optimiser's state".into(),
    };
    Err(Error::bad_argument("load_state", why))
}

/// Per parameter, the state tensors `parts` (suffixes) of those that have them, as
/// `(parameter, [tensor per part])`, each checked against the parameter's shape; the steps
/// too when `with_step`. Nothing is returned for a parameter with none of its parts.
#[track_caller]
#[allow(clippy::type_complexity)]
fn read_parts<T: Float>(
    params: &ParamStore<T>,
    state: &ParamStore<T>,
    parts: &[&str],
    with_step: bool,
) -> Result<Vec<Option<(Vec<Vec<T>>, u64)>>, Error> {
    let mut out = Vec::with_capacity(params.len());
    for id in params.ids() {
        let (pname, shape) = (params.name(id), params[id].shape());
        let lookup = |part: &str| state.by_name(&format!("{pname}.{part}")).map(|k| &state[k]);
        if parts.iter().all(|p| lookup(p).is_none()) {
            out.push(None);
            continue;
        }
        let mut tensors = Vec::with_capacity(parts.len());
        for part in parts {
            let Some(t) = lookup(part) else {
                return Err(Error::bad_argument(
                    "load_state",
                    format!("{pname}.{part} is missing"),
                ));
            };
            if t.shape() != shape {
                let why = format!(
                    "{pname}.{part} has shape {} but the parameter has shape {shape}",
                    t.shape()
                );
                return Err(Error::bad_argument("load_state", why));
            }
            tensors.push(t.to_vec());
        }
        let step = if with_step {
            let s = lookup("step").map(|t| t.to_vec());
            match s.as_deref() {
                Some([v]) if v.to_f64() >= 1.0 && v.to_f64().fract() == 0.0 => v.to_f64() as u64,
                _ => {
                    return Err(Error::bad_argument(
                        "load_state",
                        format!("{pname}.step is missing or not a step count"),
                    ));
                }
            }
        } else {
            0
        };
        out.push(Some((tensors, step)));
    }
    Ok(out)
}

/// Puts `data` into `state` as `{parameter}.{part}`, of the parameter's shape.
fn put<T: Float>(
    state: &mut ParamStore<T>,
    params: &ParamStore<T>,
    id: ParamId,
    part: &str,
    data: &[T],
) {
    let t = Tensor::from_vec(data.to_vec(), params[id].shape().clone());
    state.insert(format!("{}.{part}", params.name(id)), t);
}

/// Stochastic gradient descent, as `torch.optim.SGD`. For each parameter `p` with
/// gradient `g`, at step `t`:
///
/// ```text
/// g ← g + weight_decay · p                      (if weight_decay ≠ 0)
/// b ← g  at t = 1,  else  momentum · b + (1 − dampening) · g      (if momentum ≠ 0)
/// g ← g + momentum · b   if nesterov,  else  g ← b                 (if momentum ≠ 0)
/// p ← p − lr · g
/// ```
///
/// Built as `Sgd::new(lr)` (plain) with the options chained:
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Optimizer, ParamGrads, ParamStore, Sgd};
/// let mut store = ParamStore::<f64>::new();
/// let w = store.insert("w", Tensor::from_vec(vec![1.0], [1]));
/// let mut opt = Sgd::new(0.1).momentum(0.9).nesterov(true).weight_decay(1e-4);
/// let g = ParamGrads::from_tensors(vec![Tensor::from_vec(vec![1.0], [1])]);
/// opt.step(&mut store, &g);
/// // g = 1 + 1e-4 · 1; b = g; p = 1 − 0.1 · (g + 0.9 b)
/// assert!((store[w][[0]] - (1.0 - 0.1 * 1.9 * 1.0001)).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<T: Float = f32> {
    /// The learning rate (≥ 0).
    pub lr: f64,
    /// The momentum factor (≥ 0; 0 turns momentum off).
    pub momentum: f64,
    /// The dampening of the gradient's contribution to the momentum buffer (PyTorch's
    /// `dampening`; 0 by default).
    pub dampening: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening = 0`).
    pub nesterov: bool,
    /// The L2 penalty added to the gradient (≥ 0).
    pub weight_decay: f64,
    buffers: Vec<Option<Vec<T>>>,
}

impl<T: Float> Sgd<T> {
    /// Plain SGD with learning rate `lr`: no momentum, no weight decay.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        check_non_negative("Sgd", "lr", lr);
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            buffers: Vec::new(),
        }
    }

    /// Sets the momentum factor (PyTorch's `momentum`).
    ///
    /// # Panics
    /// When `m` is negative or NaN.
    #[track_caller]
    pub fn momentum(mut self, m: f64) -> Self {
        check_non_negative("Sgd", "momentum", m);
        self.momentum = m;
        self
    }

    /// Sets the dampening (PyTorch's `dampening`).
    ///
    /// # Panics
    /// When `d` is NaN.
    #[track_caller]
    pub fn dampening(mut self, d: f64) -> Self {
        assert!(!d.is_nan(), "Sgd: dampening must be a number, not NaN");
        self.dampening = d;
        self
    }

    /// Turns Nesterov momentum on or off (PyTorch's `nesterov`); it needs a momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }

    /// Sets the weight decay (PyTorch's `weight_decay`, an L2 penalty on the gradient).
    ///
    /// # Panics
    /// When `wd` is negative or NaN.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        check_non_negative("Sgd", "weight_decay", wd);
        self.weight_decay = wd;
        self
    }

    #[track_caller]
    fn check(&self) {
        check_non_negative("Sgd", "lr", self.lr);
        check_non_negative("Sgd", "momentum", self.momentum);
        check_non_negative("Sgd", "weight_decay", self.weight_decay);
        assert!(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "Sgd: Nesterov momentum needs momentum > 0 and dampening 0 (momentum is {}, dampening {})",
            self.momentum,
            self.dampening
        );
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore<T>, grads: &ParamGrads<T>) {
        self.check();
        begin_step("Sgd", store, grads);
        let lr = T::from_f64(self.lr);
        let m = T::from_f64(self.momentum);
        let keep = T::from_f64(1.0 - self.dampening);
        let wd = T::from_f64(self.weight_decay);
        let (use_wd, use_m) = (self.weight_decay != 0.0, self.momentum != 0.0);
        if self.buffers.len() < store.len() {
            self.buffers.resize(store.len(), None);
        }
        for id in store.ids() {
            if store.is_buffer(id) {
                continue;
            }
            let n = store[id].numel();
            let g = grads[id].data();
            let buf = &mut self.buffers[id.index()];
            if let Some(b) = buf {
                check_state_len("Sgd", store.name(id), b.len(), n);
            }
            let p = store[id].data_mut();
            match buf {
                _ if !use_m => {
                    for (p, &g) in p.iter_mut().zip(g) {
                        let g = if use_wd { g + wd * *p } else { g };
                        *p -= lr * g;
                    }
                }
                None => {
                    // The first step: the buffer is the gradient itself, undampened.
                    let mut b = Vec::with_capacity(p.len());
                    for (p, &g) in p.iter_mut().zip(g) {
                        let g = if use_wd { g + wd * *p } else { g };
                        b.push(g);
                        let g = if self.nesterov { g + m * g } else { g };
                        *p -= lr * g;
                    }
                    *buf = Some(b);
                }
                Some(b) => {
                    for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                        let g = if use_wd { g + wd * *p } else { g };
                        *b = m * *b + keep * g;
                        let g = if self.nesterov { g + m * *b } else { *b };
                        *p -= lr * g;
                    }
                }
            }
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn name(&self) -> &'static str {
        "Sgd"
    }

    fn state(&self, params: &ParamStore<T>) -> ParamStore<T> {
        let mut st = marked(self.name(), params);
        for id in params.ids() {
            if let Some(Some(b)) = self.buffers.get(id.index()) {
                put(&mut st, params, id, "momentum_buffer", b);
            }
        }
        st
    }

    fn load_state(&mut self, params: &ParamStore<T>, state: &ParamStore<T>) -> Result<(), Error> {
        check_marker(self.name(), params, state)?;
        let parts = read_parts(params, state, &["momentum_buffer"], false)?;
        self.buffers = parts
            .into_iter()
            .map(|p| p.map(|(mut t, _)| t.remove(0)))
            .collect();
        Ok(())
    }
}

/// Adam, as `torch.optim.Adam` (and AdamW, and AMSGrad: see the fields). For each parameter `p` with gradient
/// `g`, at its step `t` (from 1):
///
/// ```text
/// g ← g + weight_decay · p                      (if weight_decay ≠ 0)
/// m ← m + (1 − β₁)(g − m)                       (m, v start at 0)
/// v ← β₂ v + (1 − β₂) g²
/// p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + eps)
/// ```
///
/// that is `p ← p − lr · m̂ / (√v̂ + eps)` with the bias-corrected moments, `eps` added after
/// the square root as PyTorch does. Defaults: `betas = (0.9, 0.999)`, `eps = 1e-8`, no
/// weight decay (an L2 penalty on the gradient, not AdamW's decoupled decay).
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Adam, Optimizer, ParamGrads, ParamStore};
/// let mut store = ParamStore::<f64>::new();
/// let w = store.insert("w", Tensor::from_vec(vec![0.0, 0.0], [2]));
/// let mut opt = Adam::new(0.1);
/// let g = ParamGrads::from_tensors(vec![Tensor::from_vec(vec![2.0, -0.001], [2])]);
/// opt.step(&mut store, &g);
/// // The first step moves each element by about lr, against its gradient's sign.
/// assert!((store[w][[0]] + 0.1).abs() < 1e-8 && (store[w][[1]] - 0.1).abs() < 1e-5);
/// ```
#[derive(Clone, Debug)]
pub struct Adam<T: Float = f32> {
    /// The learning rate (≥ 0).
    pub lr: f64,
    /// The decay rates `(β₁, β₂)` of the first and second moment estimates, each in `[0, 1)`.
    pub betas: (f64, f64),
    /// Added to the denominator for numerical stability (≥ 0).
    pub eps: f64,
    /// The weight decay (≥ 0): an L2 penalty added to the gradient, or with `decoupled`
    /// a shrinking of the parameters before the step (AdamW).
    pub weight_decay: f64,
    /// Decoupled weight decay, `p ← p (1 − lr · weight_decay)` (AdamW), instead of the L2
    /// penalty.
    pub decoupled: bool,
    /// The AMSGrad variant: the denominator uses the largest second moment seen so far.
    pub amsgrad: bool,
    state: Vec<Option<AdamState<T>>>,
}

#[derive(Clone, Debug)]
struct AdamState<T> {
    step: u64,
    m: Vec<T>,
    v: Vec<T>,
    /// The running maximum of `v` (AMSGrad only; empty otherwise).
    v_max: Vec<T>,
}

/// AdamW, as `torch.optim.AdamW`: [`Adam`] with decoupled weight decay, 0.01 by default.
///
/// ```
/// use tapegrad::nn::{Adam, AdamW};
/// let opt: Adam<f32> = AdamW::new(1e-3).weight_decay(0.05).amsgrad(true);
/// assert!(opt.decoupled && opt.amsgrad);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AdamW;

impl AdamW {
    /// An [`Adam`] with learning rate `lr`, decoupled weight decay 0.01 and PyTorch's
    /// defaults for the rest.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    #[track_caller]
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: Float>(lr: f64) -> Adam<T> {
        let mut a = Adam::new(lr).weight_decay(0.01);
        a.decoupled = true;
        a
    }
}

impl<T: Float> Adam<T> {
    /// Adam with learning rate `lr` and PyTorch's defaults for the rest.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        check_non_negative("Adam", "lr", lr);
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            amsgrad: false,
            state: Vec::new(),
        }
    }

    /// Turns the AMSGrad variant on or off.
    pub fn amsgrad(mut self, on: bool) -> Self {
        self.amsgrad = on;
        self
    }

    /// Sets `(β₁, β₂)`.
    ///
    /// # Panics
    /// When either is outside `[0, 1)`.
    #[track_caller]
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self.check();
        self
    }

    /// Sets `eps`.
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    #[track_caller]
    pub fn eps(mut self, eps: f64) -> Self {
        check_non_negative("Adam", "eps", eps);
        self.eps = eps;
        self
    }

    /// Sets the weight decay (an L2 penalty added to the gradient, PyTorch's `weight_decay`).
    ///
    /// # Panics
    /// When `wd` is negative or NaN.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        check_non_negative("Adam", "weight_decay", wd);
        self.weight_decay = wd;
        self
    }

    #[track_caller]
    fn check(&self) {
        check_non_negative("Adam", "lr", self.lr);
        check_non_negative("Adam", "eps", self.eps);
        check_non_negative("Adam", "weight_decay", self.weight_decay);
        for (i, b) in [self.betas.0, self.betas.1].into_iter().enumerate() {
            assert!(
                (0.0..1.0).contains(&b),
                "Adam: beta{} must be in [0, 1), not {b}",
                i + 1
            );
        }
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore<T>, grads: &ParamGrads<T>) {
        self.check();
        begin_step("Adam", store, grads);
        let (b1, b2) = self.betas;
        let wd = T::from_f64(self.weight_decay);
        let use_wd = self.weight_decay != 0.0;
        let (one_m_b1, b2t, one_m_b2) = (
            T::from_f64(1.0 - b1),
            T::from_f64(b2),
            T::from_f64(1.0 - b2),
        );
        let eps = T::from_f64(self.eps);
        if self.state.len() < store.len() {
            self.state.resize(store.len(), None);
        }
        let (amsgrad, decoupled) = (self.amsgrad, self.decoupled);
        // Decoupled decay shrinks the parameter first, by lr · wd (PyTorch's order).
        let shrink = T::from_f64(1.0 - self.lr * self.weight_decay);
        for id in store.ids() {
            if store.is_buffer(id) {
                continue;
            }
            let n = store[id].numel();
            let st = self.state[id.index()].get_or_insert_with(|| AdamState {
                step: 0,
                m: crate::runtime::buffers::zeroed(n),
                v: crate::runtime::buffers::zeroed(n),
                v_max: if amsgrad {
                    crate::runtime::buffers::zeroed(n)
                } else {
                    Vec::new()
                },
            });
            check_state_len("Adam", store.name(id), st.m.len(), n);
            if amsgrad && st.v_max.len() != n {
                st.v_max = crate::runtime::buffers::zeroed(n);
            }
            st.step += 1;
            // The scalar factors in f64, as PyTorch computes them from Python floats.
            let t = st.step as f64;
            let step_size = T::from_f64(self.lr / (1.0 - b1.powf(t)));
            let bc2_sqrt = T::from_f64((1.0 - b2.powf(t)).sqrt());
            let g = grads[id].data();
            let p = store[id].data_mut();
            let mut v_max = st.v_max.iter_mut();
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut st.m).zip(&mut st.v) {
                let g = if use_wd && !decoupled { g + wd * *p } else { g };
                if use_wd && decoupled {
                    *p *= shrink;
                }
                *m += one_m_b1 * (g - *m);
                *v = *v * b2t + one_m_b2 * g * g;
                let second = match v_max.next() {
                    Some(vm) => {
                        *vm = vm.max(*v);
                        *vm
                    }
                    None => *v,
                };
                let denom = second.sqrt() / bc2_sqrt + eps;
                *p -= step_size * (*m / denom);
            }
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn name(&self) -> &'static str {
        "Adam"
    }

    fn state(&self, params: &ParamStore<T>) -> ParamStore<T> {
        let mut st = marked(self.name(), params);
        for id in params.ids() {
            if let Some(Some(a)) = self.state.get(id.index()) {
                put(&mut st, params, id, "exp_avg", &a.m);
                put(&mut st, params, id, "exp_avg_sq", &a.v);
                if !a.v_max.is_empty() {
                    put(&mut st, params, id, "max_exp_avg_sq", &a.v_max);
                }
                let step = Tensor::from_vec(vec![T::from_f64(a.step as f64)], [1]);
                st.insert(format!("{}.step", params.name(id)), step);
            }
        }
        st
    }

    fn load_state(&mut self, params: &ParamStore<T>, state: &ParamStore<T>) -> Result<(), Error> {
        check_marker(self.name(), params, state)?;
        let parts: &[&str] = if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        };
        let read = read_parts(params, state, parts, true)?;
        self.state = read
            .into_iter()
            .map(|p| {
                p.map(|(mut t, step)| {
                    let v_max = if t.len() == 3 {
                        t.pop().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let v = t.pop().unwrap_or_default();
                    let m = t.pop().unwrap_or_default();
                    AdamState { step, m, v, v_max }
                })
            })
            .collect();
        Ok(())
    }
}

/// RMSprop, as `torch.optim.RMSprop`. For each parameter `p` with gradient `g`:
///
/// ```text
/// g ← g + weight_decay · p                               (if weight_decay ≠ 0)
/// v ← α v + (1 − α) g²
/// d ← √(v − ḡ²) + eps with ḡ ← α ḡ + (1 − α) g  if centered,  else  √v + eps
/// b ← momentum · b + g / d,  p ← p − lr · b              (if momentum ≠ 0)
/// p ← p − lr · g / d                                     (otherwise)
/// ```
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Optimizer, ParamGrads, ParamStore, RmsProp};
/// let mut store = ParamStore::<f64>::new();
/// let w = store.insert("w", Tensor::from_vec(vec![1.0], [1]));
/// let mut opt = RmsProp::new(0.01);
/// opt.step(&mut store, &ParamGrads::from_tensors(vec![Tensor::from_vec(vec![2.0], [1])]));
/// // v = 0.01 · 4, so the step is 0.01 · 2 / (0.2 + 1e-8).
/// assert!((store[w][[0]] - (1.0 - 0.02 / (0.2 + 1e-8))).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct RmsProp<T: Float = f32> {
    /// The learning rate (≥ 0).
    pub lr: f64,
    /// The smoothing constant α of the squared-gradient average, in `[0, 1]`.
    pub alpha: f64,
    /// Added to the denominator (≥ 0).
    pub eps: f64,
    /// The L2 penalty added to the gradient (≥ 0).
    pub weight_decay: f64,
    /// The momentum factor (≥ 0; 0 turns momentum off).
    pub momentum: f64,
    /// Normalise by the gradient's estimated variance instead of its second moment.
    pub centered: bool,
    state: Vec<Option<RmsState<T>>>,
}

#[derive(Clone, Debug)]
struct RmsState<T> {
    v: Vec<T>,
    mean: Vec<T>,
    buf: Vec<T>,
}

impl<T: Float> RmsProp<T> {
    /// RMSprop with learning rate `lr` and PyTorch's defaults: α 0.99, eps 1e-8, no weight
    /// decay, no momentum, not centred.
    ///
    /// # Panics
    /// When `lr` is negative or NaN.
    #[track_caller]
    pub fn new(lr: f64) -> Self {
        check_non_negative("RmsProp", "lr", lr);
        RmsProp {
            lr,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            state: Vec::new(),
        }
    }

    /// Sets α.
    ///
    /// # Panics
    /// When α is outside `[0, 1]`.
    #[track_caller]
    pub fn alpha(mut self, alpha: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&alpha),
            "RmsProp: alpha must be in [0, 1], not {alpha}"
        );
        self.alpha = alpha;
        self
    }

    /// Sets `eps`.
    ///
    /// # Panics
    /// When `eps` is negative or NaN.
    #[track_caller]
    pub fn eps(mut self, eps: f64) -> Self {
        check_non_negative("RmsProp", "eps", eps);
        self.eps = eps;
        self
    }

    /// Sets the weight decay (an L2 penalty added to the gradient).
    ///
    /// # Panics
    /// When `wd` is negative or NaN.
    #[track_caller]
    pub fn weight_decay(mut self, wd: f64) -> Self {
        check_non_negative("RmsProp", "weight_decay", wd);
        self.weight_decay = wd;
        self
    }

    /// Sets the momentum.
    ///
    /// # Panics
    /// When `m` is negative or NaN.
    #[track_caller]
    pub fn momentum(mut self, m: f64) -> Self {
        check_non_negative("RmsProp", "momentum", m);
        self.momentum = m;
        self
    }

    /// Turns centring on or off.
    pub fn centered(mut self, on: bool) -> Self {
        self.centered = on;
        self
    }
}

impl<T: Float> Optimizer<T> for RmsProp<T> {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore<T>, grads: &ParamGrads<T>) {
        check_non_negative("RmsProp", "lr", self.lr);
        begin_step("RmsProp", store, grads);
        let (a, one_m_a) = (T::from_f64(self.alpha), T::from_f64(1.0 - self.alpha));
        let (wd, eps, lr, mom) = (
            T::from_f64(self.weight_decay),
            T::from_f64(self.eps),
            T::from_f64(self.lr),
            T::from_f64(self.momentum),
        );
        let (use_wd, use_mom, centered) =
            (self.weight_decay != 0.0, self.momentum > 0.0, self.centered);
        if self.state.len() < store.len() {
            self.state.resize(store.len(), None);
        }
        for id in store.ids() {
            if store.is_buffer(id) {
                continue;
            }
            let n = store[id].numel();
            let zeros = |on: bool| {
                if on {
                    crate::runtime::buffers::zeroed(n)
                } else {
                    Vec::new()
                }
            };
            let st = self.state[id.index()].get_or_insert_with(|| RmsState {
                v: zeros(true),
                mean: zeros(centered),
                buf: zeros(use_mom),
            });
            check_state_len("RmsProp", store.name(id), st.v.len(), n);
            if centered && st.mean.len() != n {
                st.mean = zeros(true);
            }
            if use_mom && st.buf.len() != n {
                st.buf = zeros(true);
            }
            let g = grads[id].data();
            let p = store[id].data_mut();
            let (mut means, mut bufs) = (st.mean.iter_mut(), st.buf.iter_mut());
            for ((p, &g), v) in p.iter_mut().zip(g).zip(&mut st.v) {
                let g = if use_wd { g + wd * *p } else { g };
                *v = *v * a + one_m_a * g * g;
                let d = match means.next().filter(|_| centered) {
                    Some(m) => {
                        *m = *m * a + one_m_a * g;
                        (*v - *m * *m).sqrt() + eps
                    }
                    None => v.sqrt() + eps,
                };
                match bufs.next().filter(|_| use_mom) {
                    Some(b) => {
                        *b = *b * mom + g / d;
                        *p -= lr * *b;
                    }
                    None => *p -= lr * (g / d),
                }
            }
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn name(&self) -> &'static str {
        "RmsProp"
    }

    fn state(&self, params: &ParamStore<T>) -> ParamStore<T> {
        let mut st = marked(self.name(), params);
        for id in params.ids() {
            if let Some(Some(r)) = self.state.get(id.index()) {
                put(&mut st, params, id, "square_avg", &r.v);
                if !r.mean.is_empty() {
                    put(&mut st, params, id, "grad_avg", &r.mean);
                }
                if !r.buf.is_empty() {
                    put(&mut st, params, id, "momentum_buffer", &r.buf);
                }
            }
        }
        st
    }

    fn load_state(&mut self, params: &ParamStore<T>, state: &ParamStore<T>) -> Result<(), Error> {
        check_marker(self.name(), params, state)?;
        let mut parts = vec!["square_avg"];
        if self.centered {
            parts.push("grad_avg");
        }
        if self.momentum > 0.0 {
            parts.push("momentum_buffer");
        }
        let read = read_parts(params, state, &parts, false)?;
        let (centered, momentum) = (self.centered, self.momentum > 0.0);
        self.state = read
            .into_iter()
            .map(|p| {
                p.map(|(mut t, _)| {
                    let buf = if momentum {
                        t.pop().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    let mean = if centered {
                        t.pop().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    RmsState {
                        v: t.pop().unwrap_or_default(),
                        mean,
                        buf,
                    }
                })
            })
            .collect();
        Ok(())
    }
}

#[track_caller]
fn check_non_negative(opt: &str, what: &str, v: f64) {
    assert!(v >= 0.0, "{opt}: {what} must be >= 0, not {v}");
}

/// Checks `grads` against the store, then writes the buffers' new values they carry.
#[track_caller]
fn begin_step<T: Float>(opt: &str, store: &mut ParamStore<T>, grads: &ParamGrads<T>) {
    assert!(
        grads.len() == store.len(),
        "{opt}::step: {} gradients for a store of {} parameters; take them with bind(..).grads(..) from this store",
        grads.len(),
        store.len()
    );
    for (id, g) in store.ids().zip(grads.iter()) {
        assert!(
            g.shape() == store[id].shape(),
            "{opt}::step: the gradient of {:?} has shape {} but the parameter has shape {}",
            store.name(id),
            g.shape(),
            store[id].shape()
        );
    }
    store.apply_buffers(grads);
}

#[track_caller]
fn check_state_len(opt: &str, name: &str, state: usize, now: usize) {
    assert!(
        state == now,
        "{opt}::step: parameter {name:?} has {now} elements but had {state} at the previous step; \
         an optimiser's state is sized by the parameters it first saw"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::ParamId;
    use crate::tape::Tape;
    use crate::tensor::Tensor;

    fn one(v: f64) -> Tensor<f64> {
        Tensor::from_vec(vec![v], [1])
    }

    fn run<O: Optimizer<f64>>(mut opt: O, p0: f64, grads: &[f64]) -> Vec<f64> {
        let mut s = ParamStore::new();
        let w = s.insert("w", one(p0));
        grads
            .iter()
            .map(|&g| {
                opt.step(&mut s, &ParamGrads::from_tensors(vec![one(g)]));
                s[w].item()
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol,
                "element {i}: {x} vs {y} (tol {tol})\n{a:?}\n{b:?}"
            );
        }
    }

    #[test]
    fn sgd_by_hand() {
        // p ← p − 0.1 g
        close(&run(Sgd::new(0.1), 1.0, &[1.0, -2.0]), &[0.9, 1.1], 1e-15);
        // b = 1, 1.9, 2.71; p = 1 − 0.1 Σ b
        close(
            &run(Sgd::new(0.1).momentum(0.9), 1.0, &[1.0; 3]),
            &[0.9, 0.71, 0.439],
            1e-15,
        );
        // Nesterov: g + 0.9 b = 1.9, 2.71, 3.439
        close(
            &run(Sgd::new(0.1).momentum(0.9).nesterov(true), 1.0, &[1.0; 3]),
            &[0.81, 0.539, 0.1951],
            1e-15,
        );
        // Weight decay alone with g = 0: p ← p (1 − 0.1 · 0.5)
        close(
            &run(Sgd::new(0.1).weight_decay(0.5), 1.0, &[0.0; 2]),
            &[0.95, 0.9025],
            1e-15,
        );
        // Dampening 0.5 spares the first step: b = 1, 0.9 + 0.5 = 1.4
        close(
            &run(Sgd::new(0.1).momentum(0.9).dampening(0.5), 1.0, &[1.0; 2]),
            &[0.9, 0.76],
            1e-15,
        );
    }

    #[test]
    fn adam_by_hand() {
        // t = 1: m = 0.2, v = 0.004, m̂ = 2, v̂ = 4: p = −0.1 · 2 / (2 + 1e-8)
        // t = 2: m = 0.08, v = 0.004996, m̂ = 0.08 / 0.19, v̂ = 0.004996 / 0.001999
        // t = 3: m = 0.122, v = 0.005241004, bias corrections 0.271 and 0.002997001
        let p = run(Adam::new(0.1), 0.0, &[2.0, -1.0, 0.5]);
        let p1 = -0.1 * 2.0 / (2.0 + 1e-8);
        let p2 = p1 - 0.1 * (0.08 / 0.19) / ((0.004996f64 / 0.001999).sqrt() + 1e-8);
        let p3 = p2 - 0.1 * (0.122 / 0.271) / ((0.005241004f64 / 0.002997001).sqrt() + 1e-8);
        close(&p, &[p1, p2, p3], 1e-14);
        close(
            &p,
            &[-0.0999999995, -0.12663370329756846, -0.16067661786105733],
            1e-14,
        );
    }

    // Made by scripts/optim_fixture.py (torch.optim, float64): the parameters w [2, 3] then
    // b [2], flattened, after 3 steps from fixed values with fixed gradients.
    const TORCH: &[(&str, [f64; 8])] = &[
        ("sgd", [0.48, -1.03, 1.98, 0.13, 0.025, -0.79, 0.98, -2.18]),
        (
            "sgd_momentum",
            [
                0.4359,
                -1.0048,
                2.016,
                -0.036500000000000046,
                0.1105,
                -0.8593000000000001,
                0.9349999999999999,
                -2.4320000000000004,
            ],
        ),
        (
            "sgd_nesterov",
            [
                0.42231,
                -1.03432,
                1.9944000000000002,
                -0.12785000000000005,
                0.12445,
                -0.8883700000000001,
                0.9215,
                -2.5688,
            ],
        ),
        (
            "sgd_weight_decay",
            [
                0.4656485,
                -1.000597,
                1.920198,
                0.12455975000000001,
                0.024005,
                -0.76692725,
                0.9507990000000001,
                -2.1176180000000002,
            ],
        ),
        (
            "sgd_all",
            [
                0.45424950999999997,
                -0.95242752,
                1.91670302,
                0.09621645249999995,
                0.05162122500000001,
                -0.7624991175,
                0.93542301,
                -2.11933092,
            ],
        ),
        (
            "sgd_nesterov_wd",
            [
                0.44663019531250003,
                -1.014972890625,
                1.92867415625,
                0.03519036328125002,
                0.05494171875000001,
                -0.8061615898437501,
                0.932624578125,
                -2.26501603125,
            ],
        ),
        (
            "adam",
            [
                0.4782431522889793,
                -0.9919099479991351,
                2.005314940682238,
                0.23519955294183748,
                0.018473254077689467,
                -0.7752224392788681,
                0.990914693096124,
                -2.0167552685231422,
            ],
        ),
        (
            "adam_all",
            [
                0.2684642043888144,
                -0.8611451203293312,
                1.8505239870464167,
                0.10691921837864576,
                0.16718662130411538,
                -0.9511784412144445,
                0.7769170178534751,
                -2.132830056557388,
            ],
        ),
        (
            "adam_amsgrad",
            [
                0.28243152288979295,
                -0.91909947999135,
                2.0531494068223815,
                0.10199552941837484,
                0.1846990294861649,
                -1.0022243927886814,
                0.9091469309612404,
                -2.1675526852314255,
            ],
        ),
        (
            "adamw",
            [
                0.28122470047759734,
                -0.9163290126836363,
                2.0470809911426553,
                0.10146063121990043,
                0.18446563495737472,
                -0.9996797068363416,
                0.906224343641493,
                -2.161332149528627,
            ],
        ),
        (
            "adamw_all",
            [
                0.2511425254220199,
                -0.8524728349122772,
                1.8738977968990722,
                0.09397350991113654,
                0.16382097952934968,
                -0.9196330438588234,
                0.824495710653279,
                -1.9782907769698503,
            ],
        ),
        (
            "rmsprop",
            [
                0.35874760784740667,
                -1.0323753029171643,
                2.0166666532407453,
                0.16919889439514008,
                0.05491833894617024,
                -0.8787252491735592,
                0.9516397890605408,
                -2.089055555216849,
            ],
        ),
        (
            "rmsprop_all",
            [
                0.047466430278349694,
                -0.8444848341385718,
                1.731020542139308,
                0.029691552928064194,
                0.2004836084051624,
                -1.0523367943026134,
                0.5211401371462842,
                -2.1988155389177777,
            ],
        ),
        (
            "rmsprop_momentum",
            [
                -0.29535282748694147,
                -0.8035731264559857,
                2.213333261481502,
                -0.1534087327883452,
                0.45183660949235394,
                -1.4496438176602515,
                0.7232796141210747,
                -2.4392887110506822,
            ],
        ),
    ];

    const P0: [f64; 8] = [0.5, -1.0, 2.0, 0.25, 0.0, -0.75, 1.0, -2.0];
    const GRADS: [[f64; 8]; 3] = [
        [0.1, -0.2, 0.0, 1.5, -0.5, 0.3, 0.0, 2.0],
        [0.3, 0.1, -0.4, -1.0, 0.0, 0.2, 0.5, -1.0],
        [-0.2, 0.4, 0.6, 0.7, 0.25, -0.1, -0.3, 0.8],
    ];

    fn optimiser<T: Float>(name: &str) -> Box<dyn Optimizer<T>> {
        match name {
            "sgd" => Box::new(Sgd::new(0.1)),
            "sgd_momentum" => Box::new(Sgd::new(0.1).momentum(0.9)),
            "sgd_nesterov" => Box::new(Sgd::new(0.1).momentum(0.9).nesterov(true)),
            "sgd_weight_decay" => Box::new(Sgd::new(0.1).weight_decay(0.1)),
            "sgd_all" => Box::new(
                Sgd::new(0.05)
                    .momentum(0.8)
                    .dampening(0.3)
                    .weight_decay(0.2),
            ),
            "sgd_nesterov_wd" => Box::new(
                Sgd::new(0.1)
                    .momentum(0.5)
                    .nesterov(true)
                    .weight_decay(0.05),
            ),
            "adam" => Box::new(Adam::new(0.01)),
            "adam_all" => Box::new(Adam::new(0.1).betas(0.8, 0.99).eps(1e-6).weight_decay(0.1)),
            "adam_amsgrad" => Box::new(Adam::new(0.1).amsgrad(true)),
            "adamw" => Box::new(AdamW::new(0.1)),
            "adamw_all" => Box::new(
                AdamW::new(0.1)
                    .betas(0.8, 0.99)
                    .eps(1e-6)
                    .weight_decay(0.3)
                    .amsgrad(true),
            ),
            "rmsprop" => Box::new(RmsProp::new(0.01)),
            "rmsprop_all" => Box::new(
                RmsProp::new(0.05)
                    .alpha(0.9)
                    .eps(1e-6)
                    .weight_decay(0.1)
                    .momentum(0.5)
                    .centered(true),
            ),
            "rmsprop_momentum" => Box::new(RmsProp::new(0.02).momentum(0.9)),
            _ => unreachable!(),
        }
    }

    fn three_steps<T: Float>(name: &str) -> Vec<f64> {
        let split = |v: &[f64]| {
            vec![
                Tensor::<f64>::from_vec(v[..6].to_vec(), [2, 3]).cast::<T>(),
                Tensor::<f64>::from_vec(v[6..].to_vec(), [2]).cast::<T>(),
            ]
        };
        let mut s = ParamStore::<T>::new();
        let [w, b] = split(&P0).try_into().unwrap();
        s.insert("w", w);
        s.insert("b", b);
        let mut opt = optimiser::<T>(name);
        for g in &GRADS {
            opt.step(&mut s, &ParamGrads::from_tensors(split(g)));
        }
        s.iter()
            .flat_map(|(_, t)| t.to_vec())
            .map(|v| v.to_f64())
            .collect()
    }

    #[test]
    fn matches_pytorch() {
        let mut worst = (0.0f64, 0.0f64);
        for (name, want) in TORCH {
            let got = three_steps::<f64>(name);
            close(&got, want, 1e-6);
            let got32 = three_steps::<f32>(name);
            close(&got32, want, 1e-5);
            for (i, w) in want.iter().enumerate() {
                worst.0 = worst.0.max((got[i] - w).abs());
                worst.1 = worst.1.max((got32[i] - w).abs());
            }
        }
        println!(
            "largest difference from PyTorch: f64 {:e}, f32 {:e}",
            worst.0, worst.1
        );
    }

    #[test]
    fn learning_rate_can_change() {
        let mut opt: Sgd<f64> = Sgd::new(0.1).momentum(0.9);
        assert_eq!(opt.lr(), 0.1);
        opt.set_lr(0.01);
        assert_eq!(Optimizer::lr(&opt), 0.01);
        let mut a: Adam<f32> = Adam::new(1e-3);
        a.set_lr(0.5);
        assert_eq!(a.lr(), 0.5);
    }

    #[test]
    fn state_is_allocated_per_parameter_on_its_first_step() {
        let mut s = ParamStore::<f64>::new();
        let w = s.insert("w", one(0.0));
        let mut opt = Adam::new(0.1);
        for _ in 0..5 {
            opt.step(&mut s, &ParamGrads::from_tensors(vec![one(1.0)]));
        }
        // A parameter added later starts at its own step 1: it moves by about lr.
        let v = s.insert("v", one(0.0));
        let before = s[w].item();
        opt.step(&mut s, &ParamGrads::from_tensors(vec![one(1.0), one(1.0)]));
        assert!((s[v].item() + 0.1).abs() < 1e-7, "{}", s[v].item());
        assert!(s[w].item() < before);
    }

    #[test]
    fn a_step_after_clear_is_in_place_and_one_before_is_correct() {
        let mut s = ParamStore::<f64>::new();
        let w = s.insert("w", Tensor::from_vec(vec![1.0, 2.0], [2]));
        let mut opt = Sgd::new(0.5).momentum(0.9);
        let mut tape = Tape::new();

        // Stepping while the tape holds the parameter: a copy, and the tape's value is intact.
        let p = s.bind(&tape);
        let grads = p.grads(&tape.backward(p[w].sum()));
        let held = p[w].value();
        assert!(held.shares_buffer(&s[w]));
        opt.step(&mut s, &grads);
        assert!(
            !held.shares_buffer(&s[w]),
            "the update copied the shared buffer"
        );
        assert_eq!(held.to_vec(), vec![1.0, 2.0]);
        assert_eq!(s[w].to_vec(), vec![0.5, 1.5]);
        drop(held);

        // The natural loop: clear, then step: the buffer is updated where it is.
        tape.clear();
        let p = s.bind(&tape);
        let grads = p.grads(&tape.backward(p[w].sum()));
        tape.clear();
        let before = s[w].clone();
        let ptr = before.data().as_ptr();
        drop(before);
        opt.step(&mut s, &grads);
        assert_eq!(
            s[w].data().as_ptr(),
            ptr,
            "the step after clear wrote in place"
        );
        // b = 0.9 + 1 = 1.9
        assert_eq!(s[w].to_vec(), vec![0.5 - 0.95, 1.5 - 0.95]);
    }

    #[test]
    #[should_panic(expected = "Sgd::step: 1 gradients for a store of 2 parameters")]
    fn wrong_number_of_gradients() {
        let mut s = ParamStore::<f64>::new();
        s.insert("a", one(0.0));
        s.insert("b", one(0.0));
        Sgd::new(0.1).step(&mut s, &ParamGrads::from_tensors(vec![one(1.0)]));
    }

    #[test]
    #[should_panic(
        expected = "Adam::step: the gradient of \"a\" has shape [2] but the parameter has shape [1]"
    )]
    fn wrong_gradient_shape() {
        let mut s = ParamStore::<f64>::new();
        s.insert("a", one(0.0));
        let g = ParamGrads::from_tensors(vec![Tensor::zeros([2])]);
        Adam::new(0.1).step(&mut s, &g);
    }

    #[test]
    #[should_panic(
        expected = "Sgd::step: parameter \"a\" has 2 elements but had 1 at the previous step"
    )]
    fn a_resized_parameter_is_refused() {
        let mut s = ParamStore::<f64>::new();
        let a = s.insert("a", one(0.0));
        let mut opt = Sgd::new(0.1).momentum(0.5);
        opt.step(&mut s, &ParamGrads::from_tensors(vec![one(1.0)]));
        s[a] = Tensor::zeros([2]);
        opt.step(&mut s, &ParamGrads::from_tensors(vec![Tensor::zeros([2])]));
    }

    #[test]
    #[should_panic(
        expected = "Sgd: Nesterov momentum needs momentum > 0 and dampening 0 (momentum is 0, dampening 0)"
    )]
    fn nesterov_without_momentum() {
        let mut s = ParamStore::<f64>::new();
        s.insert("a", one(0.0));
        Sgd::new(0.1)
            .nesterov(true)
            .step(&mut s, &ParamGrads::from_tensors(vec![one(1.0)]));
    }

    #[test]
    fn settings_out_of_domain_panic() {
        let cases: [(fn(), &str); 5] = [
            (
                || drop(Sgd::<f32>::new(-0.1)),
                "Sgd: lr must be >= 0, not -0.1",
            ),
            (
                || drop(Sgd::<f32>::new(0.1).momentum(f64::NAN)),
                "Sgd: momentum must be >= 0, not NaN",
            ),
            (
                || drop(Sgd::<f32>::new(0.1).weight_decay(-1.0)),
                "Sgd: weight_decay must be >= 0, not -1",
            ),
            (
                || drop(Adam::<f32>::new(0.1).betas(0.9, 1.0)),
                "Adam: beta2 must be in [0, 1), not 1",
            ),
            (
                || drop(Adam::<f32>::new(0.1).eps(-1e-8)),
                "Adam: eps must be >= 0, not -0.00000001",
            ),
        ];
        for (f, msg) in cases {
            let e = std::panic::catch_unwind(f).unwrap_err();
            let got = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert_eq!(got, msg);
        }
    }

    #[test]
    fn ids_index_the_state() {
        // ParamId is the key of the state: two parameters keep separate buffers.
        let mut s = ParamStore::<f64>::new();
        let a = s.insert("a", one(0.0));
        let b = s.insert("b", one(0.0));
        let mut opt = Sgd::new(1.0).momentum(1.0);
        for _ in 0..2 {
            opt.step(&mut s, &ParamGrads::from_tensors(vec![one(1.0), one(-2.0)]));
        }
        assert_eq!((s[a].item(), s[b].item()), (-3.0, 6.0));
        assert_eq!(ParamId::index(a), 0);
    }
}
