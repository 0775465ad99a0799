//! The two forms of a VJP. The differentiable form ([`Tape::record_differentiable`], which
//! every built-in op uses) builds the input gradients from ops on handles, so that
//! [`Tape::grad`] can record them and differentiate them again; the first-order form
//! ([`Tape::record`]) computes them on plain tensors.

use super::{Tape, Var};
use crate::float::Float;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::fmt;
use std::rc::Rc;

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
pub struct Grads<T: Float>(pub(super) SmallVec<[Option<Tensor<T>>; 3]>);

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

/// A first-order vector-Jacobian product on tensors (the form [`Tape::record`] takes): given
/// the gradient of the loss with respect to the op's output and which inputs need a
/// gradient, the gradients with respect to those inputs. It owns whatever the op saved for
/// it, and is dropped (freeing that) once it has run. Its result is a plain tensor, so
/// [`Tape::grad`] cannot differentiate through it again; [`VjpArgs`] is the form that can.
pub type Vjp<T> = Box<dyn FnOnce(&Tensor<T>, &[bool]) -> Grads<T>>;

/// `vjp` boxed as a [`Vjp`], its result converted into [`Grads`].
pub(super) fn boxed_vjp<T: Float, G: Into<Grads<T>>>(
    vjp: impl FnOnce(&Tensor<T>, &[bool]) -> G + 'static,
) -> Vjp<T> {
    Box::new(move |g: &Tensor<T>, needs: &[bool]| vjp(g, needs).into())
}

/// A differentiable VJP: from the handles in [`VjpArgs`], the gradients of the op's inputs,
/// built from ops on the tape. Shared (not boxed) because backward calls it with the tape
/// borrowed for the nodes it records, and may call it again in a later [`Tape::grad`].
pub(super) type GraphVjp<T> = Rc<dyn for<'s> Fn(&VjpArgs<'s, T>) -> VarGrads<'s, T>>;

/// A node's VJP, in one of its two forms.
pub(super) enum VjpKind<T: Float> {
    /// First order only, on tensors ([`Tape::record`]).
    Tensor(Vjp<T>),
    /// On handles, differentiable again ([`Tape::record_differentiable`]).
    Graph(GraphVjp<T>),
}

/// What a differentiable VJP is given: the gradient `g` flowing into the op's output, the
/// op's inputs and output as handles, and which inputs need a gradient. The handles are
/// those of the forward pass (so that, under [`Tape::grad`], what the VJP computes from them
/// depends on them and is differentiated in turn); in a plain [`Tape::backward`] the ops on
/// them record values only, as on an inference tape.
///
/// ```
/// use tapegrad::prelude::*;
/// // cube(x) = x^3, with its VJP 3 x^2 g written in ops, so it has a second derivative.
/// fn cube<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
///     let y = x.value().map(|v| v * v * v);
///     x.tape().record_differentiable("cube", &[x], y, |a| {
///         let x = a.input(0);
///         [Some(a.g() * x.square() * 3.0)].into()
///     })
/// }
/// let tape = Tape::<f64>::new();
/// let x = tape.param(Tensor::from_vec(vec![2.0], [1]));
/// let [dx] = tape.grad(cube(x).sum(), &[x])[..] else { unreachable!() };
/// let [ddx] = tape.grad(dx.sum(), &[x])[..] else { unreachable!() };
/// assert_eq!((dx.value().to_vec(), ddx.value().to_vec()), (vec![12.0], vec![12.0]));
/// ```
pub struct VjpArgs<'s, T: Float> {
    pub(super) g: Var<'s, T>,
    pub(super) output: Var<'s, T>,
    pub(super) inputs: SmallVec<[Var<'s, T>; 3]>,
    pub(super) needs: SmallVec<[bool; 3]>,
}

impl<'s, T: Float> VjpArgs<'s, T> {
    /// The gradient of the loss with respect to the op's output (the output's shape).
    pub fn g(&self) -> Var<'s, T> {
        self.g
    }

    /// The op's output.
    pub fn output(&self) -> Var<'s, T> {
        self.output
    }

    /// The op's `k`-th input, in the order it was recorded with.
    ///
    /// # Panics
    /// When the op has no input `k`.
    pub fn input(&self, k: usize) -> Var<'s, T> {
        self.inputs[k]
    }

    /// The op's inputs, in the order they were recorded with.
    pub fn inputs(&self) -> &[Var<'s, T>] {
        &self.inputs
    }

    /// True when input `k` needs a gradient (skip computing the others: return `None`).
    pub fn needs(&self, k: usize) -> bool {
        self.needs.get(k).copied().unwrap_or(false)
    }

    /// The tape the VJP records on.
    pub fn tape(&self) -> &'s Tape<T> {
        self.g.tape()
    }

    /// True under [`Tape::grad`], where what the VJP returns is recorded to be
    /// differentiated again; false in a plain [`Tape::backward`], where nothing will be, so
    /// that a VJP may compute its gradients as values in one fused kernel and return them
    /// as [`Tape::input`]s (the same maths, maybe not the same last bits).
    pub fn creates_graph(&self) -> bool {
        self.tape().record_vjps.get()
    }

    /// `f()` for input `k` when it needs a gradient, else `None`.
    pub fn then(&self, k: usize, f: impl FnOnce() -> Var<'s, T>) -> Option<Var<'s, T>> {
        self.needs(k).then(f)
    }
}

/// The input gradients a differentiable VJP returns, one per input in the order the op
/// recorded them; `None` for an input that needs none or whose gradient is zero. Made from
/// an array (`[Some(gx)].into()`, `[ga, gb].into()`) or a `Vec`; up to three are held
/// inline, without a heap allocation.
pub struct VarGrads<'s, T: Float>(pub(super) SmallVec<[Option<Var<'s, T>>; 3]>);

impl<'s, T: Float, const N: usize> From<[Option<Var<'s, T>>; N]> for VarGrads<'s, T> {
    fn from(a: [Option<Var<'s, T>>; N]) -> Self {
        let mut g = SmallVec::with_capacity(N);
        for v in a {
            g.push(v);
        }
        VarGrads(g)
    }
}

impl<'s, T: Float> From<Vec<Option<Var<'s, T>>>> for VarGrads<'s, T> {
    fn from(v: Vec<Option<Var<'s, T>>>) -> Self {
        VarGrads(SmallVec::from_vec(v))
    }
}

impl<'s, T: Float> FromIterator<Option<Var<'s, T>>> for VarGrads<'s, T> {
    fn from_iter<I: IntoIterator<Item = Option<Var<'s, T>>>>(iter: I) -> Self {
        VarGrads(iter.into_iter().collect())
    }
}
