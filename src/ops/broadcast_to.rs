//! Explicit NumPy broadcasting to a target shape.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::broadcast_to;
use crate::ops::{unbroadcast, unbroadcast_to};
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// `x` repeated along new leading axes and along its extent-1 axes to fill `shape`, by
    /// NumPy's rules: aligned from the right, each extent of `x` equals the target's or is
    /// 1, and the target may have more (leading) axes but not fewer. As
    /// `torch.broadcast_to`, except that the result is a copy (there are no strided views).
    /// Broadcasting to the same shape shares the buffer.
    ///
    /// Shapes: `[d₀, …, dᵣ₋₁] → shape`, `shape.rank() ≥ r`.
    ///
    /// VJP: `∂L/∂x = unbroadcast(g)`: `g` summed over the new leading axes and over the axes
    /// where `x` had extent 1, back to the shape of `x`.
    ///
    /// Errors: the target has fewer axes than `x`, or an extent of `x` is neither 1 nor the
    /// target's.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let b = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    /// let y = b.broadcast_to([2, 3]);
    /// assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[b].to_vec(), vec![2.0; 3]); // each element was used twice
    /// assert!(b.try_broadcast_to([2, 4]).is_err());
    /// ```
    #[track_caller]
    pub fn try_broadcast_to(self, shape: impl Into<Shape>) -> Result<Var<'t, T>, Error> {
        let target = shape.into();
        let x = self.value();
        let src = x.shape().clone();
        check_broadcast_to(&src, &target)?;
        let y = if src == target {
            x
        } else {
            Tensor::from_vec(broadcast_to(x.data(), &src, &target), target)
        };
        self.tape()
            .try_record_differentiable("broadcast_to", &[self], y, |a| {
                [Some(unbroadcast_to(a.g(), a.input(0)))].into()
            })
    }

    /// [`Var::try_broadcast_to`], panicking when the shapes do not broadcast.
    ///
    /// # Panics
    /// With the message of [`Var::try_broadcast_to`]'s error.
    #[track_caller]
    pub fn broadcast_to(self, shape: impl Into<Shape>) -> Var<'t, T> {
        self.try_broadcast_to(shape).or_panic()
    }

    /// The sum of `self` over the axes along which `shape` broadcasts to `self`'s shape:
    /// the reverse of [`Var::broadcast_to`] (and the gradient of a broadcast operand), with
    /// `shape` as the result's shape.
    ///
    /// VJP: `∂L/∂x = broadcast_to(g, x.shape)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// let y = x.sum_to([1, 3]);
    /// assert_eq!(y.value().to_vec(), vec![5.0, 7.0, 9.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0; 6]);
    /// ```
    #[track_caller]
    pub fn try_sum_to(self, shape: impl Into<Shape>) -> Result<Var<'t, T>, Error> {
        let target = shape.into();
        let x = self.value();
        check_broadcast_to(&target, x.shape()).map_err(|e| Error { op: "sum_to", ..e })?;
        let y = unbroadcast(&x, &target);
        self.tape()
            .try_record_differentiable("sum_to", &[self], y, |a| {
                [Some(a.g().broadcast_to(a.input(0).shape()))].into()
            })
    }

    /// [`Var::try_sum_to`], panicking at the caller's line on a shape that does not
    /// broadcast to this one.
    #[track_caller]
    pub fn sum_to(self, shape: impl Into<Shape>) -> Var<'t, T> {
        self.try_sum_to(shape).or_panic()
    }
}

/// `Ok` when a tensor of shape `src` broadcasts to `target` by NumPy's rules (and `target`
/// can be allocated); the error of [`Var::try_broadcast_to`] and
/// [`Tensor::try_broadcast_to`] otherwise.
#[track_caller]
pub(crate) fn check_broadcast_to(src: &Shape, target: &Shape) -> Result<(), Error> {
    if target.rank() < src.rank() {
        return Err(Error::incompatible(
            "broadcast_to",
            src,
            target,
            format!(
                "the target has rank {} but the tensor has rank {}; broadcasting adds leading axes and never removes any",
                target.rank(),
                src.rank()
            ),
        ));
    }
    let off = target.rank() - src.rank();
    for (i, &d) in src.iter().enumerate() {
        let t = target[off + i];
        if d != t && d != 1 {
            return Err(Error::incompatible(
                "broadcast_to",
                src,
                target,
                format!(
                    "axis {i} of the tensor has extent {d}, which is neither 1 nor the target's {t} (axis {} of the target; shapes align from the right)",
                    off + i
                ),
            ));
        }
    }
    // Every target extent is the source's or a new one: the result must be a buffer that
    // can exist (isize::MAX bytes of f64, Rust's limit for one allocation).
    let numel = target.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if numel.is_none_or(|n| n > isize::MAX as usize / 8) {
        return Err(Error::bad_shape(
            "broadcast_to",
            target,
            "the target holds more elements than memory can address",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_target_past_memory() {
        // A 1-element source may broadcast to any shape; one of 2^128 elements has no buffer.
        let tape = crate::tape::Tape::<f32>::new();
        let x = tape.param(Tensor::ones([1]));
        let e = x.try_broadcast_to([1 << 32, 1 << 32, 1]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "broadcast_to: shape [4294967296, 4294967296, 1] refused: the target holds more \
                 elements than memory can address (called at src/ops/broadcast_to.rs:"
            ),
            "{e}"
        );
        assert!(x.try_broadcast_to([usize::MAX, 2]).is_err());
        assert_eq!(x.broadcast_to([0, 3]).shape(), [0, 3]);
    }

    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_leading_middle_and_trailing_axes() {
        let table: &[(&[usize], &[usize])] = &[
            (&[], &[]),
            (&[], &[2, 3]),
            (&[1], &[4]),
            (&[3], &[3]),
            (&[3], &[2, 3]),          // a new leading axis
            (&[3], &[2, 4, 3]),       // two new leading axes
            (&[2, 1], &[2, 5]),       // the last axis
            (&[1, 3], &[4, 3]),       // the first axis
            (&[2, 1, 3], &[2, 4, 3]), // a middle axis
            (&[1, 3, 1], &[2, 3, 4]),
            (&[2, 1, 3], &[3, 2, 2, 3]), // a leading and a middle axis
            (&[2, 1, 3, 1], &[2, 2, 3, 2]),
            (&[1, 1, 1, 1], &[2, 1, 3, 2]),
        ];
        let mut worst: f64 = 0.0;
        for (k, &(from, to)) in table.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::<f64>::randn(from, &mut rng);
            match gradcheck(|v| v[0].broadcast_to(to), &[x]) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{from:?} -> {to:?}: {e}"),
            }
        }
        println!(
            "broadcast_to: {} gradcheck configurations, max |error| {worst:.3e}",
            table.len()
        );
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2, 1]));
        let y = x.broadcast_to([3, 2, 2]);
        assert_eq!(y.shape(), [3, 2, 2]);
        assert_eq!(y.value().to_vec(), [1.0, 1.0, 2.0, 2.0].repeat(3));
        let w = tape.input(Tensor::arange(12).reshape([3, 2, 2]));
        let g = tape.backward((y * w).sum());
        // Row 0 collects w[:, 0, :] = 0+1+4+5+8+9, row 1 collects w[:, 1, :].
        assert_eq!(g[x].to_vec(), vec![27.0, 39.0]);

        let tape = Tape::<f64>::new();
        let s = tape.param(Tensor::scalar(0.5));
        let y = s.broadcast_to([2, 2]);
        assert_eq!(y.value().to_vec(), vec![0.5; 4]);
        assert_eq!(tape.backward(y.sum())[s].item(), 4.0);
        // The same shape shares the buffer; an extent 1 may become 0.
        let t = Tape::<f64>::new();
        let x = t.input(Tensor::ones([2, 3]));
        assert!(x.broadcast_to([2, 3]).value().shares_buffer(&x.value()));
        let e = t.input(Tensor::ones([1, 3])).broadcast_to([0, 3]);
        assert_eq!(e.shape(), [0, 3]);
    }

    #[test]
    fn lower_target_rank_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([1, 3]));
        let s = x.try_broadcast_to([3]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "broadcast_to: shapes [1, 3] and [3] are incompatible: the target has rank 1 but the tensor has rank 2; broadcasting adds leading axes and never removes any (called at src/ops/broadcast_to.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn mismatched_extent_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_broadcast_to([4, 3, 3]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "broadcast_to: shapes [2, 3] and [4, 3, 3] are incompatible: axis 0 of the tensor has extent 2, which is neither 1 nor the target's 3 (axis 1 of the target; shapes align from the right) (called at src/ops/broadcast_to.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "broadcast_to: shapes [3] and [2, 4] are incompatible")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([3])).broadcast_to([2, 4]);
    }
}
