//! `Tensor<T>`: an n-dimensional array of `f32` or `f64`, contiguous and row-major.
//!
//! The buffer sits behind an `Arc`, so cloning a tensor is a reference-count bump: the tape
//! saves inputs for backward by cloning them, and parameters enter a tape without a copy.
//! Writing through [`Tensor::data_mut`] copies the buffer only if it is shared.

use crate::error::{Error, ErrorKind, OrPanic};
use crate::float::Float;
use crate::runtime::buffers;
use crate::shape::Shape;
use rand::{Rng, RngExt};
use std::fmt;
use std::sync::Arc;

mod argmax;
mod arith;

/// An n-dimensional array, contiguous and row-major.
///
/// ```
/// use tapegrad::prelude::*;
/// let t = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
/// assert_eq!(t[[1, 2]], 6.0);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!((&t * 2.0).to_vec(), vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
/// // Tensors combine with NumPy broadcasting: a [3] row added to each row of [2, 3].
/// let row = Tensor::from_vec(vec![10.0, 20.0, 30.0], [3]);
/// assert_eq!((&t + &row).to_vec(), vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
/// ```
///
/// Arithmetic (`+ - * /` with tensors and scalars on either side, [`Tensor::zip_map`],
/// [`Tensor::broadcast_to`], [`Tensor::sum_to_shape`]) works outside any tape, for a custom
/// op's VJP or a hand-written update; on a tape, the same operators on [`Var`] record ops.
///
/// [`Var`]: crate::tape::Var
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Float> {
    shape: Shape,
    data: Arc<Storage<T>>,
}

/// A tensor's buffer; when the last tensor sharing it drops, it goes back to the
/// [`buffers`](crate::runtime::buffers) cache for the next op's output.
#[derive(PartialEq)]
struct Storage<T: Float>(Vec<T>);

impl<T: Float> Clone for Storage<T> {
    fn clone(&self) -> Self {
        Storage(buffers::collect(self.0.len(), self.0.iter().copied()))
    }
}

impl<T: Float> Drop for Storage<T> {
    fn drop(&mut self) {
        buffers::recycle(std::mem::take(&mut self.0));
    }
}

/// A new shared buffer.
fn stored<T: Float>(v: Vec<T>) -> Arc<Storage<T>> {
    Arc::new(Storage(v))
}

impl<T: Float> std::ops::Deref for Storage<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Float> Tensor<T> {
    /// A tensor from a row-major buffer; `Err` when the length does not match the shape.
    #[track_caller]
    pub fn try_from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Result<Self, Error> {
        let shape = shape.into();
        // A shape whose extents multiply past usize holds no buffer (Shape::numel would
        // overflow).
        let Some(numel) = checked_numel(&shape) else {
            return Err(Error::bad_shape(
                "from_vec",
                &shape,
                format!(
                    "its extents multiply past usize, so no buffer (here of {} values) can fill it",
                    data.len()
                ),
            ));
        };
        if data.len() != numel {
            return Err(Error::new(
                "from_vec",
                ErrorKind::LengthMismatch {
                    expected: shape.numel(),
                    got: data.len(),
                    shape,
                },
            ));
        }
        Ok(Tensor {
            shape,
            data: stored(data),
        })
    }

    /// A tensor from a row-major buffer.
    ///
    /// # Panics
    /// When `data.len()` is not the product of the shape's extents.
    #[track_caller]
    pub fn from_vec(data: Vec<T>, shape: impl Into<Shape>) -> Self {
        Self::try_from_vec(data, shape).or_panic()
    }

    /// A rank-0 tensor holding `v`.
    pub fn scalar(v: T) -> Self {
        Tensor {
            shape: Shape::scalar(),
            data: stored(vec![v]),
        }
    }

    /// A tensor filled with `v`.
    pub fn full(shape: impl Into<Shape>, v: T) -> Self {
        let shape = shape.into();
        Tensor {
            data: stored(if v.to_f64().to_bits() == 0 {
                buffers::zeroed(shape.numel())
            } else {
                let n = shape.numel();
                buffers::collect(n, std::iter::repeat_n(v, n))
            }),
            shape,
        }
    }

    /// A tensor of zeros.
    pub fn zeros(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::ZERO)
    }

    /// A tensor of ones.
    pub fn ones(shape: impl Into<Shape>) -> Self {
        Self::full(shape, T::ONE)
    }

    /// The 1-D tensor `[0, 1, ..., n-1]`.
    pub fn arange(n: usize) -> Self {
        Tensor::from_vec((0..n).map(T::from_usize).collect(), [n])
    }

    /// A tensor whose element at each row-major position `i` is `f(i)`.
    pub fn from_fn(shape: impl Into<Shape>, f: impl FnMut(usize) -> T) -> Self {
        let shape = shape.into();
        Tensor {
            data: stored((0..shape.numel()).map(f).collect()),
            shape,
        }
    }

    /// Samples from the standard normal distribution (Box-Muller), reproducible for a seeded rng.
    pub fn randn<R: Rng + ?Sized>(shape: impl Into<Shape>, rng: &mut R) -> Self {
        let shape = shape.into();
        let n = shape.numel();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            // 1 - u keeps the logarithm's argument in (0, 1].
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let t = 2.0 * std::f64::consts::PI * u2;
            v.push(T::from_f64(r * t.cos()));
            if v.len() < n {
                v.push(T::from_f64(r * t.sin()));
            }
        }
        Tensor::from_vec(v, shape)
    }

    /// Samples uniformly from `[0, 1)`.
    pub fn rand<R: Rng + ?Sized>(shape: impl Into<Shape>, rng: &mut R) -> Self {
        Self::uniform(shape, T::ZERO, T::ONE, rng)
    }

    /// Samples uniformly from `[lo, hi)`.
    pub fn uniform<R: Rng + ?Sized>(shape: impl Into<Shape>, lo: T, hi: T, rng: &mut R) -> Self {
        let (lo, hi) = (lo.to_f64(), hi.to_f64());
        Self::from_fn(shape, |_| T::from_f64(lo + (hi - lo) * rng.random::<f64>()))
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The number of axes.
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }

    /// The number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The elements, writable; copies the buffer first if another tensor shares it.
    pub fn data_mut(&mut self) -> &mut [T] {
        Arc::make_mut(&mut self.data).0.as_mut_slice()
    }

    /// The elements as a new `Vec`.
    pub fn to_vec(&self) -> Vec<T> {
        self.data.to_vec()
    }

    /// The buffer, without a copy when this tensor is its only owner.
    pub fn into_vec(self) -> Vec<T> {
        match Arc::try_unwrap(self.data) {
            Ok(mut s) => std::mem::take(&mut s.0),
            Err(shared) => shared.0.clone(),
        }
    }

    /// The only element of a one-element tensor.
    ///
    /// # Panics
    /// When the tensor does not hold exactly one element.
    #[track_caller]
    pub fn item(&self) -> T {
        assert!(
            self.numel() == 1,
            "item: tensor of shape {} holds {} elements, not 1",
            self.shape,
            self.numel()
        );
        self.data[0]
    }

    /// The element at a multi-index, or `None` when the index has the wrong rank or is out
    /// of range.
    pub fn get(&self, index: &[usize]) -> Option<T> {
        self.offset(index).map(|o| self.data[o])
    }

    fn offset(&self, index: &[usize]) -> Option<usize> {
        if index.len() != self.rank() {
            return None;
        }
        let mut o = 0;
        for (&i, &d) in index.iter().zip(self.shape.iter()) {
            if i >= d {
                return None;
            }
            o = o * d + i;
        }
        Some(o)
    }

    /// The same elements under another shape with the same number of elements.
    #[track_caller]
    pub fn try_reshape(&self, shape: impl Into<Shape>) -> Result<Self, Error> {
        let shape = shape.into();
        if checked_numel(&shape) != Some(self.numel()) {
            let target = match checked_numel(&shape) {
                Some(n) => n.to_string(),
                None => "more than usize can count".into(),
            };
            return Err(Error::incompatible(
                "reshape",
                &self.shape,
                &shape,
                format!("{} elements cannot be viewed as {target}", self.numel()),
            ));
        }
        Ok(Tensor {
            shape,
            data: self.data.clone(),
        })
    }

    /// The same elements under another shape.
    ///
    /// # Panics
    /// When the element counts differ.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> Self {
        self.try_reshape(shape).or_panic()
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape.clone(),
            data: stored(buffers::collect(
                self.numel(),
                self.data.iter().map(|&x| f(x)),
            )),
        }
    }

    /// Converts every element to another float type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: stored(self.data.iter().map(|x| U::from_f64(x.to_f64())).collect()),
        }
    }

    /// True when both tensors share one buffer (no copy was made between them).
    pub fn shares_buffer(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }
}

impl<T: Float, const N: usize> std::ops::Index<[usize; N]> for Tensor<T> {
    type Output = T;
    /// The element at `index` (one coordinate per axis).
    ///
    /// # Panics
    /// When `index` has not one coordinate per axis or a coordinate is past its axis's extent.
    #[track_caller]
    fn index(&self, index: [usize; N]) -> &T {
        match self.offset(&index) {
            Some(o) => &self.data[o],
            None => panic!(
                "index {:?} is out of range for a tensor of shape {}",
                index, self.shape
            ),
        }
    }
}

// Printing in the manner of NumPy and PyTorch: nested brackets, aligned columns, and an
// ellipsis for axes longer than six once the tensor has more than 1000 elements.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE: usize = 3;

struct Style {
    width: usize,
    prec: usize,
    summarise: bool,
    indent: usize,
}

fn fmt_nested<T: Float>(
    f: &mut fmt::Formatter<'_>,
    t: &Tensor<T>,
    axis: usize,
    offset: usize,
    st: &Style,
) -> fmt::Result {
    let Style {
        width,
        prec,
        summarise,
        indent,
    } = *st;
    let dims = t.shape.dims();
    let stride: usize = dims[axis + 1..].iter().product();
    let n = dims[axis];
    let idx: Vec<Option<usize>> = if summarise && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain(std::iter::once(None))
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    write!(f, "[")?;
    for (j, i) in idx.iter().enumerate() {
        if j > 0 {
            if axis + 1 == dims.len() {
                write!(f, ", ")?;
            } else {
                write!(f, ",")?;
                for _ in 0..(dims.len() - axis - 1) {
                    writeln!(f)?;
                }
                write!(f, "{:indent$}", "", indent = indent + axis + 1)?;
            }
        }
        match i {
            None => write!(f, "...")?,
            Some(i) if axis + 1 == dims.len() => {
                write!(f, "{:>width$.prec$}", t.data[offset + i].to_f64())?
            }
            Some(i) => fmt_nested(f, t, axis + 1, offset + i * stride, st)?,
        }
    }
    write!(f, "]")
}

impl<T: Float> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prec = f.precision().unwrap_or(4);
        write!(f, "tensor(")?;
        if self.rank() == 0 {
            write!(f, "{:.prec$}", self.data[0].to_f64())?;
        } else if self.numel() == 0 {
            write!(f, "[], shape={}", self.shape)?;
        } else {
            let width = self
                .data
                .iter()
                .map(|x| format!("{:.prec$}", x.to_f64()).len())
                .max()
                .unwrap_or(1);
            let summarise = self.numel() > SUMMARY_THRESHOLD;
            let style = Style {
                width,
                prec,
                summarise,
                indent: "tensor(".len(),
            };
            fmt_nested(f, self, 0, 0, &style)?;
        }
        if T::NAME != "f32" {
            write!(f, ", dtype={}", T::NAME)?;
        }
        write!(f, ")")
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{} ", T::NAME, self.shape)?;
        fmt::Display::fmt(self, f)
    }
}

/// The product of `shape`'s extents, or None when it overflows usize. Multiplied in order,
/// as [`Shape::numel`] does, so that `Some` means `numel` cannot overflow either (a zero
/// extent after two huge ones still overflows on the way).
fn checked_numel(shape: &Shape) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes_whose_extents_overflow_are_refused() {
        // Found by tests/properties.rs: Shape::numel overflowed inside the check.
        let e = Tensor::<f32>::try_from_vec(vec![], [usize::MAX, 2]).unwrap_err();
        assert!(
            e.to_string().contains(
                "shape [18446744073709551615, 2] refused: its extents multiply past usize, \
                 so no buffer (here of 0 values) can fill it"
            ),
            "{e}"
        );
        let e = Tensor::<f64>::zeros([0])
            .try_reshape([1 << 32, 1 << 32, 0])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("0 elements cannot be viewed as more than usize can count"),
            "{e}"
        );
        // A zero extent keeps the product at 0 however large the others.
        assert!(
            Tensor::<f64>::zeros([0])
                .try_reshape([0, usize::MAX, 2])
                .is_ok()
        );
        assert!(
            Tensor::<f64>::zeros([0])
                .try_reshape([usize::MAX, 2, 0])
                .is_err()
        );
    }

    use super::*;
    use rand::SeedableRng;

    #[test]
    fn constructors() {
        assert_eq!(Tensor::<f64>::arange(4).to_vec(), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(Tensor::<f32>::ones([2, 2]).data(), &[1.0; 4]);
        let e = Tensor::<f32>::try_from_vec(vec![1.0; 5], [2, 3]).unwrap_err();
        assert!(e.to_string().starts_with(
            "from_vec: shape [2, 3] needs 6 elements but 5 were given (called at src/tensor.rs:"
        ));
    }

    #[test]
    fn randn_moments() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let t = Tensor::<f64>::randn([20000], &mut rng);
        let mean = t.data().iter().sum::<f64>() / 20000.0;
        let var = t.data().iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20000.0;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn display_like_a_tensor_library() {
        let t = Tensor::<f32>::from_vec(vec![1.0, -2.5, 3.0, 4.0], [2, 2]);
        assert_eq!(
            t.to_string(),
            "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]])"
        );
        assert_eq!(
            Tensor::<f64>::scalar(0.5).to_string(),
            "tensor(0.5000, dtype=f64)"
        );
        let big = Tensor::<f32>::zeros([40, 40]).to_string();
        assert!(big.contains("..."), "{big}");
        assert!(big.lines().count() < 10);
    }

    #[test]
    fn clone_shares_until_written() {
        let a = Tensor::<f32>::zeros([3]);
        let mut b = a.clone();
        assert!(a.shares_buffer(&b));
        b.data_mut()[0] = 1.0;
        assert!(!a.shares_buffer(&b));
        assert_eq!(a[[0]], 0.0);
    }
}
