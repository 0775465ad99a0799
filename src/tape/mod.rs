//! The tape: an arena of nodes, each the value of one op and the VJP that sends a gradient
//! back to the op's inputs. [`Var`] is a `Copy` handle to a node, tied to its tape by a
//! lifetime; `backward` walks the arena once in reverse.

use crate::error::{Error, ErrorKind, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::Location;

mod anomaly;
mod report;

use anomaly::check_backward;
pub use report::{Held, OpStats, TapeReport};

/// The gradients a VJP returns, one per input in the order the op recorded them; `None` for
/// an input that needs none (its flag in `needs` was false) or whose gradient is zero.
///
/// A VJP given to [`Tape::record`] may return anything that converts into it: an array
/// `[Option<Tensor<T>>; N]` (the usual way: `[Some(gx)]`, `[ga, gb]`), a `Vec`, or a `Grads`
/// built with [`Grads::new`] and [`Grads::push`] or collected from an iterator. Up to
/// three are held inline, without a heap allocation. It dereferences to a slice.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::tape::Grads;
/// let g = Tensor::<f32>::ones([2]);
/// let from_array = Grads::from([Some(g.clone()), None]);
/// let collected: Grads<f32> = [Some(g.clone()), None].into_iter().collect();
/// assert_eq!(from_array.len(), 2);
/// assert!(collected[1].is_none());
/// ```
pub struct Grads<T: Float>(SmallVec<[Option<Tensor<T>>; 3]>);

impl<T: Float> Grads<T> {
    /// No gradients yet.
    pub fn new() -> Self {
        Grads(SmallVec::new())
    }

    /// Room for `n` gradients (inline up to three).
    pub fn with_capacity(n: usize) -> Self {
        Grads(SmallVec::with_capacity(n))
    }

    /// Appends the gradient of the next input.
    pub fn push(&mut self, g: Option<Tensor<T>>) {
        self.0.push(g)
    }
}

impl<T: Float> Default for Grads<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> std::ops::Deref for Grads<T> {
    type Target = [Option<Tensor<T>>];
    fn deref(&self) -> &[Option<Tensor<T>>] {
        &self.0
    }
}

impl<T: Float> fmt::Debug for Grads<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<T: Float> FromIterator<Option<Tensor<T>>> for Grads<T> {
    fn from_iter<I: IntoIterator<Item = Option<Tensor<T>>>>(iter: I) -> Self {
        Grads(iter.into_iter().collect())
    }
}

impl<T: Float, const N: usize> From<[Option<Tensor<T>>; N]> for Grads<T> {
    fn from(a: [Option<Tensor<T>>; N]) -> Self {
        // Pushed one by one: cheaper than `Extend` for the one to three of an op.
        let mut g = Grads::with_capacity(N);
        for t in a {
            g.push(t);
        }
        g
    }
}

impl<T: Float> From<Vec<Option<Tensor<T>>>> for Grads<T> {
    fn from(v: Vec<Option<Tensor<T>>>) -> Self {
        Grads(SmallVec::from_vec(v))
    }
}

/// A vector-Jacobian product: given the gradient of the loss with respect to the op's output
/// and which inputs need a gradient, the gradients with respect to those inputs. It owns
/// whatever the op saved for it, and is dropped (freeing that) once it has run.
pub type Vjp<T> = Box<dyn FnOnce(&Tensor<T>, &[bool]) -> Grads<T>>;

/// `vjp` boxed as a [`Vjp`], its result converted into [`Grads`].
fn boxed_vjp<T: Float, G: Into<Grads<T>>>(
    vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
) -> Vjp<T> {
    Box::new(move |g: &Tensor<T>, needs: &[bool]| vjp(g, needs).into())
}

struct Node<T: Float> {
    value: Tensor<T>,
    op: &'static str,
    parents: SmallVec<[u32; 3]>,
    vjp: Option<Vjp<T>>,
    requires_grad: bool,
    is_param: bool,
    location: &'static Location<'static>,
}

/// The ids of `inputs`, pushed one by one (cheaper than collecting through `Extend` for the
/// one to three inputs an op has).
fn parent_ids<T: Float>(inputs: &[Var<'_, T>]) -> SmallVec<[u32; 3]> {
    let mut ids = SmallVec::new();
    for v in inputs {
        ids.push(v.id);
    }
    ids
}

struct Inner<T: Float> {
    nodes: Vec<Node<T>>,
    consumed: bool,
    /// The most bytes held for backward at once since the tape was made or cleared.
    peak_saved: usize,
    /// (buffer address, bytes) pairs, reused to count shared buffers once.
    scratch: Vec<(usize, usize)>,
    /// What each node's VJP keeps, as declared to [`Tape::record_saving`] (addresses and
    /// sizes only), by node id; counted while that node's VJP is pending. Kept out of the
    /// nodes so that a node stays small.
    held: Vec<(u32, Held)>,
}

/// A tape records the ops of one forward pass so that `backward` can return gradients.
///
/// Record on a fresh tape (or one [`Tape::clear`]ed, which keeps its allocations) for each
/// training step. A tape made with [`Tape::inference`] records values only: no VJP and no
/// saved tensor is kept, so the same model function runs without the memory backward needs.
///
/// ```
/// use tapegrad::prelude::*;
/// let tape = Tape::<f64>::new();
/// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
/// let y = (x * x).sum();                 // y = sum(x^2)
/// let grads = tape.backward(y);
/// assert_eq!(grads[x].to_vec(), vec![2.0, 4.0, 6.0]);
/// ```
pub struct Tape<T: Float = f32> {
    inner: RefCell<Inner<T>>,
    recording: bool,
    training: Cell<bool>,
    anomaly: Cell<bool>,
    generation: u64,
}

/// A handle to a value on a tape: small, `Copy`, and usable only while its tape lives.
/// Every op is a method on `Var` (and the arithmetic operators work on it).
pub struct Var<'t, T: Float = f32> {
    tape: &'t Tape<T>,
    id: u32,
}

impl<T: Float> Clone for Var<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Float> Copy for Var<'_, T> {}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// A tape that records for backward, in training mode.
    pub fn new() -> Self {
        Tape {
            inner: RefCell::new(Inner {
                nodes: Vec::new(),
                consumed: false,
                peak_saved: 0,
                scratch: Vec::new(),
                held: Vec::new(),
            }),
            recording: true,
            training: Cell::new(true),
            anomaly: Cell::new(false),
            generation: 0,
        }
    }

    /// A tape for inference: values only, no VJPs or saved tensors, in evaluation mode
    /// (dropout is the identity). `backward` on it returns an error.
    pub fn inference() -> Self {
        let t = Self::new();
        t.training.set(false);
        Tape {
            recording: false,
            ..t
        }
    }

    /// True when this tape records VJPs for backward.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// True in training mode (dropout active); see [`Tape::set_training`].
    pub fn is_training(&self) -> bool {
        self.training.get()
    }

    /// Switches between training mode (dropout active) and evaluation mode.
    pub fn set_training(&self, on: bool) {
        self.training.set(on)
    }

    /// Turns anomaly mode on or off (off by default, and then it costs one flag test per
    /// op). When on, every value an op records and every gradient a VJP returns is checked
    /// for NaN and infinity:
    /// - a non-finite forward value is an [`ErrorKind::NonFinite`] error naming the op, the
    ///   shapes, a few offending values and the `file:line` of the caller's code that
    ///   recorded it: an op's `try_` form returns it, its plain form panics with it at the
    ///   caller's line (the run stops where the first bad number appears, not an hour later
    ///   at the loss);
    /// - a non-finite gradient makes [`Tape::try_backward`] return that error (and
    ///   [`Tape::backward`] panic with it), naming the op whose VJP produced it, which
    ///   input's gradient it is, and where that op was recorded.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// tape.detect_anomaly(true);
    /// let x = tape.param(Tensor::from_vec(vec![4.0, 0.0], [2]));
    /// let y = x.sqrt().sum(); // finite forward; d sqrt(x)/dx = 1/(2 sqrt x) is inf at 0
    /// let err = tape.try_backward(y).unwrap_err();
    /// assert!(err.to_string().starts_with(
    ///     "sqrt: non-finite gradient for input 0 (param [2]): 1 of the 2 elements"), "{err}");
    /// ```
    pub fn detect_anomaly(&self, on: bool) {
        self.anomaly.set(on)
    }

    /// True when anomaly mode is on; see [`Tape::detect_anomaly`].
    pub fn is_detecting_anomaly(&self) -> bool {
        self.anomaly.get()
    }

    /// Forgets every node so the tape can record the next step; keeps the arena's capacity.
    /// Taking `&mut self` guarantees that no handle into the old graph is still alive.
    pub fn clear(&mut self) {
        let inner = self.inner.get_mut();
        inner.nodes.clear();
        inner.consumed = false;
        inner.peak_saved = 0;
        inner.held.clear();
        self.generation += 1;
    }

    /// The number of nodes recorded since the tape was made or cleared.
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }

    /// True when no node has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A trainable leaf: `backward` returns a gradient for it (zero if the loss does not
    /// depend on it). Cloning a tensor to pass it here copies no data.
    #[track_caller]
    pub fn param(&self, value: Tensor<T>) -> Var<'_, T> {
        self.leaf("param", value, self.recording)
    }

    /// A constant leaf (data, targets): no gradient flows into it.
    #[track_caller]
    pub fn input(&self, value: Tensor<T>) -> Var<'_, T> {
        self.leaf("input", value, false)
    }

    /// A constant rank-0 leaf.
    #[track_caller]
    pub fn scalar(&self, v: T) -> Var<'_, T> {
        self.input(Tensor::scalar(v))
    }

    #[track_caller]
    fn leaf(&self, op: &'static str, value: Tensor<T>, requires_grad: bool) -> Var<'_, T> {
        let location = Location::caller();
        if self.anomaly.get() {
            self.check_forward(op, &[], &value, location).or_panic();
        }
        self.push(
            Node {
                value,
                op,
                parents: SmallVec::new(),
                vjp: None,
                requires_grad,
                is_param: requires_grad,
                location,
            },
            &[],
        )
    }

    /// Appends a node, and what its VJP keeps (nothing unless the VJP is kept).
    fn push(&self, node: Node<T>, held: &[Held]) -> Var<'_, T> {
        let mut inner = self.inner.borrow_mut();
        let id = u32::try_from(inner.nodes.len()).expect("a tape holds at most 2^32 nodes");
        if node.vjp.is_some() && !held.is_empty() {
            inner.held.extend(held.iter().map(|&h| (id, h)));
        }
        inner.nodes.push(node);
        Var { tape: self, id }
    }

    /// Records the result of an op. `inputs` are the op's operands in the order its VJP
    /// returns their gradients; `vjp` is kept only if this tape records and some input needs
    /// a gradient, otherwise it is dropped at once with everything it saved.
    ///
    /// This is how a user adds an op (the crate's own ops use [`Tape::record_saving`]); it
    /// gets the same error locations, anomaly checks and [`Tape::report`] entry as theirs:
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// // cube(x) = x^3, d/dx = 3 x^2
    /// fn cube<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    ///     let xv = x.value();
    ///     let y = xv.map(|v| v * v * v);
    ///     x.tape().record("cube", &[x], y, move |g, _needs| {
    ///         [Some(g * &(&xv * &xv) * 3.0)] // one gradient per input
    ///     })
    /// }
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![2.0], [1]));
    /// let grads = tape.backward(cube(x).sum());
    /// assert_eq!(grads[x].to_vec(), vec![12.0]);
    /// ```
    #[track_caller]
    pub fn record<G: Into<Grads<T>>>(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
    ) -> Var<'_, T> {
        self.try_record_saving(op, inputs, value, &[], vjp)
            .or_panic()
    }

    /// [`Tape::record`], returning anomaly mode's error (a NaN or an infinity in `value`, see
    /// [`Tape::detect_anomaly`]) instead of panicking: the `try_` form of an op calls this,
    /// so that it returns every error of the op, its anomalies included.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// tape.detect_anomaly(true);
    /// let x = tape.param(Tensor::from_vec(vec![-1.0], [1]));
    /// let root = x.value().map(f64::sqrt); // NaN
    /// let e = tape
    ///     .try_record("my_sqrt", &[x], root, |g, _| [Some(g.clone())])
    ///     .unwrap_err();
    /// assert!(e.to_string().starts_with("my_sqrt: non-finite forward value"), "{e}");
    /// ```
    #[track_caller]
    pub fn try_record<G: Into<Grads<T>>>(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
    ) -> Result<Var<'_, T>, Error> {
        self.try_record_saving(op, inputs, value, &[], vjp)
    }

    /// [`Tape::record`], declaring what the VJP keeps ([`Held::tensor`] for each tensor the
    /// closure captured, [`Held::bytes`] for other buffers), for [`Tape::report`] to count the
    /// bytes held for backward. The declaration changes nothing else: it records addresses
    /// and sizes, and costs no copy and no reference count.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::tape::Held;
    /// fn cube<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    ///     let xv = x.value();
    ///     let y = xv.map(|v| v * v * v);
    ///     x.tape().record_saving("cube", &[x], y, &[Held::tensor(&xv)], move |g, _| {
    ///         [Some(g * &(&xv * &xv) * 3.0)] // one gradient per input
    ///     })
    /// }
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::zeros([1000]));
    /// let y = cube(x).sum();
    /// assert_eq!(tape.report().saved_bytes, 8000);
    /// tape.backward(y);
    /// assert_eq!(tape.report().saved_bytes, 0);
    /// ```
    #[track_caller]
    pub fn record_saving<G: Into<Grads<T>>>(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        held: &[Held],
        vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
    ) -> Var<'_, T> {
        self.try_record_saving(op, inputs, value, held, vjp)
            .or_panic()
    }

    /// [`Tape::record_saving`], returning anomaly mode's error instead of panicking (see
    /// [`Tape::try_record`]).
    #[track_caller]
    pub fn try_record_saving<G: Into<Grads<T>>>(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        held: &[Held],
        vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
    ) -> Result<Var<'_, T>, Error> {
        let location = Location::caller();
        if self.anomaly.get() {
            self.check_forward(op, inputs, &value, location)?;
        }
        let requires_grad = self.recording && inputs.iter().any(|v| self.node_requires_grad(v.id));
        Ok(self.push(
            Node {
                value,
                op,
                parents: parent_ids(inputs),
                vjp: if requires_grad {
                    Some(boxed_vjp(vjp))
                } else {
                    None
                },
                requires_grad,
                is_param: false,
                location,
            },
            held,
        ))
    }

    fn node_requires_grad(&self, id: u32) -> bool {
        self.inner.borrow().nodes[id as usize].requires_grad
    }

    /// Gradients of a scalar (one-element) output with respect to every parameter.
    ///
    /// # Panics
    /// When `output` holds more than one element (reduce it with `.mean()` or `.sum()`, or
    /// use [`Tape::backward_with`]), on an inference tape, when backward already ran on this
    /// recording, or when `output` belongs to another tape. [`Tape::try_backward`] returns these as errors.
    #[track_caller]
    pub fn backward(&self, output: Var<'_, T>) -> Gradients<T> {
        self.try_backward(output).or_panic()
    }

    /// [`Tape::backward`], returning misuse as an error.
    #[track_caller]
    pub fn try_backward(&self, output: Var<'_, T>) -> Result<Gradients<T>, Error> {
        let shape = output.shape();
        if shape.numel() != 1 {
            return Err(Error::bad_shape(
                "backward",
                &shape,
                "backward needs a one-element output: reduce it to one with .mean() or .sum() \
                 first (softmax, cross_entropy, bce, bce_with_logits and mse_loss \
                 return one value per row or element, unreduced); to backpropagate from every \
                 element with an explicit seed gradient, use backward_with",
            ));
        }
        self.try_backward_with(output, Tensor::ones(shape))
    }

    /// Gradients of `output` with respect to every parameter, for an explicit upstream
    /// gradient `seed` of `output`'s shape (a vector-Jacobian product).
    ///
    /// # Panics
    /// As [`Tape::backward`], and when `seed`'s shape differs from `output`'s.
    #[track_caller]
    pub fn backward_with(&self, output: Var<'_, T>, seed: Tensor<T>) -> Gradients<T> {
        self.try_backward_with(output, seed).or_panic()
    }

    /// [`Tape::backward_with`], returning misuse as an error.
    #[track_caller]
    pub fn try_backward_with(
        &self,
        output: Var<'_, T>,
        seed: Tensor<T>,
    ) -> Result<Gradients<T>, Error> {
        if !std::ptr::eq(output.tape, self) {
            return Err(Error::new("backward", ErrorKind::ForeignTape));
        }
        if !self.recording {
            return Err(Error::bad_argument(
                "backward",
                "this tape was made with Tape::inference and records no VJPs",
            ));
        }
        let out_shape = output.shape();
        if seed.shape() != &out_shape {
            return Err(Error::incompatible(
                "backward",
                &out_shape,
                seed.shape(),
                "the seed gradient must have the output's shape",
            ));
        }
        let mut inner = self.inner.borrow_mut();
        if inner.consumed {
            return Err(Error::new("backward", ErrorKind::BackwardTwice));
        }
        inner.consumed = true;
        // Forward only adds saved tensors and backward only frees them: the peak is now.
        let now = inner.saved_bytes();
        inner.peak_saved = inner.peak_saved.max(now);
        let anomaly = self.anomaly.get();
        let result = backward_pass(&mut inner.nodes, output.id as usize, seed, anomaly);
        // Nothing can run backward on this recording again: free every VJP and what it
        // saved, including those of nodes the output does not depend on.
        for node in inner.nodes.iter_mut() {
            node.vjp = None;
        }
        Ok(Gradients {
            grads: result?,
            tape: self as *const Self as usize,
            generation: self.generation,
        })
    }
}

/// The reverse sweep of [`Tape::try_backward_with`]: runs every VJP the output depends on,
/// latest first, and returns one slot per node (filled for parameters only). Each VJP and
/// what it saved are dropped as soon as it has run.
fn backward_pass<T: Float>(
    nodes: &mut [Node<T>],
    output: usize,
    seed: Tensor<T>,
    anomaly: bool,
) -> Result<Vec<Option<Tensor<T>>>, Error> {
    let mut grads: Vec<Option<Tensor<T>>> = vec![None; nodes.len()];
    grads[output] = Some(seed);
    let mut needs: SmallVec<[bool; 3]> = SmallVec::new();
    for id in (0..=output).rev() {
        let Some(vjp) = nodes[id].vjp.take() else {
            continue;
        };
        // An intermediate's gradient is needed only by its own VJP: take it to free it.
        let Some(g) = grads[id].take() else {
            continue;
        };
        if anomaly {
            check_backward(nodes, id, &g, || "gradient of the output".into())?;
        }
        needs.clear();
        needs.extend(
            nodes[id]
                .parents
                .iter()
                .map(|&p| nodes[p as usize].requires_grad),
        );
        let input_grads = vjp(&g, &needs);
        debug_assert_eq!(
            input_grads.len(),
            needs.len(),
            "the VJP of {} returned the wrong number of gradients",
            nodes[id].op
        );
        for (k, gi) in input_grads.0.into_iter().enumerate() {
            let (Some(gi), true) = (gi, needs[k]) else {
                continue;
            };
            let p = nodes[id].parents[k] as usize;
            debug_assert_eq!(
                gi.shape(),
                nodes[p].value.shape(),
                "the VJP of {} returned a gradient of the wrong shape for input {k}",
                nodes[id].op
            );
            if anomaly {
                let what = || {
                    let parent = &nodes[p];
                    format!(
                        "gradient for input {k} ({} {})",
                        parent.op,
                        parent.value.shape()
                    )
                };
                check_backward(nodes, id, &gi, what)?;
            }
            match &mut grads[p] {
                Some(acc) => crate::kernels::elementwise::add_assign(acc.data_mut(), gi.data()),
                slot => *slot = Some(gi),
            }
        }
    }
    // Parameters the output does not depend on get zeros, so `grads[w]` never panics.
    for (id, node) in nodes.iter().enumerate() {
        if node.is_param && grads[id].is_none() {
            grads[id] = Some(Tensor::zeros(node.value.shape().clone()));
        }
        if !node.is_param {
            grads[id] = None;
        }
    }
    Ok(grads)
}

impl<'t, T: Float> Var<'t, T> {
    /// The tape this handle belongs to.
    pub fn tape(self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's index on its tape.
    pub fn id(self) -> usize {
        self.id as usize
    }

    /// The value (a cheap clone sharing the tape's buffer).
    pub fn value(self) -> Tensor<T> {
        self.with_value(Tensor::clone)
    }

    /// `f` of the value, borrowed (no clone of the tensor). `f` must not record on the tape.
    pub(crate) fn with_value<R>(self, f: impl FnOnce(&Tensor<T>) -> R) -> R {
        f(&self.tape.inner.borrow().nodes[self.id as usize].value)
    }

    /// The value's shape.
    pub fn shape(self) -> Shape {
        self.tape.inner.borrow().nodes[self.id as usize]
            .value
            .shape()
            .clone()
    }

    /// True when a gradient will flow into this value.
    pub fn requires_grad(self) -> bool {
        self.tape.node_requires_grad(self.id)
    }

    /// The op that made this value (`"param"`, `"input"`, `"conv2d"`, ...).
    pub fn op(self) -> &'static str {
        self.tape.inner.borrow().nodes[self.id as usize].op
    }

    /// `Err(ForeignTape)` unless `other` is on the same tape; every op with several operands
    /// checks this first.
    #[track_caller]
    pub fn check_same_tape(self, op: &'static str, other: Var<'_, T>) -> Result<(), Error> {
        if std::ptr::eq(self.tape, other.tape) {
            Ok(())
        } else {
            Err(Error::new(op, ErrorKind::ForeignTape))
        }
    }
}

impl<T: Float> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var(%{} = {} {})", self.id, self.op(), self.shape())
    }
}

/// The gradients from one `backward`, indexed by the parameters' handles: `grads[w]`.
pub struct Gradients<T: Float> {
    grads: Vec<Option<Tensor<T>>>,
    tape: usize,
    generation: u64,
}

impl<T: Float> Gradients<T> {
    /// The gradient of a parameter, or `None` for a value that is not a parameter of the
    /// tape and recording this came from.
    pub fn get(&self, v: Var<'_, T>) -> Option<&Tensor<T>> {
        if v.tape as *const Tape<T> as usize != self.tape || v.tape.generation != self.generation {
            return None;
        }
        self.grads.get(v.id as usize).and_then(|g| g.as_ref())
    }

    /// Takes a parameter's gradient out, leaving `None`.
    pub fn take(&mut self, v: Var<'_, T>) -> Option<Tensor<T>> {
        self.get(v)?;
        self.grads[v.id as usize].take()
    }
}

impl<T: Float> std::ops::Index<Var<'_, T>> for Gradients<T> {
    type Output = Tensor<T>;
    /// The gradient of the parameter `v`.
    ///
    /// # Panics
    /// When `v` has no gradient here: it is not a parameter, or not of the tape that ran backward
    /// ([`Gradients::get`] returns `None` instead).
    #[track_caller]
    fn index(&self, v: Var<'_, T>) -> &Tensor<T> {
        match self.get(v) {
            Some(g) => g,
            None => panic!(
                "gradients: no gradient for {v:?}: only parameters (tape.param) of the tape that ran backward have one"
            ),
        }
    }
}

impl<T: Float> fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.grads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| g.as_ref().map(|g| (format!("%{i}"), g.shape().clone()))),
            )
            .finish()
    }
}

/// Fixes the signature of a model closure so it can be written without annotations:
/// `let net = model(|x| x.matmul(w).relu());`.
///
/// A closure annotated `|x: Var<'_, f32>|` gets a fresh lifetime for its argument and cannot
/// return a handle built from it together with captured parameters; passed through this
/// function, its argument and result share the tape's lifetime and the types are inferred.
/// A plain `fn forward<'t>(x: Var<'t, f32>, ...) -> Var<'t, f32>` needs no help.
///
/// ```
/// use tapegrad::prelude::*;
/// let tape = Tape::<f32>::new();
/// let w = tape.param(Tensor::ones([2, 1]));
/// let net = model(|x| x.matmul(w).relu());
/// let x = tape.input(Tensor::ones([3, 2]));
/// let g = tape.backward((net(x) + net(x)).sum()); // a value used twice: gradients add
/// assert_eq!(g[w].to_vec(), vec![6.0, 6.0]);
/// ```
pub fn model<'t, T: Float, F: Fn(Var<'t, T>) -> Var<'t, T>>(f: F) -> F {
    f
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// Each misuse of backward is refused with its message, located at the caller's line.
    fn located(e: &Error, line: u32) -> String {
        assert_eq!(
            (e.op, e.location.file(), e.location.line()),
            ("backward", "src/tape/mod.rs", line),
            "{e}"
        );
        e.to_string()
    }

    #[test]
    fn backward_of_a_non_scalar_is_refused() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::ones([2, 3]));
        let e = tape.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: shape [2, 3] refused: backward needs a one-element output: reduce it to one with .mean() or .sum() first (softmax, cross_entropy, bce, bce_with_logits and mse_loss return one value per row or element, unreduced); to backpropagate from every element with an explicit seed gradient, use backward_with (called at src/tape/mod.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn seed_of_another_shape_is_refused() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::ones([2, 3]));
        let e = tape.try_backward_with(x, Tensor::ones([3])).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: shapes [2, 3] and [3] are incompatible: the seed gradient must have the output's shape (called at src/tape/mod.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn inference_tape_is_refused() {
        let tape = Tape::<f32>::inference();
        let x = tape.input(Tensor::ones([1]));
        let e = tape.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: this tape was made with Tape::inference and records no VJPs (called at src/tape/mod.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn second_backward_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::ones([1]));
        let y = x * 2.0;
        let _ = tape.backward(y);
        let e = tape.try_backward(y).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: backward already ran on this tape and consumed its graph; record the forward again (called at src/tape/mod.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn output_of_another_tape_is_refused() {
        let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
        let x = t2.param(Tensor::ones([1]));
        let e = t1.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: a handle from another tape was used on this one (called at src/tape/mod.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "backward: shape [2] refused: backward needs a one-element output")]
    fn plain_backward_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::ones([2]));
        let _ = tape.backward(x);
    }
}
