//! Shapes: the extent of each axis, row-major, held inline for up to six axes.

use smallvec::SmallVec;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// The shape of a tensor: one extent per axis, outermost first. A scalar has rank 0.
///
/// It dereferences to `[usize]` (`shape[0]`, `shape.iter()`, `shape.len()`); build one from
/// an array, a slice or a `Vec` (`Shape::from([2, 3])`, or any `impl Into<Shape>` argument).
/// Up to six extents are held inline, without a heap allocation.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct Shape(SmallVec<[usize; 6]>);

// By hand: SmallVec's derived clone goes element by element through `Extend`, which showed
// up in the per-op overhead (every recorded op clones a shape or two); this is one copy.
impl Clone for Shape {
    fn clone(&self) -> Self {
        Shape(SmallVec::from_slice(&self.0))
    }
}

impl Shape {
    /// A shape from its extents.
    pub fn new(dims: &[usize]) -> Self {
        Shape(SmallVec::from_slice(dims))
    }

    /// The rank-0 shape of a scalar.
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements: the product of the extents (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }

    /// Row-major strides, in elements: `[12, 4, 1]` for `[2, 3, 4]`.
    pub fn strides(&self) -> Vec<usize> {
        self.strides_inline().to_vec()
    }

    /// [`Shape::strides`] held inline, for the kernels (no allocation up to six axes).
    pub(crate) fn strides_inline(&self) -> SmallVec<[usize; 6]> {
        let mut s: SmallVec<[usize; 6]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }

    /// The extents as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
}

impl Deref for Shape {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl DerefMut for Shape {
    fn deref_mut(&mut self) -> &mut [usize] {
        &mut self.0
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}
impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}
impl<const N: usize> PartialEq<[usize; N]> for Shape {
    fn eq(&self, o: &[usize; N]) -> bool {
        self.0.as_slice() == o
    }
}

/// The NumPy broadcast of two shapes: axes aligned from the right, each pair equal or one
/// of them 1. `None` when they do not broadcast.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let r = a.rank().max(b.rank());
    let mut out = SmallVec::from_elem(0, r);
    for i in 0..r {
        let da = if i < r - a.rank() {
            1
        } else {
            a[i - (r - a.rank())]
        };
        let db = if i < r - b.rank() {
            1
        } else {
            b[i - (r - b.rank())]
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape(out))
}

/// The shape of `op` applied elementwise to operands of shapes `a` and `b`: their NumPy
/// broadcast, or the error every broadcasting op (on handles and on tensors) returns.
///
/// One legal NumPy broadcast is refused: a rank-1 operand (longer than 1) whose length is
/// axis 1 of a rank-4 operand. That is a per-channel value (a bias, a scale) meant for the
/// `C` of `[N, C, H, W]`, but NumPy aligns it with `W`: it would be added along the width,
/// silently whenever `W == C`. The error says which shape the user meant.
#[track_caller]
pub(crate) fn broadcast_operands(
    op: &'static str,
    a: &Shape,
    b: &Shape,
) -> Result<Shape, crate::error::Error> {
    use crate::error::Error;
    let channels_trap =
        |x: &Shape, v: &Shape| x.rank() == 4 && v.rank() == 1 && v[0] > 1 && v[0] == x[1];
    if channels_trap(a, b) || channels_trap(b, a) {
        let c = if a.rank() == 1 { a[0] } else { b[0] };
        return Err(Error::incompatible(
            op,
            a,
            b,
            format!(
                "a rank-1 operand of length {c} lines up with the last axis of a rank-4 one, not \
                 with its axis 1 (the channels of [N, C, H, W]); reshape it to [{c}, 1, 1] for a \
                 per-channel value (or use conv2d_bias for a convolution's bias), or to [1, {c}] \
                 to broadcast along the last axis on purpose"
            ),
        ));
    }
    // A `match`, not `ok_or_else`: a closure would put its own line in the error.
    match broadcast_shapes(a, b) {
        Some(out) => Ok(out),
        None => Err(Error::incompatible(
            op,
            a,
            b,
            "they do not broadcast (aligned from the right, each pair of extents must be equal or 1)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_numel() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.strides(), vec![12, 4, 1]);
        assert_eq!(s.strides_inline().as_slice(), &[12, 4, 1]);
        assert_eq!(Shape::scalar().strides(), Vec::<usize>::new());
        assert_eq!(s.numel(), 24);
        assert_eq!(Shape::scalar().numel(), 1);
        assert_eq!(format!("{s}"), "[2, 3, 4]");
    }

    #[test]
    fn broadcasting() {
        let b = |x: &[usize], y: &[usize]| broadcast_shapes(&x.into(), &y.into());
        assert_eq!(b(&[2, 1, 4], &[3, 1]).unwrap(), [2, 3, 4]);
        assert_eq!(b(&[], &[3]).unwrap(), [3]);
        assert!(b(&[2, 3], &[4, 3]).is_none());
    }
}
