//! Arithmetic on tensors, outside any tape: `+ - * /` between tensors with NumPy
//! broadcasting and with scalars on either side, [`Tensor::zip_map`], and the two halves of
//! broadcasting, [`Tensor::broadcast_to`] and [`Tensor::sum_to_shape`]. A custom op's VJP
//! or a hand-written update is written with these; the same rules and errors as the ops on
//! [`Var`](crate::tape::Var).

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_to, broadcast_zip, sum_to_shape};
use crate::ops::broadcast_to::check_broadcast_to;
use crate::shape::{Shape, broadcast_operands, broadcast_shapes};
use crate::tensor::Tensor;

impl<T: Float> Tensor<T> {
    /// `f(a, b)` elementwise over the NumPy broadcast of `self` and `other`; `Err` when
    /// the shapes do not broadcast (as for `+`, see [`Tensor::try_add`]).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let a = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
    /// let b = Tensor::from_vec(vec![10.0, 20.0], [2, 1]); // one value per row
    /// let y = a.try_zip_map(&b, |x, y| x.max(y / 5.0)).unwrap();
    /// assert_eq!(y.to_vec(), vec![2.0, 2.0, 4.0, 4.0]);
    /// assert!(a.try_zip_map(&Tensor::zeros([3]), |x, _| x).is_err());
    /// ```
    #[track_caller]
    pub fn try_zip_map(
        &self,
        other: &Tensor<T>,
        f: impl Fn(T, T) -> T + Sync + Send,
    ) -> Result<Tensor<T>, Error> {
        self.try_broadcast_op("zip_map", other, f)
    }

    /// [`Tensor::try_zip_map`], panicking when the shapes do not broadcast.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let g = Tensor::<f32>::from_vec(vec![1.0, -1.0, 2.0], [3]);
    /// let x = Tensor::from_vec(vec![0.5, -2.0, 3.0], [3]);
    /// // relu's VJP: the gradient where the input was positive.
    /// let gx = g.zip_map(&x, |g, x| if x > 0.0 { g } else { 0.0 });
    /// assert_eq!(gx.to_vec(), vec![1.0, 0.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// With the message of [`Tensor::try_zip_map`]'s error, located at the caller's line.
    #[track_caller]
    pub fn zip_map(&self, other: &Tensor<T>, f: impl Fn(T, T) -> T + Sync + Send) -> Tensor<T> {
        self.try_zip_map(other, f).or_panic()
    }

    /// `self + other` elementwise, broadcasting as NumPy does; also the `+` operator, on
    /// tensors and references to them.
    ///
    /// Shapes align from the right, each pair of extents equal or one of them 1 (`[2, 3]`
    /// and `[3]` give `[2, 3]`; `[2, 1]` and `[1, 4]` give `[2, 4]`); `Err` otherwise.
    ///
    /// **Where trailing-axis broadcasting bites.** A vector lines up with the *last* axis.
    /// Against `[N, F]` features that is what a per-feature bias wants, but against
    /// `[N, C, H, W]` a `[C]` bias lines up with the width `W`, not the channels, and when
    /// `W == C` NumPy would add it along the width without a word. That case is refused: a
    /// rank-1 operand longer than 1 whose length is axis 1 of a rank-4 operand (either
    /// side) is an error that names the shape meant, `[C, 1, 1]` per channel (or
    /// `Var::conv2d_bias` for a convolution), `[1, W]` along the last axis. Other ranks are
    /// not guessed at: a `[L]` vector against `[C, L]` or `[N, C, L]` follows NumPy.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let x = Tensor::<f32>::ones([2, 3]);
    /// let b = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    /// assert_eq!((&x + &b).to_vec(), vec![2.0, 3.0, 4.0, 2.0, 3.0, 4.0]);
    ///
    /// let maps = Tensor::<f32>::zeros([8, 3, 5, 3]); // [N, C, H, W] with W == C
    /// let e = maps.try_add(&b).unwrap_err();
    /// assert!(e.to_string().contains("reshape it to [3, 1, 1]"), "{e}");
    /// assert_eq!((&maps + &b.reshape([3, 1, 1])).shape(), &[8, 3, 5, 3]);
    /// ```
    #[track_caller]
    pub fn try_add(&self, other: &Tensor<T>) -> Result<Tensor<T>, Error> {
        self.try_broadcast_op("add", other, |a, b| a + b)
    }

    /// `self - other` elementwise, broadcasting as [`Tensor::try_add`] does; also `-`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let a = Tensor::<f64>::from_vec(vec![5.0, 7.0], [2, 1]);
    /// let b = Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]);
    /// assert_eq!(a.try_sub(&b).unwrap().to_vec(), vec![4.0, 3.0, 2.0, 6.0, 5.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn try_sub(&self, other: &Tensor<T>) -> Result<Tensor<T>, Error> {
        self.try_broadcast_op("sub", other, |a, b| a - b)
    }

    /// `self * other` elementwise, broadcasting as [`Tensor::try_add`] does; also `*`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let a = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]);
    /// let s = Tensor::from_vec(vec![10.0, 100.0], [2]);
    /// assert_eq!((a * &s).to_vec(), vec![10.0, 200.0, 30.0, 400.0]);
    /// ```
    #[track_caller]
    pub fn try_mul(&self, other: &Tensor<T>) -> Result<Tensor<T>, Error> {
        self.try_broadcast_op("mul", other, |a, b| a * b)
    }

    /// `self / other` elementwise, broadcasting as [`Tensor::try_add`] does; also `/`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let a = Tensor::<f64>::from_vec(vec![2.0, 4.0, 6.0], [3]);
    /// assert_eq!((&a / &Tensor::scalar(2.0)).to_vec(), vec![1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn try_div(&self, other: &Tensor<T>) -> Result<Tensor<T>, Error> {
        self.try_broadcast_op("div", other, |a, b| a / b)
    }

    /// `f` over the broadcast of the two operands, or the error of `op`.
    #[track_caller]
    fn try_broadcast_op(
        &self,
        op: &'static str,
        other: &Tensor<T>,
        f: impl Fn(T, T) -> T + Sync + Send,
    ) -> Result<Tensor<T>, Error> {
        let out = broadcast_operands(op, self.shape(), other.shape())?;
        let y = broadcast_zip(
            self.data(),
            self.shape(),
            other.data(),
            other.shape(),
            &out,
            f,
        );
        Ok(Tensor::from_vec(y, out))
    }

    /// This tensor repeated along new leading axes and along its extent-1 axes to fill
    /// `shape`, by NumPy's rules (as [`Var::broadcast_to`](crate::tape::Var::broadcast_to),
    /// with the same errors). The same shape shares the buffer.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let b = Tensor::<f32>::from_vec(vec![1.0, 2.0], [2, 1]);
    /// assert_eq!(b.broadcast_to([2, 3]).to_vec(), vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    /// assert!(b.try_broadcast_to([3, 3]).is_err());
    /// ```
    #[track_caller]
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor<T>, Error> {
        let target = shape.into();
        check_broadcast_to(self.shape(), &target)?;
        if self.shape() == &target {
            return Ok(self.clone());
        }
        Ok(Tensor::from_vec(
            broadcast_to(self.data(), self.shape(), &target),
            target,
        ))
    }

    /// [`Tensor::try_broadcast_to`], panicking when the shapes do not broadcast.
    ///
    /// # Panics
    /// With the message of [`Tensor::try_broadcast_to`]'s error.
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor<T> {
        self.try_broadcast_to(shape).or_panic()
    }

    /// This tensor summed down to `shape`, a shape that broadcasts to this one: over the
    /// leading axes `shape` lacks and over the axes where `shape` has extent 1. The
    /// reverse of [`Tensor::broadcast_to`], and what a broadcasting op's VJP does to each
    /// operand's gradient. The same shape shares the buffer.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let g = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    /// assert_eq!(g.sum_to_shape([3]).to_vec(), vec![5.0, 7.0, 9.0]); // over the rows
    /// assert_eq!(g.sum_to_shape([2, 1]).to_vec(), vec![6.0, 15.0]); // along each row
    /// assert_eq!(g.sum_to_shape(Shape::scalar()).item(), 21.0);
    /// assert!(g.try_sum_to_shape([2]).is_err()); // [2] does not broadcast to [2, 3]
    /// ```
    #[track_caller]
    pub fn try_sum_to_shape(&self, shape: impl Into<Shape>) -> Result<Tensor<T>, Error> {
        let target = shape.into();
        if broadcast_shapes(&target, self.shape()).as_ref() != Some(self.shape()) {
            return Err(Error::incompatible(
                "sum_to_shape",
                self.shape(),
                &target,
                "the target must broadcast to the tensor's shape (aligned from the right, \
                 each extent of the target 1 or the tensor's, and no more axes)",
            ));
        }
        Ok(self.sum_to_unchecked(&target))
    }

    /// [`Tensor::try_sum_to_shape`], panicking when `shape` does not broadcast to this one.
    ///
    /// # Panics
    /// With the message of [`Tensor::try_sum_to_shape`]'s error.
    #[track_caller]
    pub fn sum_to_shape(&self, shape: impl Into<Shape>) -> Tensor<T> {
        self.try_sum_to_shape(shape).or_panic()
    }

    /// [`Tensor::sum_to_shape`] for a `target` already known to broadcast to this shape.
    pub(crate) fn sum_to_unchecked(&self, target: &Shape) -> Tensor<T> {
        if self.shape() == target {
            return self.clone();
        }
        Tensor::from_vec(
            sum_to_shape(self.data(), self.shape(), target),
            target.clone(),
        )
    }
}

// Tensor op tensor, for every mix of owned and borrowed operands.
macro_rules! tensor_tensor_op {
    ($tr:ident, $m:ident, $try:ident) => {
        impl<T: Float> std::ops::$tr<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            /// Elementwise with NumPy broadcasting.
            ///
            /// # Panics
            /// When the shapes do not broadcast, with the error's message and the caller's line.
            #[track_caller]
            fn $m(self, rhs: &Tensor<T>) -> Tensor<T> {
                self.$try(rhs).or_panic()
            }
        }
        impl<T: Float> std::ops::$tr<Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            /// As for `&Tensor` operands.
            #[track_caller]
            fn $m(self, rhs: Tensor<T>) -> Tensor<T> {
                self.$try(&rhs).or_panic()
            }
        }
        impl<T: Float> std::ops::$tr<&Tensor<T>> for Tensor<T> {
            type Output = Tensor<T>;
            /// As for `&Tensor` operands.
            #[track_caller]
            fn $m(self, rhs: &Tensor<T>) -> Tensor<T> {
                self.$try(rhs).or_panic()
            }
        }
        impl<T: Float> std::ops::$tr<Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            /// As for `&Tensor` operands.
            #[track_caller]
            fn $m(self, rhs: Tensor<T>) -> Tensor<T> {
                self.$try(&rhs).or_panic()
            }
        }
    };
}
tensor_tensor_op!(Add, add, try_add);
tensor_tensor_op!(Sub, sub, try_sub);
tensor_tensor_op!(Mul, mul, try_mul);
tensor_tensor_op!(Div, div, try_div);

// Tensor op scalar: the shape is kept.
macro_rules! tensor_scalar_op {
    ($tr:ident, $m:ident, $op:tt) => {
        impl<T: Float> std::ops::$tr<T> for Tensor<T> {
            type Output = Tensor<T>;
            fn $m(self, s: T) -> Tensor<T> {
                self.map(|x| x $op s)
            }
        }
        impl<T: Float> std::ops::$tr<T> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $m(self, s: T) -> Tensor<T> {
                self.map(|x| x $op s)
            }
        }
    };
}
tensor_scalar_op!(Add, add, +);
tensor_scalar_op!(Sub, sub, -);
tensor_scalar_op!(Mul, mul, *);
tensor_scalar_op!(Div, div, /);

// Scalar op tensor, per float type (a blanket impl on a foreign type parameter is not
// allowed).
macro_rules! scalar_tensor_op {
    ($t:ty, $tr:ident, $m:ident, $op:tt) => {
        impl std::ops::$tr<Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn $m(self, x: Tensor<$t>) -> Tensor<$t> {
                x.map(|v| self $op v)
            }
        }
        impl std::ops::$tr<&Tensor<$t>> for $t {
            type Output = Tensor<$t>;
            fn $m(self, x: &Tensor<$t>) -> Tensor<$t> {
                x.map(|v| self $op v)
            }
        }
    };
}
macro_rules! scalar_tensor_ops {
    ($($t:ty),*) => {$(
        scalar_tensor_op!($t, Add, add, +);
        scalar_tensor_op!($t, Sub, sub, -);
        scalar_tensor_op!($t, Mul, mul, *);
        scalar_tensor_op!($t, Div, div, /);
    )*};
}
scalar_tensor_ops!(f32, f64);

impl<T: Float> std::ops::Neg for Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map(|x| -x)
    }
}

impl<T: Float> std::ops::Neg for &Tensor<T> {
    type Output = Tensor<T>;
    fn neg(self) -> Tensor<T> {
        self.map(|x| -x)
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// The operators on every mix of owned and borrowed operands, in f32 and f64, against
    /// the values written out.
    fn operators<T: Float>() {
        let t = |v: &[f64], s: &[usize]| {
            Tensor::<T>::from_vec(v.iter().map(|&x| T::from_f64(x)).collect(), s)
        };
        let a = t(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
        let b = t(&[10.0, 20.0, 40.0], &[3]);
        let c = t(&[2.0, 4.0], &[2, 1]);
        let f = |x: Tensor<T>| x.data().iter().map(|v| v.to_f64()).collect::<Vec<_>>();
        assert_eq!(f(&a + &b), [11.0, 22.0, 43.0, 14.0, 25.0, 46.0]);
        assert_eq!(
            f(a.clone() - b.clone()),
            [-9.0, -18.0, -37.0, -6.0, -15.0, -34.0]
        );
        assert_eq!(f(a.clone() * &c), [2.0, 4.0, 6.0, 16.0, 20.0, 24.0]);
        assert_eq!(f(&a / c.clone()), [0.5, 1.0, 1.5, 1.0, 1.25, 1.5]);
        // Both operands broadcast: [2, 1] and [3] give [2, 3].
        assert_eq!(f(&c + &b), [12.0, 22.0, 42.0, 14.0, 24.0, 44.0]);
        assert_eq!((&c * &b).shape(), &[2, 3]);
        assert_eq!(f(-&c), [-2.0, -4.0]);
        assert_eq!(f(-c.clone()), [-2.0, -4.0]);
        let two = T::from_f64(2.0);
        assert_eq!(f(&c * two + T::ONE), [5.0, 9.0]);
        assert_eq!(f(c.clone() / two - T::ONE), [0.0, 1.0]);
    }

    #[test]
    fn operators_f32_and_f64() {
        operators::<f32>();
        operators::<f64>();
    }

    #[test]
    fn scalars_on_the_left() {
        let x = Tensor::<f32>::from_vec(vec![1.0, 2.0, 4.0], [3]);
        assert_eq!((1.0 + &x).to_vec(), vec![2.0, 3.0, 5.0]);
        assert_eq!((1.0 - &x).to_vec(), vec![0.0, -1.0, -3.0]);
        assert_eq!((2.0 * x.clone()).to_vec(), vec![2.0, 4.0, 8.0]);
        assert_eq!((8.0 / x).to_vec(), vec![8.0, 4.0, 2.0]);
        let y = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2]);
        assert_eq!((3.0 - y.clone()).to_vec(), vec![2.0, 1.0]);
        assert_eq!((1.0 / &y).to_vec(), vec![1.0, 0.5]);
        assert_eq!((0.5 * &y + 1.0).to_vec(), vec![1.5, 2.0]);
        assert_eq!((4.0 + y).to_vec(), vec![5.0, 6.0]);
    }

    #[test]
    fn zip_map_broadcasts() {
        let a = Tensor::<f64>::from_vec(vec![1.0, -2.0, 3.0, -4.0], [2, 2]);
        let s = Tensor::from_vec(vec![0.5, 10.0], [2, 1]);
        let y = a.zip_map(&s, |x, s| if x > 0.0 { x * s } else { 0.0 });
        assert_eq!(y.to_vec(), vec![0.5, 0.0, 30.0, 0.0]);
        // Long enough for the pool, and equal shapes: the same values in order.
        let n = 300_000;
        let big = Tensor::<f32>::from_fn([n], |i| i as f32);
        let z = big.zip_map(&big, |x, y| x - y + 1.0);
        assert!(z.data().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn sum_to_shape_and_broadcast_to_are_adjoint() {
        // <broadcast_to(x), g> = <x, sum_to_shape(g)> for every pair of shapes.
        let pairs: &[(&[usize], &[usize])] = &[
            (&[], &[2, 3]),
            (&[3], &[2, 3]),
            (&[2, 1], &[2, 3]),
            (&[1, 3, 1], &[2, 3, 4]),
            (&[2, 3], &[2, 3]),
        ];
        for (k, &(small, big)) in pairs.iter().enumerate() {
            let x = Tensor::<f64>::from_fn(small, |i| (i + k) as f64 * 0.5 - 1.0);
            let g = Tensor::<f64>::from_fn(big, |i| (i * 7 % 5) as f64 - 2.0);
            let bx = x.broadcast_to(big);
            let sg = g.sum_to_shape(small);
            assert_eq!((bx.shape().dims(), sg.shape().dims()), (big, small));
            let lhs: f64 = (&bx * &g).data().iter().sum();
            let rhs: f64 = (&x * &sg).data().iter().sum();
            assert!((lhs - rhs).abs() < 1e-12, "{small:?} {big:?}: {lhs} {rhs}");
        }
        // The same shape shares the buffer both ways.
        let t = Tensor::<f32>::ones([2, 2]);
        assert!(t.broadcast_to([2, 2]).shares_buffer(&t));
        assert!(t.sum_to_shape([2, 2]).shares_buffer(&t));
    }

    /// The error of a plain-form call, and the line it was made on.
    fn panic_message(f: impl FnOnce()) -> String {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        payload.downcast_ref::<String>().unwrap().clone()
    }

    #[test]
    fn shape_errors_name_the_shapes_and_the_callers_line() {
        let a = Tensor::<f64>::zeros([2, 3]);
        let b = Tensor::<f64>::zeros([4]);
        let line = line!() + 1;
        let e = a.try_mul(&b).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "mul: shapes [2, 3] and [4] are incompatible: they do not broadcast (aligned \
                 from the right, each pair of extents must be equal or 1) (called at \
                 src/tensor/arith.rs:{line}:19)"
            )
        );
        let line = line!() + 1;
        let m = panic_message(|| drop(&a + &b));
        assert!(
            m.starts_with("add: shapes [2, 3] and [4] are incompatible: they do not broadcast"),
            "{m}"
        );
        assert!(
            m.contains(&format!("(called at src/tensor/arith.rs:{line}:")),
            "{m}"
        );
        let m = panic_message(|| drop(a.zip_map(&b, |x, _| x)));
        assert!(m.starts_with("zip_map: shapes [2, 3] and [4]"), "{m}");

        let line = line!() + 1;
        let e = a.try_sum_to_shape([2]).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "sum_to_shape: shapes [2, 3] and [2] are incompatible: the target must \
                 broadcast to the tensor's shape (aligned from the right, each extent of the \
                 target 1 or the tensor's, and no more axes) (called at \
                 src/tensor/arith.rs:{line}:19)"
            )
        );
        assert!(a.try_sum_to_shape([1, 2, 3]).is_err()); // more axes than the tensor
        let m = panic_message(|| drop(a.sum_to_shape([3, 1])));
        assert!(
            m.starts_with("sum_to_shape: shapes [2, 3] and [3, 1]"),
            "{m}"
        );

        let e = a.try_broadcast_to([3, 3]).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "broadcast_to: shapes [2, 3] and [3, 3] are incompatible: axis 0 of the \
                 tensor has extent 2, which is neither 1 nor the target's 3"
            ),
            "{e}"
        );
        let line = line!() + 1;
        let m = panic_message(|| drop(a.broadcast_to([3])));
        assert!(
            m.contains(&format!("(called at src/tensor/arith.rs:{line}:")),
            "{m}"
        );
    }
}
