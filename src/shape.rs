//! Shapes: the extent of each axis, row-major, held inline for up to six axes.

use smallvec::SmallVec;
use std::fmt;
use std::ops::{Deref, DerefMut};

/// The shape of a tensor: one extent per axis, outermost first. A scalar has rank 0.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct Shape(pub SmallVec<[usize; 6]>);

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

    /// Row-major strides, in elements.
    pub fn strides(&self) -> SmallVec<[usize; 6]> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_and_numel() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.strides().as_slice(), &[12, 4, 1]);
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
