//! `a - b` with NumPy broadcasting, and `a - s`, `s - a` for a scalar.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_zip, map};
use crate::ops::{broadcast_pair, unbroadcast_to};
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `y = a − b` for `a = self`, `b = other`, broadcasting as NumPy does;
    /// also the `-` operator.
    ///
    /// Shapes: the two shapes broadcast to one, aligned from the right, each pair of
    /// extents equal or one of them 1 (`[2, 3]` and `[3]` give `[2, 3]`, `[2, 1]` and `[1, 4]`
    /// give `[2, 4]`); an error otherwise, or when the operands are on different tapes.
    ///
    /// VJP: `∂L/∂a = unbroadcast(g)`, `∂L/∂b = −unbroadcast(g)`: the upstream gradient
    /// summed over the axes along which each operand was broadcast.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::ones([2, 3]));
    /// let b = tape.param(Tensor::ones([3]));
    /// let y = a - b;
    /// assert_eq!(y.value().to_vec(), vec![0.0; 6]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[b].to_vec(), vec![-2.0; 3]); // b was broadcast over 2 rows
    /// ```
    #[track_caller]
    pub fn try_sub(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("sub", self, other)?;
        let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| x - y);
        self.tape().try_record_differentiable(
            "sub",
            &[self, other],
            Tensor::from_vec(y, out),
            |a| {
                [
                    a.then(0, || unbroadcast_to(a.g(), a.input(0))),
                    a.then(1, || -unbroadcast_to(a.g(), a.input(1))),
                ]
                .into()
            },
        )
    }

    /// `self - s` for a scalar `s`, `y = x − s` elementwise; also `x - s`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// assert_eq!(x.sub_scalar(0.5).value().to_vec(), vec![0.5, 1.5]);
    /// assert_eq!((x - 1.0).value().to_vec(), vec![0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn sub_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v - s), x.shape().clone());
        self.tape()
            .record_differentiable("sub_scalar", &[self], y, |a| [Some(a.g())].into())
    }

    /// `s - self` for a scalar `s`, `y = s − x` elementwise; also `s - x`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = −g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let y = 3.0 - x;
    /// assert_eq!(y.value().to_vec(), vec![2.0, 1.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, -1.0]);
    /// ```
    #[track_caller]
    pub fn rsub_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| s - v), x.shape().clone());
        self.tape()
            .record_differentiable("rsub_scalar", &[self], y, |a| [Some(-a.g())].into())
    }
}

impl<'t, T: Float> std::ops::Sub for Var<'t, T> {
    type Output = Var<'t, T>;
    /// `a - b`, as [`Var::try_sub`].
    ///
    /// # Panics
    /// With the message of [`Var::try_sub`]'s error.
    #[track_caller]
    fn sub(self, rhs: Var<'t, T>) -> Var<'t, T> {
        self.try_sub(rhs).or_panic()
    }
}

impl<'t, T: Float> std::ops::Sub<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn sub(self, s: T) -> Var<'t, T> {
        self.sub_scalar(s)
    }
}

macro_rules! scalar_lhs_sub {
    ($t:ty) => {
        impl<'t> std::ops::Sub<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn sub(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.rsub_scalar(self)
            }
        }
    };
}
scalar_lhs_sub!(f32);
scalar_lhs_sub!(f64);

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::shape::Shape;
    use crate::tape::{Tape, Var};
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    use crate::ops::testing::BROADCAST_PAIRS as CONFIGS;

    fn inputs(k: usize, sa: &[usize], sb: &[usize]) -> [Tensor<f64>; 2] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
        [
            Tensor::randn(Shape::from(sa), &mut rng),
            Tensor::randn(Shape::from(sb), &mut rng),
        ]
    }

    #[test]
    fn gradcheck_broadcasting() {
        let mut worst = 0.0f64;
        for (k, &(sa, sb)) in CONFIGS.iter().enumerate() {
            match gradcheck(|v| v[0] - v[1], &inputs(k, sa, sb)) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("sub {sa:?} - {sb:?}: {e}"),
            }
        }
        eprintln!("sub: {} configs, max |error| {worst:.3e}", CONFIGS.len());
    }

    #[test]
    fn gradcheck_scalar_forms() {
        let mut worst = 0.0f64;
        let shapes: &[&[usize]] = &[&[], &[1], &[5], &[2, 3], &[2, 3, 4]];
        for (k, &s) in shapes.iter().enumerate() {
            let x = [inputs(k, s, &[])[0].clone()];
            for r in [
                gradcheck(|v| v[0].sub_scalar(0.7), &x),
                gradcheck(|v| v[0] - 1.5, &x),
                gradcheck(|v| 2.0 - v[0], &x),
                gradcheck(|v| v[0].rsub_scalar(-0.3), &x),
            ] {
                match r {
                    Ok(r) => worst = worst.max(r.max_abs_err()),
                    Err(e) => panic!("sub_scalar {s:?}: {e}"),
                }
            }
        }
        eprintln!("sub_scalar/rsub_scalar: 20 configs, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
        let b = tape.param(Tensor::from_vec(vec![10.0, 20.0], [2, 1]));
        let y = a - b;
        assert_eq!(y.shape(), [2, 3]);
        assert_eq!(
            y.value().to_vec(),
            vec![-9.0, -8.0, -7.0, -16.0, -15.0, -14.0]
        );
        let g = tape.backward(y.sum());
        assert_eq!(g[a].to_vec(), vec![1.0; 6]);
        assert_eq!(g[b].to_vec(), vec![-3.0, -3.0]);

        let tape = Tape::<f64>::new();
        let a = tape.scalar(5.0);
        let b = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
        let y = a - b; // only b needs a gradient: a's is skipped
        assert_eq!(y.value().to_vec(), vec![4.0, 3.0, 2.0]);
        assert_eq!(tape.backward(y.sum())[b].to_vec(), vec![-1.0; 3]);
    }

    #[test]
    fn scalar_operators_both_sides() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, -2.0], [2]));
        assert_eq!((x - 0.5f32).value().to_vec(), vec![0.5, -2.5]);
        assert_eq!((2.0f32 - x).value().to_vec(), vec![1.0, 4.0]);
        let y = (2.0f32 - x) + (x - 3.0f32);
        assert_eq!(y.value().to_vec(), vec![-1.0, -1.0]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0, 0.0]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, -2.0], [2]));
        let y = 2.0 - x;
        assert_eq!(y.value().to_vec(), vec![1.0, 4.0]);
        assert_eq!((x - 4.0).value().to_vec(), vec![-3.0, -6.0]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, -1.0]);
    }

    #[test]
    fn not_broadcastable_names_both_shapes() {
        let tape = Tape::<f64>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let b = tape.input(Tensor::zeros([4]));
        let line = line!() + 1;
        let e = a.try_sub(b).unwrap_err().to_string();
        assert!(
            e.starts_with("sub: shapes [2, 3] and [4] are incompatible: they do not broadcast"),
            "{e}"
        );
        assert!(
            e.contains(&format!("(called at src/ops/sub.rs:{line}:")),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "sub: shapes [3] and [2] are incompatible")]
    fn operator_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let _ = tape.input(Tensor::zeros([3])) - tape.input(Tensor::zeros([2]));
    }

    #[test]
    fn foreign_tape() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
        let a: Var<'_, f64> = t1.param(Tensor::zeros([2]));
        let b = t2.param(Tensor::zeros([2]));
        let e = a.try_sub(b).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "sub: a handle from another tape was used on this one (called at src/ops/sub.rs:"
            ),
            "{e}"
        );
    }
}
