//! Derivatives of whole functions, as `torch.autograd.functional` gives them: the Jacobian,
//! the Hessian and the Hessian-vector product of a function written over handles. Each
//! call records the function on a fresh tape of its own.
//!
//! ```
//! use tapegrad::functional::{hessian, hvp, jacobian};
//! use tapegrad::prelude::*;
//! let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2]);
//! // f(x) = x0^2 x1: gradient (2 x0 x1, x0^2), Hessian [[2 x1, 2 x0], [2 x0, 0]].
//! fn f<'t>(x: Var<'t, f64>) -> Var<'t, f64> {
//!     (x.narrow(0, 0, 1).square() * x.narrow(0, 1, 1)).sum()
//! }
//! assert_eq!(hessian(f, &x).to_vec(), vec![4.0, 2.0, 2.0, 0.0]);
//! let (value, hv) = hvp(f, &x, &Tensor::from_vec(vec![1.0, 0.0], [2]));
//! assert_eq!((value, hv.to_vec()), (2.0, vec![4.0, 2.0]));
//! let j = jacobian(|x| x.square(), &x);
//! assert_eq!((j.shape().to_vec(), j.to_vec()), (vec![2, 2], vec![2.0, 0.0, 0.0, 4.0]));
//! ```

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

/// The Jacobian of `f` at `x`, of shape `f(x).shape ++ x.shape`: row `i` (in the output's
/// row-major order) is the gradient of output element `i`. One backward per output element.
///
/// Errors: those of the backward passes (an op of `f` refusing its input is a panic of
/// that op, at its line).
#[track_caller]
pub fn try_jacobian<T: Float, F>(f: F, x: &Tensor<T>) -> Result<Tensor<T>, Error>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    let mut tape = Tape::<T>::new();
    let mut rows: Vec<T> = Vec::new();
    let mut i = 0;
    let out_shape = loop {
        tape.clear();
        let xv = tape.param(x.clone());
        let y = f(xv);
        let out_shape = y.shape();
        if i >= out_shape.numel() {
            break out_shape;
        }
        let mut seed = Tensor::zeros(out_shape.clone());
        seed.data_mut()[i] = T::ONE;
        rows.extend_from_slice(tape.try_backward_with(y, seed)?[xv].data());
        i += 1;
    };
    let dims: Vec<usize> = out_shape.iter().chain(x.shape().iter()).copied().collect();
    Ok(Tensor::from_vec(rows, dims))
}

/// [`try_jacobian`], panicking at the caller's line on error.
#[track_caller]
pub fn jacobian<T: Float, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    try_jacobian(f, x).or_panic()
}

/// The Hessian of the scalar function `f` at `x`, of shape `x.shape ++ x.shape`: the
/// gradient, recorded with [`Tape::grad`], differentiated once per element of `x`.
///
/// Errors: `f(x)` has more than one element, or an op on the way has a first-order VJP
/// only ([`ErrorKind::FirstOrderOnly`](crate::error::ErrorKind::FirstOrderOnly), naming
/// it); see [`Tape::try_grad`].
///
/// ```
/// use tapegrad::functional::try_hessian;
/// use tapegrad::prelude::*;
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2]);
/// let e = try_hessian(|x| x.square(), &x).unwrap_err(); // not a scalar
/// assert_eq!(e.op, "grad");
/// ```
#[track_caller]
pub fn try_hessian<T: Float, F>(f: F, x: &Tensor<T>) -> Result<Tensor<T>, Error>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    let tape = Tape::<T>::new();
    let xv = tape.param(x.clone());
    let g = tape.try_grad(f(xv), &[xv])?[0];
    let n = x.numel();
    let mut rows = Vec::with_capacity(n * n);
    for i in 0..n {
        let mut e = Tensor::zeros(x.shape().clone());
        e.data_mut()[i] = T::ONE;
        let gi = (g * tape.input(e)).sum();
        rows.extend_from_slice(tape.try_grad(gi, &[xv])?[0].value().data());
    }
    let dims: Vec<usize> = x.shape().iter().chain(x.shape().iter()).copied().collect();
    Ok(Tensor::from_vec(rows, dims))
}

/// [`try_hessian`], panicking at the caller's line on error.
///
/// # Panics
/// On the errors of [`try_hessian`].
#[track_caller]
pub fn hessian<T: Float, F>(f: F, x: &Tensor<T>) -> Tensor<T>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    try_hessian(f, x).or_panic()
}

/// `f(x)` and the Hessian-vector product `H v` of the scalar function `f` at `x`, without
/// forming `H`: the gradient of `⟨∇f(x), v⟩`, two backward passes whatever the size of `x`.
///
/// Errors: `v`'s shape is not `x`'s, `f(x)` has more than one element, or an op on the
/// way has a first-order VJP only.
///
/// ```
/// use tapegrad::functional::try_hvp;
/// use tapegrad::prelude::*;
/// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2]);
/// let e = try_hvp(|x| x.square().sum(), &x, &Tensor::zeros([3])).unwrap_err();
/// assert!(e.to_string().contains("the vector must have the point's shape"));
/// ```
#[track_caller]
pub fn try_hvp<T: Float, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> Result<(T, Tensor<T>), Error>
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    if x.shape() != v.shape() {
        let why = "the vector must have the point's shape";
        return Err(Error::incompatible("hvp", x.shape(), v.shape(), why));
    }
    let tape = Tape::<T>::new();
    let xv = tape.param(x.clone());
    let y = f(xv);
    let g = tape.try_grad(y, &[xv])?[0];
    let hv = tape.try_grad((g * tape.input(v.clone())).sum(), &[xv])?[0];
    Ok((y.value().data()[0], hv.value()))
}

/// [`try_hvp`], panicking at the caller's line on error.
///
/// # Panics
/// On the errors of [`try_hvp`].
#[track_caller]
pub fn hvp<T: Float, F>(f: F, x: &Tensor<T>, v: &Tensor<T>) -> (T, Tensor<T>)
where
    F: for<'t> Fn(Var<'t, T>) -> Var<'t, T>,
{
    try_hvp(f, x, v).or_panic()
}
