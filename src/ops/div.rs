//! `a / b` with NumPy broadcasting, and `a / s`, `s / a` for a scalar.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_zip, map};
use crate::ops::{broadcast_pair, unbroadcast_to};
use crate::tape::{Held, Var};
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `y = a / b` for `a = self`, `b = other`, broadcasting as NumPy does;
    /// also the `/` operator.
    ///
    /// Shapes: the two shapes broadcast to one, aligned from the right, each pair of
    /// extents equal or one of them 1 (`[2, 3]` and `[3]` give `[2, 3]`, `[2, 1]` and `[1, 4]`
    /// give `[2, 4]`); an error otherwise, or when the operands are on different tapes.
    ///
    /// VJP: `∂L/∂a = unbroadcast(g / b)`, `∂L/∂b = unbroadcast(−g a / b²)`. The second is
    /// computed as `−(g / b) ⊙ y` with the saved output `y = a / b`, reusing `g / b`.
    /// Division by zero follows IEEE 754 (`±inf` or NaN), in the value and the gradients.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.param(Tensor::from_vec(vec![1.0, 6.0], [2]));
    /// let b = tape.param(Tensor::from_vec(vec![2.0, 3.0], [2]));
    /// let y = a / b;
    /// assert_eq!(y.value().to_vec(), vec![0.5, 2.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[a].to_vec(), vec![0.5, 1.0 / 3.0]);
    /// assert_eq!(g[b].to_vec(), vec![-0.25, -6.0 / 9.0]);
    /// ```
    #[track_caller]
    pub fn try_div(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("div", self, other)?;
        let y = Tensor::from_vec(
            broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| x / y),
            out,
        );
        let held = [Held::tensor(&b), Held::tensor(&y)];
        self.tape()
            .try_record_graph("div", &[self, other], y, &held, |a| {
                let (x0, x1) = (a.input(0), a.input(1));
                // g / b over the broadcast shape: a's gradient, and a factor of b's (-g a / b^2
                // = -(g / b) y).
                let q = a.g() / x1;
                [
                    a.then(0, || unbroadcast_to(q, x0)),
                    a.then(1, || unbroadcast_to(-(q * a.output()), x1)),
                ]
                .into()
            })
    }

    /// `self / s` for a scalar `s`, `y = x / s` elementwise; also `x / s`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g / s`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let y = x.div_scalar(4.0);
    /// assert_eq!(y.value().to_vec(), vec![0.25, 0.5]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.25, 0.25]);
    /// ```
    #[track_caller]
    pub fn div_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v / s), x.shape().clone());
        self.tape()
            .record_differentiable("div_scalar", &[self], y, move |a| {
                [Some(a.g().div_scalar(s))].into()
            })
    }

    /// `s / self` for a scalar `s`, `y = s / x` elementwise; also `s / x`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = −s g / x²`. At `x = 0` the value and gradient are infinite (or NaN
    /// for `s = 0`), as IEEE 754 division gives.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let y = 1.0 / x;
    /// assert_eq!(y.value().to_vec(), vec![1.0, 0.5]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, -0.25]);
    /// ```
    #[track_caller]
    pub fn rdiv_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| s / v), x.shape().clone());
        // d(s / x)/dx = -s / x^2 = -y / x.
        self.tape()
            .record_differentiable("rdiv_scalar", &[self], y, |a| {
                [Some(-(a.g() * a.output() / a.input(0)))].into()
            })
    }
}

impl<'t, T: Float> std::ops::Div for Var<'t, T> {
    type Output = Var<'t, T>;
    /// `a / b`, as [`Var::try_div`].
    ///
    /// # Panics
    /// With the message of [`Var::try_div`]'s error.
    #[track_caller]
    fn div(self, rhs: Var<'t, T>) -> Var<'t, T> {
        self.try_div(rhs).or_panic()
    }
}

impl<'t, T: Float> std::ops::Div<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn div(self, s: T) -> Var<'t, T> {
        self.div_scalar(s)
    }
}

macro_rules! scalar_lhs_div {
    ($t:ty) => {
        impl<'t> std::ops::Div<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn div(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.rdiv_scalar(self)
            }
        }
    };
}
scalar_lhs_div!(f32);
scalar_lhs_div!(f64);

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::shape::Shape;
    use crate::tape::{Tape, Var};
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    use crate::ops::testing::BROADCAST_PAIRS as CONFIGS;

    fn randn(seed: u64, s: &[usize]) -> Tensor<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Tensor::randn(Shape::from(s), &mut rng)
    }

    // Random signs, magnitudes in [0.5, 1.5]: away from the pole at 0.
    fn away_from_zero(seed: u64, s: &[usize]) -> Tensor<f64> {
        randn(seed, s).map(|v| v.signum() * (0.5 + v.abs().min(1.0)))
    }

    #[test]
    fn gradcheck_broadcasting() {
        let mut worst = 0.0f64;
        for (k, &(sa, sb)) in CONFIGS.iter().enumerate() {
            let x = [
                randn(2 * k as u64, sa),
                away_from_zero(2 * k as u64 + 1, sb),
            ];
            match gradcheck(|v| v[0] / v[1], &x) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("div {sa:?} / {sb:?}: {e}"),
            }
        }
        eprintln!("div: {} configs, max |error| {worst:.3e}", CONFIGS.len());
    }

    #[test]
    fn gradcheck_scalar_forms() {
        let mut worst = 0.0f64;
        let shapes: &[&[usize]] = &[&[], &[1], &[5], &[2, 3], &[2, 3, 4]];
        for (k, &s) in shapes.iter().enumerate() {
            let x = [away_from_zero(k as u64, s)];
            for r in [
                gradcheck(|v| v[0].div_scalar(0.7), &x),
                gradcheck(|v| v[0] / -4.0, &x),
                gradcheck(|v| 1.0 / v[0], &x),
                gradcheck(|v| v[0].rdiv_scalar(-2.5), &x),
            ] {
                match r {
                    Ok(r) => worst = worst.max(r.max_abs_err()),
                    Err(e) => panic!("div_scalar {s:?}: {e}"),
                }
            }
        }
        eprintln!("div_scalar/rdiv_scalar: 20 configs, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
        let b = tape.param(Tensor::from_vec(vec![2.0, 4.0], [2, 1]));
        let y = a / b;
        assert_eq!(y.shape(), [2, 3]);
        assert_eq!(y.value().to_vec(), vec![0.5, 1.0, 1.5, 1.0, 1.25, 1.5]);
        let g = tape.backward(y.sum());
        assert_eq!(g[a].to_vec(), vec![0.5, 0.5, 0.5, 0.25, 0.25, 0.25]);
        // -(1 + 2 + 3) / 4 and -(4 + 5 + 6) / 16
        assert_eq!(g[b].to_vec(), vec![-1.5, -15.0 / 16.0]);

        let tape = Tape::<f64>::new();
        let a = tape.scalar(3.0);
        let b = tape.param(Tensor::from_vec(vec![1.0, 2.0, -4.0], [3]));
        let y = a / b; // only b needs a gradient: a's is skipped
        assert_eq!(y.value().to_vec(), vec![3.0, 1.5, -0.75]);
        assert_eq!(
            tape.backward(y.sum())[b].to_vec(),
            vec![-3.0, -0.75, -3.0 / 16.0]
        );
    }

    #[test]
    fn scalar_operators_both_sides() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![2.0, -8.0], [2]));
        assert_eq!((x / 4.0f32).value().to_vec(), vec![0.5, -2.0]);
        let y = 1.0f32 / x;
        assert_eq!(y.op(), "rdiv_scalar");
        assert_eq!(y.value().to_vec(), vec![0.5, -0.125]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-0.25, -1.0 / 64.0]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![2.0, -8.0], [2]));
        let y = x / 4.0 + 1.0 / x;
        assert_eq!(y.value().to_vec(), vec![1.0, -2.125]);
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![0.25 - 0.25, 0.25 - 1.0 / 64.0]
        );
    }

    #[test]
    fn division_by_zero_is_ieee() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
        let y = 1.0 / x;
        assert_eq!(y.value().to_vec(), vec![f64::INFINITY, 1.0]);
        assert_eq!(tape.backward(y.sum())[x][[0]], f64::NEG_INFINITY);
    }

    #[test]
    fn not_broadcastable_names_both_shapes() {
        let tape = Tape::<f64>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let b = tape.input(Tensor::ones([4]));
        let line = line!() + 1;
        let e = a.try_div(b).unwrap_err().to_string();
        assert!(
            e.starts_with("div: shapes [2, 3] and [4] are incompatible: they do not broadcast"),
            "{e}"
        );
        assert!(
            e.contains(&format!("(called at src/ops/div.rs:{line}:")),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "div: shapes [3] and [2] are incompatible")]
    fn operator_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let _ = tape.input(Tensor::zeros([3])) / tape.input(Tensor::ones([2]));
    }

    #[test]
    fn foreign_tape() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
        let a: Var<'_, f64> = t1.param(Tensor::zeros([2]));
        let b = t2.param(Tensor::ones([2]));
        let e = a.try_div(b).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "div: a handle from another tape was used on this one (called at src/ops/div.rs:"
            ),
            "{e}"
        );
    }
}
