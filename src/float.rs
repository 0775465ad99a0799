//! The element types a tensor can hold: `f32` for speed, `f64` for gradient checking.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type. Implemented for `f32` and `f64`; every op and kernel is
/// written once against this trait.
///
/// Sealed: no type outside the crate can implement it. The kernels pick their fast paths by
/// the concrete type (the matrix products of `f32` and `f64` go to SIMD GEMMs), and any
/// other type would fall back, silently, to a naive loop many times slower; a new element
/// type belongs in the crate, with its kernels.
///
/// A user type with every operation `Float` asks for still cannot implement it (error
/// E0277: the private supertrait is not satisfied):
///
/// ```compile_fail,E0277
/// use std::ops::*;
/// #[derive(Clone, Copy, Default, Debug, PartialEq, PartialOrd)]
/// struct H(f64);
/// # impl std::fmt::Display for H {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
/// # }
/// # impl std::iter::Sum for H {
/// #     fn sum<I: Iterator<Item = H>>(i: I) -> H { H(i.map(|h| h.0).sum()) }
/// # }
/// # macro_rules! binary { ($($t:ident $m:ident $ta:ident $ma:ident),*) => { $(
/// #     impl $t for H { type Output = H; fn $m(self, o: H) -> H { H(self.0.$m(o.0)) } }
/// #     impl $ta for H { fn $ma(&mut self, o: H) { self.0.$ma(o.0) } }
/// # )* } }
/// # binary!(Add add AddAssign add_assign, Sub sub SubAssign sub_assign,
/// #         Mul mul MulAssign mul_assign, Div div DivAssign div_assign);
/// # impl Neg for H { type Output = H; fn neg(self) -> H { H(-self.0) } }
/// # macro_rules! unary { ($($m:ident),*) => { $( fn $m(self) -> H { H(self.0.$m()) } )* } }
/// impl tapegrad::Float for H {
///     // ... every constant and method, forwarded to f64 ...
/// #   const ZERO: H = H(0.0);
/// #   const ONE: H = H(1.0);
/// #   const INFINITY: H = H(f64::INFINITY);
/// #   const NEG_INFINITY: H = H(f64::NEG_INFINITY);
/// #   const EPSILON: H = H(f64::EPSILON);
/// #   const NAME: &'static str = "h";
/// #   fn from_f64(v: f64) -> H { H(v) }
/// #   fn to_f64(self) -> f64 { self.0 }
/// #   unary!(exp, ln, ln_1p, sqrt, tanh, abs);
/// #   fn erf(self) -> H { unimplemented!() }
/// #   fn powf(self, p: H) -> H { H(self.0.powf(p.0)) }
/// #   fn max(self, o: H) -> H { H(self.0.max(o.0)) }
/// #   fn min(self, o: H) -> H { H(self.0.min(o.0)) }
/// #   fn is_finite(self) -> bool { self.0.is_finite() }
/// #   fn is_nan(self) -> bool { self.0.is_nan() }
/// }
/// ```
pub trait Float:
    sealed::Sealed
    + Copy
    + Default
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + PartialOrd
    + PartialEq
    + Sum
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
{
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// Positive infinity.
    const INFINITY: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Machine epsilon.
    const EPSILON: Self;
    /// The name of the type, `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts from `usize` (exact below 2^24 for `f32`).
    fn from_usize(v: usize) -> Self {
        Self::from_f64(v as f64)
    }
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + self)`, accurate for tiny `self`.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The error function, `erf(x) = 2/√π ∫₀ˣ e^(-t²) dt` (the exact GELU's `Φ`).
    fn erf(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self^p` for a real exponent.
    fn powf(self, p: Self) -> Self;
    /// The larger of the two; NaN-propagating as `f32::max` is not, so callers compare directly.
    fn max(self, other: Self) -> Self;
    /// The smaller of the two.
    fn min(self, other: Self) -> Self;
    /// True when neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// True when NaN.
    fn is_nan(self) -> bool;
}

mod sealed {
    /// The private supertrait that keeps [`Float`](super::Float) to the types listed here.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! impl_float {
    ($t:ty, $tanh:path, $erf:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const INFINITY: Self = <$t>::INFINITY;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const EPSILON: Self = <$t>::EPSILON;
            const NAME: &'static str = stringify!($t);
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
// f32's tanh is the crate's vectorisable one (the C library's is a scalar call, slow in
// a tanh layer); f64 keeps the library's, as gradient checks want it exact. erf is not in
// std: libm's (a port of musl's, within 1 ulp) rather than a hand-fitted polynomial.
impl_float!(f32, crate::math::tanh_f32, libm::erff);
impl_float!(f64, f64::tanh, libm::erf);
