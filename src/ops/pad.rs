//! Padding of the trailing axes: constant, reflect and replicate, as PyTorch's `F.pad`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::resample::{PlaneMap, Taps};
use crate::ops::resample::Names;
use crate::tape::Var;
use std::rc::Rc;

/// What [`Var::pad`] puts in the border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant (PyTorch's `mode="constant", value=v`).
    Constant(f64),
    /// The input mirrored about its edge element, which is not repeated: `[a b c]` padded
    /// by 2 on each side is `[c b a b c b a]`. The padding must be smaller than the axis.
    Reflect,
    /// The edge element repeated: `[a a a b c c c]`.
    Replicate,
}

impl<'t, T: Float> Var<'t, T> {
    /// `self` with `padding[k] = (before, after)` elements added around each of its last
    /// `padding.len()` axes, in axis order (PyTorch's `F.pad` lists the pairs from the last
    /// axis backwards: its `(1, 2, 3, 4)` on NCHW is `&[(3, 4), (1, 2)]` here).
    ///
    /// VJP: the output gradient summed back onto the elements each border element was
    /// copied from (constant padding: cropped); its VJP is the padding again, so `pad` is
    /// differentiable to any order.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3]));
    /// let r = x.pad(&[(0, 0), (2, 1)], PadMode::Reflect);
    /// assert_eq!(r.value().to_vec(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    /// assert_eq!(tape.backward(r.sum())[x].to_vec(), vec![1.0, 3.0, 2.0]);
    /// let c = x.pad(&[(1, 0)], PadMode::Constant(-1.0));
    /// assert_eq!(c.value().to_vec(), vec![-1.0, 1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn try_pad(self, padding: &[(usize, usize)], mode: PadMode) -> Result<Var<'t, T>, Error> {
        const OP: &str = "pad";
        let shape = self.shape();
        if padding.len() > shape.len() {
            return Err(Error::bad_shape(
                OP,
                &shape,
                format!(
                    "{} (before, after) pairs for a tensor of rank {}",
                    padding.len(),
                    shape.len()
                ),
            ));
        }
        let first = shape.len() - padding.len();
        let mut axes = Vec::with_capacity(padding.len());
        for (k, &(before, after)) in padding.iter().enumerate() {
            let n = shape[first + k];
            let bad = |why: String| {
                Err(Error::bad_shape(
                    OP,
                    &shape,
                    format!("axis {}: {why}", first + k),
                ))
            };
            match mode {
                PadMode::Reflect if before >= n || after >= n => {
                    return bad(format!(
                        "reflect padding ({before}, {after}) must be smaller than the axis's size {n}"
                    ));
                }
                PadMode::Replicate if n == 0 && before + after > 0 => {
                    return bad("replicate padding of an empty axis".into());
                }
                _ => {}
            }
            axes.push(pad_taps(n, before, after, mode));
        }
        let fill = match mode {
            PadMode::Constant(v) => T::from_f64(v),
            _ => T::ZERO,
        };
        let map = PlaneMap::separable(&shape[first..], &axes);
        let names = Names {
            op: OP,
            backward: "pad_backward",
        };
        Ok(self.resample(names, Rc::new(map), fill))
    }

    /// [`Var::try_pad`], panicking at the caller's line on bad padding.
    #[track_caller]
    pub fn pad(self, padding: &[(usize, usize)], mode: PadMode) -> Var<'t, T> {
        self.try_pad(padding, mode).or_panic()
    }
}

/// One axis of `n` elements padded by `(before, after)`: output coordinate `j` reads input
/// `j - before`, mirrored or clamped at the edges, or nothing (the constant).
fn pad_taps<T: Float>(n: usize, before: usize, after: usize, mode: PadMode) -> Vec<Taps<T>> {
    (0..before + n + after)
        .map(|j| {
            let src = j as isize - before as isize;
            let last = n as isize - 1;
            let src = match mode {
                PadMode::Constant(_) => (0..=last).contains(&src).then_some(src),
                PadMode::Reflect => Some(if src < 0 {
                    -src
                } else if src > last {
                    2 * last - src
                } else {
                    src
                }),
                PadMode::Replicate => Some(src.clamp(0, last)),
            };
            src.map(|i| vec![(i as usize, T::ONE)]).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, randn};
    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_modes_and_shapes() {
        type Case = (&'static [usize], &'static [(usize, usize)]);
        let cases: &[Case] = &[
            (&[5], &[(2, 3)]),
            (&[2, 3, 4, 5], &[(1, 2), (3, 0)]),
            (&[1, 1, 3, 3], &[(2, 2), (1, 2)]),
            (&[2, 4, 3], &[(0, 1), (1, 1), (2, 0)]),
            (&[3, 2], &[]),
        ];
        let mut worst = 0.0f64;
        for (k, &(s, p)) in cases.iter().enumerate() {
            for mode in [PadMode::Constant(0.5), PadMode::Reflect, PadMode::Replicate] {
                let x = randn(k as u64, s);
                let name = format!("pad {s:?} {p:?} {mode:?}");
                worst = worst.max(check(&name, &[x], |v| v[0].pad(p, mode).tanh()));
            }
        }
        eprintln!("pad: {} configs, max |error| {worst:.3e}", 3 * cases.len());
    }

    #[test]
    fn modes_by_hand_and_errors() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
        let rep = x.pad(&[(1, 0), (0, 2)], PadMode::Replicate);
        assert_eq!(rep.shape().to_vec(), vec![3, 4]);
        let want = [1.0, 2.0, 2.0, 2.0, 1.0, 2.0, 2.0, 2.0, 3.0, 4.0, 4.0, 4.0];
        assert_eq!(rep.value().to_vec(), want);
        let e = x
            .try_pad(&[(2, 0)], PadMode::Reflect)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pad") && e.contains("[2, 2]") && e.contains("smaller"),
            "{e}"
        );
        let e = x
            .try_pad(&[(1, 1); 3], PadMode::Replicate)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 (before, after) pairs") && e.contains("rank 2"),
            "{e}"
        );
    }
}
