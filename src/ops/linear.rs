//! A fully connected layer's map with PyTorch's weight layout, as `F.linear`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::matmul::product;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `y = x · weightᵀ + bias` over the last axis of `x`: `[..., in] → [..., out]`, with
    /// `weight` of shape `[out, in]` (PyTorch's `nn.Linear` layout) and `bias` of `[out]`.
    /// The transposed product runs in the GEMM itself; nothing is copied.
    ///
    /// VJP: `∂L/∂x = G · W`, `∂L/∂W = Gᵀ · X` (summed over the leading axes),
    /// `∂L/∂b = Σ G`; products again, so differentiable to any order.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.input(Tensor::from_vec(vec![1.0, 2.0], [1, 2]));
    /// let w = tape.param(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2]));
    /// let b = tape.param(Tensor::from_vec(vec![0.5, 0.5, 0.5], [3]));
    /// assert_eq!(x.linear(w, Some(b)).value().to_vec(), vec![1.5, 2.5, 3.5]);
    /// ```
    #[track_caller]
    pub fn try_linear(
        self,
        weight: Var<'t, T>,
        bias: Option<Var<'t, T>>,
    ) -> Result<Var<'t, T>, Error> {
        const OP: &str = "linear";
        self.check_same_tape(OP, weight)?;
        let (xs, ws) = (self.shape(), weight.shape());
        if xs.rank() < 1 || ws.rank() != 2 || xs[xs.rank() - 1] != ws[1] {
            let why = "linear takes x of [..., in] and a weight of [out, in] (PyTorch's layout; \
                       matmul takes [in, out])";
            return Err(Error::incompatible(OP, &xs, &ws, why));
        }
        let (inp, out) = (ws[1], ws[0]);
        if let Some(b) = bias {
            self.check_same_tape(OP, b)?;
            if b.shape().dims() != [out] {
                let why = format!("the bias must have shape [{out}] (one per output)");
                return Err(Error::incompatible(OP, &ws, &b.shape(), why));
            }
        }
        let rows = xs.numel() / inp.max(1);
        let x2 = if xs.rank() == 2 {
            self
        } else {
            self.reshape([rows, inp])
        };
        let mut y = product(x2, false, weight, true, [rows, out].into());
        if let Some(b) = bias {
            y = y + b;
        }
        let mut dims = xs.dims().to_vec();
        *dims.last_mut().expect("rank checked above") = out;
        Ok(if xs.rank() == 2 { y } else { y.reshape(dims) })
    }

    /// [`Var::try_linear`], panicking at the caller's line on shapes that do not fit.
    #[track_caller]
    pub fn linear(self, weight: Var<'t, T>, bias: Option<Var<'t, T>>) -> Var<'t, T> {
        self.try_linear(weight, bias).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::GradCheck;
    use crate::ops::testing::{check, randn};
    use crate::prelude::*;

    #[test]
    fn gradcheck_configurations() {
        let cases: &[(&[usize], usize)] = &[(&[4, 5], 3), (&[1, 7], 2), (&[2, 3, 4], 5), (&[3], 1)];
        for (k, &(xs, out)) in cases.iter().enumerate() {
            let inp = xs[xs.len() - 1];
            let x = randn(k as u64, xs);
            let w = randn(10 + k as u64, &[out, inp]);
            let b = randn(20 + k as u64, &[out]);
            let what = format!("linear {xs:?} -> {out}");
            check(&what, &[x.clone(), w.clone(), b.clone()], |v| {
                v[0].linear(v[1], Some(v[2])).tanh()
            });
            check(&what, &[x.clone(), w.clone()], |v| {
                v[0].linear(v[1], None).tanh()
            });
            let report = GradCheck::new()
                .check_gradgrad(|v| v[0].linear(v[1], Some(v[2])).tanh(), &[x, w, b])
                .unwrap();
            assert!(report.max_abs_err() < 1e-6, "{what}: {report:?}");
        }
    }

    #[test]
    fn equals_matmul_with_the_transposed_weight() {
        let tape = Tape::<f64>::new();
        let x = tape.input(randn(1, &[5, 4]));
        let w = tape.input(randn(2, &[3, 4]));
        let a = x.linear(w, None).value().to_vec();
        let b = x.matmul(w.t()).value().to_vec();
        // The same sums, in the order each GEMM path takes.
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() <= 1e-15 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn shapes_are_checked() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let w = tape.input(Tensor::zeros([3, 4]));
        let (e, line) = (x.try_linear(w, None).unwrap_err(), line!());
        assert_eq!(e.location.line(), line);
        let s = e.to_string();
        assert!(
            s.contains("[2, 3]") && s.contains("[3, 4]") && s.contains("[out, in]"),
            "{s}"
        );
        let b = tape.input(Tensor::zeros([3]));
        let e = x
            .try_linear(tape.input(Tensor::zeros([4, 3])), Some(b))
            .unwrap_err();
        assert!(
            e.to_string().contains("the bias must have shape [4]"),
            "{e}"
        );
    }
}
