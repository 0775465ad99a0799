//! The tape: an arena of nodes, each the value of one op and the VJP that sends a gradient
//! back to the op's inputs. [`Var`] is a `Copy` handle to a node, tied to its tape by a
//! lifetime; `backward` walks the arena once in reverse.

use crate::error::{Error, ErrorKind, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::fmt;
use std::panic::Location;

/// The gradients a VJP returns, one per input in the order the op recorded them; `None` for
/// an input that needs none (its flag in `needs` was false) or whose gradient is zero.
pub type Grads<T> = SmallVec<[Option<Tensor<T>>; 3]>;

/// A vector-Jacobian product: given the gradient of the loss with respect to the op's output
/// and which inputs need a gradient, the gradients with respect to those inputs. It owns
/// whatever the op saved for it, and is dropped (freeing that) once it has run.
pub type Vjp<T> = Box<dyn FnOnce(&Tensor<T>, &[bool]) -> Grads<T>>;

struct Node<T: Float> {
    value: Tensor<T>,
    op: &'static str,
    parents: SmallVec<[u32; 3]>,
    vjp: Option<Vjp<T>>,
    requires_grad: bool,
    is_param: bool,
    location: &'static Location<'static>,
}

struct Inner<T: Float> {
    nodes: Vec<Node<T>>,
    consumed: bool,
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
    training: std::cell::Cell<bool>,
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
            }),
            recording: true,
            training: std::cell::Cell::new(true),
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

    /// Forgets every node so the tape can record the next step; keeps the arena's capacity.
    /// Taking `&mut self` guarantees that no handle into the old graph is still alive.
    pub fn clear(&mut self) {
        let inner = self.inner.get_mut();
        inner.nodes.clear();
        inner.consumed = false;
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
        self.push(Node {
            value,
            op,
            parents: SmallVec::new(),
            vjp: None,
            requires_grad,
            is_param: requires_grad,
            location: Location::caller(),
        })
    }

    fn push(&self, node: Node<T>) -> Var<'_, T> {
        let mut inner = self.inner.borrow_mut();
        let id = u32::try_from(inner.nodes.len()).expect("a tape holds at most 2^32 nodes");
        inner.nodes.push(node);
        Var { tape: self, id }
    }

    /// Records the result of an op. `inputs` are the op's operands in the order its VJP
    /// returns their gradients; `vjp` is kept only if this tape records and some input needs
    /// a gradient, otherwise it is dropped at once with everything it saved.
    ///
    /// This is how every op in the crate is built, and how a user adds one:
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::tape::Grads;
    /// // cube(x) = x^3, d/dx = 3 x^2
    /// fn cube<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
    ///     let xv = x.value();
    ///     let y = xv.map(|v| v * v * v);
    ///     x.tape().record("cube", &[x], y, move |g, _needs| {
    ///         let gx = Tensor::from_fn(xv.shape(), |i| 3.0 * xv.data()[i].powi(2) * g.data()[i]);
    ///         Grads::from_iter([Some(gx)])
    ///     })
    /// }
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![2.0], [1]));
    /// let grads = tape.backward(cube(x).sum());
    /// assert_eq!(grads[x].to_vec(), vec![12.0]);
    /// ```
    #[track_caller]
    pub fn record(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: Tensor<T>,
        vjp: impl FnOnce(&Tensor<T>, &[bool]) -> Grads<T> + 'static,
    ) -> Var<'_, T> {
        let requires_grad = self.recording && inputs.iter().any(|v| self.node_requires_grad(v.id));
        let location = Location::caller();
        self.push(Node {
            value,
            op,
            parents: inputs.iter().map(|v| v.id).collect(),
            vjp: if requires_grad {
                Some(Box::new(vjp))
            } else {
                None
            },
            requires_grad,
            is_param: false,
            location,
        })
    }

    fn node_requires_grad(&self, id: u32) -> bool {
        self.inner.borrow().nodes[id as usize].requires_grad
    }

    /// Gradients of a scalar (one-element) output with respect to every parameter.
    ///
    /// # Panics
    /// When `output` holds more than one element (use [`Tape::backward_with`]), on an
    /// inference tape, when backward already ran on this recording, or when `output` belongs
    /// to another tape. [`Tape::try_backward`] returns these as errors.
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
                "backward needs a one-element output; use backward_with and an explicit seed gradient for others",
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
        let nodes = &mut inner.nodes;
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; nodes.len()];
        grads[output.id as usize] = Some(seed);
        let mut needs: SmallVec<[bool; 3]> = SmallVec::new();
        for id in (0..=output.id as usize).rev() {
            let Some(vjp) = nodes[id].vjp.take() else {
                continue;
            };
            // An intermediate's gradient is needed only by its own VJP: take it to free it.
            let Some(g) = grads[id].take() else {
                continue;
            };
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
            for (k, gi) in input_grads.into_iter().enumerate() {
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
        Ok(Gradients {
            grads,
            tape: self as *const Self as usize,
            generation: self.generation,
        })
    }

    /// One line per node: id, op, shape, inputs and the caller's location.
    pub fn summary(&self) -> String {
        let inner = self.inner.borrow();
        let mut s = String::new();
        for (i, n) in inner.nodes.iter().enumerate() {
            s += &format!(
                "%{i} = {}({}) {} at {}:{}\n",
                n.op,
                n.parents
                    .iter()
                    .map(|p| format!("%{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                n.value.shape(),
                n.location.file(),
                n.location.line()
            );
        }
        s
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
        self.tape.inner.borrow().nodes[self.id as usize]
            .value
            .clone()
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
