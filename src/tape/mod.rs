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
mod backward;
mod report;
mod vjp;

pub use backward::Gradients;
pub use report::{Held, OpStats, TapeReport};
pub use vjp::{Grads, VarGrads, Vjp, VjpArgs};
use vjp::{VjpKind, boxed_vjp};

struct Node<T: Float> {
    value: Tensor<T>,
    op: &'static str,
    parents: SmallVec<[u32; 3]>,
    vjp: Option<VjpKind<T>>,
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
    /// Whether ops keep their VJPs now: `recording`, except while a plain backward runs the
    /// differentiable VJPs, whose ops then record values only.
    record_vjps: Cell<bool>,
    /// True while a VJP runs: anomaly mode checks what it returns, not the ops inside it.
    in_vjp: Cell<bool>,
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
            record_vjps: Cell::new(true),
            in_vjp: Cell::new(false),
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
        t.record_vjps.set(false);
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
        if self.anomaly.get() && !self.in_vjp.get() {
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
        self.push_op(op, inputs, value, held, || VjpKind::Tensor(boxed_vjp(vjp)))
    }

    /// Records the result of an op whose VJP is written in ops on handles ([`VjpArgs`]), so
    /// that its gradient can be differentiated again by [`Tape::grad`]; every built-in op is
    /// recorded this way. `inputs` are the op's operands in the order its VJP returns their
    /// gradients. In a plain [`Tape::backward`], the VJP's ops record values only and cost
    /// what the same computation on tensors costs.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// // softsign(x) = x / (1 + |x|), d/dx = 1 / (1 + |x|)^2
    /// fn softsign<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    ///     let y = x.value().map(|v| v / (1.0 + v.abs()));
    ///     x.tape().record_differentiable("softsign", &[x], y, |a| {
    ///         let d = a.input(0).abs() + 1.0;
    ///         [Some(a.g() / (d * d))].into()
    ///     })
    /// }
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0], [1]));
    /// let g = tape.backward(softsign(x).sum());
    /// assert_eq!(g[x].to_vec(), vec![0.25]);
    /// ```
    #[track_caller]
    pub fn record_differentiable(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        vjp: impl for<'s> Fn(&VjpArgs<'s, T>) -> VarGrads<'s, T> + 'static,
    ) -> Var<'_, T> {
        self.try_record_graph(op, inputs, value, &[], vjp)
            .or_panic()
    }

    /// [`Tape::record_differentiable`], returning anomaly mode's error instead of panicking
    /// (see [`Tape::try_record`]).
    #[track_caller]
    pub fn try_record_differentiable(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        vjp: impl for<'s> Fn(&VjpArgs<'s, T>) -> VarGrads<'s, T> + 'static,
    ) -> Result<Var<'_, T>, Error> {
        self.try_record_graph(op, inputs, value, &[], vjp)
    }

    /// [`Tape::try_record_differentiable`], declaring what the VJP keeps besides the tape's
    /// values (argmax indices, masks) for [`Tape::report`], as [`Tape::record_saving`] does.
    #[track_caller]
    pub(crate) fn try_record_graph(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        held: &[Held],
        vjp: impl for<'s> Fn(&VjpArgs<'s, T>) -> VarGrads<'s, T> + 'static,
    ) -> Result<Var<'_, T>, Error> {
        self.push_op(op, inputs, value, held, || {
            VjpKind::Graph(std::rc::Rc::new(vjp))
        })
    }

    /// Appends an op's node; `vjp` is made only when the node keeps it (this tape records
    /// now and some input needs a gradient).
    #[track_caller]
    fn push_op(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        held: &[Held],
        vjp: impl FnOnce() -> VjpKind<T>,
    ) -> Result<Var<'_, T>, Error> {
        let location = Location::caller();
        if self.anomaly.get() && !self.in_vjp.get() {
            self.check_forward(op, inputs, &value, location)?;
        }
        let requires_grad =
            self.record_vjps.get() && inputs.iter().any(|v| self.node_requires_grad(v.id));
        Ok(self.push(
            Node {
                value,
                op,
                parents: parent_ids(inputs),
                vjp: requires_grad.then(vjp),
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
