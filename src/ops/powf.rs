//! `x^p` for a scalar exponent.

use crate::error::OrPanic;
use crate::float::Float;
use crate::kernels::elementwise::map;
use crate::ops::pointwise;
use crate::tape::{Held, Var};
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// `x^p`, elementwise, for a scalar exponent `p`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = p x^(p−1) g`.
    ///
    /// For `x > 0` every `p` is fine. Elsewhere the value and the gradient are what
    /// [`Float::powf`] gives, as in PyTorch:
    /// - `x < 0`: real for an integer `p` (`(−2)^3 = −8`, gradient `3·4`), NaN otherwise;
    /// - `x = 0`: value `0` for `p > 0`, `inf` for `p < 0`; gradient `0` for `p > 1`, `g` for
    ///   `p = 1`, `inf` for `0 < p < 1`, `−inf` for `p < 0`;
    /// - `p = 0`: value 1 everywhere (`0^0 = 1`) and gradient 0 everywhere, where the
    ///   formula would give `0 · inf = NaN` at `x = 0`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![4.0, 9.0], [2]));
    /// let y = x.powf(0.5);
    /// assert_eq!(y.value().to_vec(), vec![2.0, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.25, 1.0 / 6.0]);
    /// ```
    #[track_caller]
    pub fn powf(self, p: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v.powf(p)), x.shape().clone());
        self.tape()
            .try_record_graph("powf", &[self], y, &[Held::tensor(&x)], move |a| {
                [powf_backward(a.g(), a.input(0), p)].into()
            })
            .or_panic()
    }
}

/// `g · p x^(p-1)`, in one pass, or `None` (zero) for `p = 0`; its derivative in `x` is
/// the same with `p - 1` for `p`, times `p`.
fn powf_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, p: T) -> Option<Var<'s, T>> {
    if p == T::ZERO {
        return None;
    }
    let q = p - T::ONE;
    Some(pointwise(
        "powf_backward",
        g,
        x,
        move |g, x| p * x.powf(q) * g,
        move |a| {
            let (g, x) = (a.input(0), a.input(1));
            [
                a.needs(0).then(|| powf_backward(a.g(), x, p)).flatten(),
                a.needs(1)
                    .then(|| powf_backward(a.g() * g, x, q).map(|d| d.mul_scalar(p)))
                    .flatten(),
            ]
            .into()
        },
    ))
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::shape::Shape;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    const SHAPES: &[&[usize]] = &[&[], &[1], &[5], &[2, 3], &[2, 3, 4], &[3, 1, 2]];

    #[test]
    fn gradcheck_positive_inputs() {
        let exponents = [2.0, 3.0, 0.5, -1.5, 1.0, 0.0, 2.7, -2.0];
        let mut worst = 0.0f64;
        let mut n = 0;
        for (k, &s) in SHAPES.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::uniform(Shape::from(s), 0.5, 2.0, &mut rng);
            for p in exponents {
                match gradcheck(|v| v[0].powf(p), std::slice::from_ref(&x)) {
                    Ok(r) => worst = worst.max(r.max_abs_err()),
                    Err(e) => panic!("powf {s:?} ^ {p}: {e}"),
                }
                n += 1;
            }
        }
        eprintln!("powf (x > 0): {n} configs, max |error| {worst:.3e}");
    }

    #[test]
    fn gradcheck_integer_exponents_of_negative_inputs() {
        let mut worst = 0.0f64;
        let mut n = 0;
        for (k, &s) in SHAPES.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + k as u64);
            let x = Tensor::uniform(Shape::from(s), -2.0, -0.5, &mut rng);
            for p in [2.0, 3.0, -1.0] {
                match gradcheck(|v| v[0].powf(p), std::slice::from_ref(&x)) {
                    Ok(r) => worst = worst.max(r.max_abs_err()),
                    Err(e) => panic!("powf {s:?} ^ {p}: {e}"),
                }
                n += 1;
            }
        }
        eprintln!("powf (x < 0, integer p): {n} configs, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, -3.0, 0.5], [2, 2]));
        let y = x.powf(2.0);
        assert_eq!(y.op(), "powf");
        assert_eq!(y.value().to_vec(), vec![1.0, 4.0, 9.0, 0.25]);
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![2.0, 4.0, -6.0, 1.0]
        );

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![-2.0, 8.0], [2]));
        let y = x.powf(3.0);
        assert_eq!(y.value().to_vec(), vec![-8.0, 512.0]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![12.0, 192.0]);
    }

    #[test]
    fn behaviour_at_zero_and_below() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -4.0], [2]));
        let y = x.powf(0.5);
        let (v, g) = (y.value(), tape.backward(y.sum())[x].clone());
        assert_eq!(v[[0]], 0.0);
        assert_eq!(g[[0]], f64::INFINITY);
        assert!(v[[1]].is_nan() && g[[1]].is_nan());

        // p = 0: value 1 and gradient 0 everywhere, 0^0 included.
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -4.0, 3.0], [3]));
        let y = x.powf(0.0);
        assert_eq!(y.value().to_vec(), vec![1.0; 3]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0; 3]);

        // p = 1 at 0 passes the gradient through; p = 2 gives 0; p = -1 gives -inf.
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(0.0));
        let y = x.powf(1.0) + x.powf(2.0);
        assert_eq!(tape.backward(y)[x].item(), 1.0);
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(0.0));
        let y = x.powf(-1.0);
        assert_eq!(y.value().item(), f64::INFINITY);
        assert_eq!(tape.backward(y)[x].item(), f64::NEG_INFINITY);
    }
}
