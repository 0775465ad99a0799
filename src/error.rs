//! One error type for the whole crate: the op that refused, what was wrong with which
//! shapes, and the line of the caller's code that asked for it.
//!
//! # Which API returns `Result` and which panics
//! Every fallible op has a `try_` form (`try_conv2d`, `try_matmul`, ...) that returns
//! `Result<_, Error>`. The plain form (`conv2d`, `matmul`, the `+ - * /` operators) panics
//! with the same message, which carries the caller's `file:line:column`, the way slice
//! indexing panics in the standard library. Models written as closures use the plain forms;
//! code that handles shapes it does not control uses the `try_` forms.
//!
//! # One `Error` for `?`, with the detailed errors inside
//! The parts that read and write files keep errors of their own, each naming the file and
//! what was wrong in it: `data::DataError` (the `data` loaders, feature `data`),
//! `nn::IoError` (saving and loading parameters, feature `safetensors`), `viz::VizError`
//! (pictures, feature `viz`), and [`GradcheckError`].
//! Each converts into [`Error`] with `?`, as `ErrorKind::Data`, `ErrorKind::Io`,
//! `ErrorKind::Viz` and [`ErrorKind::Gradcheck`] (the first three exist with their
//! features), recording the line of the `?` as the error's location, so one function can
//! propagate all of them:
//!
//! ```
//! # #[cfg(all(feature = "data", feature = "safetensors"))]
//! fn run(dir: &str) -> Result<(), tapegrad::Error> {
//!     let ds = tapegrad::data::load_png_folder::<f32>(dir, Default::default())?;
//!     let store = tapegrad::nn::load_safetensors::<f32>(format!("{dir}/model.safetensors"))?;
//!     println!("{} images, {} parameters", ds.len(), store.len());
//!     Ok(())
//! }
//! # #[cfg(all(feature = "data", feature = "safetensors"))]
//! # {
//! let e = run("/no/such/dir").unwrap_err();
//! assert!(matches!(&*e.kind, tapegrad::ErrorKind::Data(d) if d.path().ends_with("dir")));
//! assert!(e.to_string().starts_with("data: /no/such/dir: not found"));
//! # }
//! ```
//!
//! Why a family and not one flat enum: a file error carries a path, the operating system's
//! error and the byte at fault, an op error its shapes and the caller's line; matching on
//! `DataError` alone stays possible for code that only loads data,
//! and the feature-gated kinds exist only with their features. [`ErrorKind`] is
//! `#[non_exhaustive]` for that reason: which kinds exist depends on the features.

use crate::gradcheck::GradcheckError;
use crate::shape::Shape;
use std::fmt;
use std::ops::Deref;
use std::panic::Location;
use std::sync::Arc;

/// What was wrong, with the shapes and values involved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Two operands whose shapes the op cannot combine (broadcasting, matmul inner
    /// dimensions, convolution channels).
    Incompatible {
        /// The first operand's shape.
        lhs: Shape,
        /// The second operand's shape.
        rhs: Shape,
        /// Why they do not fit.
        why: String,
    },
    /// An operand whose shape the op does not accept (wrong rank, kernel larger than the
    /// padded input, empty window).
    BadShape {
        /// The offending shape.
        shape: Shape,
        /// Why it is refused.
        why: String,
    },
    /// An option or argument out of its domain (stride 0, a probability outside [0, 1)).
    BadArgument {
        /// What is wrong with it.
        why: String,
    },
    /// An axis index not below the tensor's rank.
    AxisOutOfRange {
        /// The axis asked for.
        axis: usize,
        /// The rank of the tensor.
        rank: usize,
    },
    /// A buffer whose length does not match the shape it was given.
    LengthMismatch {
        /// The shape asked for.
        shape: Shape,
        /// The number of elements that shape needs.
        expected: usize,
        /// The number of elements supplied.
        got: usize,
    },
    /// A handle recorded on another tape.
    ForeignTape,
    /// `backward` on a tape whose graph has already been consumed by an earlier `backward`.
    BackwardTwice,
    /// [`Tape::grad`](crate::tape::Tape::grad) met an op whose VJP is first-order only
    /// (recorded with [`Tape::record`](crate::tape::Tape::record), on tensors), so the
    /// gradient through it could not be differentiated again.
    FirstOrderOnly {
        /// The op's name.
        op: &'static str,
        /// Where it was recorded.
        at: &'static std::panic::Location<'static>,
    },
    /// A NaN or an infinity, found by anomaly mode
    /// ([`Tape::detect_anomaly`](crate::tape::Tape::detect_anomaly)) in an op's forward value
    /// or in a gradient its VJP returned. The error's `op` and `location` are those of the
    /// node at fault: the op, and the line of the caller's code that recorded it.
    NonFinite {
        /// Which value: `"forward value"`, `"gradient for input 1 (param [30, 1, 5, 5])"`,
        /// `"gradient of the output"` (the seed or the sum flowing into the node).
        what: String,
        /// The shape of the offending tensor.
        shape: Shape,
        /// The shapes of the op's inputs, in order.
        inputs: Vec<Shape>,
        /// How many of its elements are NaN or infinite.
        count: usize,
        /// The first few of them: (row-major index, value).
        examples: Vec<(usize, f64)>,
    },
    /// A data set could not be loaded (a [`DataError`](crate::data::DataError) passed on
    /// with `?`; the error's `op` is `"data"`).
    #[cfg(feature = "data")]
    Data(Cause<crate::data::DataError>),
    /// Parameters could not be saved or loaded (an [`IoError`](crate::nn::IoError) passed
    /// on with `?`; the error's `op` is `"nn::io"`).
    #[cfg(feature = "safetensors")]
    Io(Cause<crate::nn::IoError>),
    /// A picture could not be drawn or written (a [`VizError`](crate::viz::VizError)
    /// passed on with `?`; the error's `op` is `"viz"`).
    #[cfg(feature = "viz")]
    Viz(Cause<crate::viz::VizError>),
    /// A gradient check failed (a [`GradcheckError`] passed on with `?`; the error's `op`
    /// is `"gradcheck"`).
    Gradcheck(GradcheckError),
}

/// A file or picture error held by an [`Error`], shared so that `Error` stays `Clone`
/// (the operating system's errors are not). Dereferences to the error itself; two causes
/// are equal when they are the same report.
#[derive(Debug)]
pub struct Cause<E>(Arc<E>);

impl<E> Cause<E> {
    /// Wraps `e`.
    pub fn new(e: E) -> Self {
        Cause(Arc::new(e))
    }
}

impl<E> Clone for Cause<E> {
    fn clone(&self) -> Self {
        Cause(Arc::clone(&self.0))
    }
}

impl<E> PartialEq for Cause<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<E> Deref for Cause<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.0
    }
}

impl<E: fmt::Display> fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An error from an op: which op, what was wrong, and where the caller asked for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    /// The name of the op, as in its method name (`"conv2d"`, `"matmul"`, `"add"`).
    pub op: &'static str,
    /// What was wrong (boxed, so that `Result`s stay small on the success path).
    pub kind: Box<ErrorKind>,
    /// The caller's source location.
    pub location: &'static Location<'static>,
}

impl Error {
    /// An error for `op`, located at the caller (through every `#[track_caller]` frame).
    #[track_caller]
    pub fn new(op: &'static str, kind: ErrorKind) -> Self {
        Error {
            op,
            kind: Box::new(kind),
            location: Location::caller(),
        }
    }

    /// Shorthand for [`ErrorKind::Incompatible`].
    #[track_caller]
    pub fn incompatible(
        op: &'static str,
        lhs: &Shape,
        rhs: &Shape,
        why: impl Into<String>,
    ) -> Self {
        Error::new(
            op,
            ErrorKind::Incompatible {
                lhs: lhs.clone(),
                rhs: rhs.clone(),
                why: why.into(),
            },
        )
    }

    /// Shorthand for [`ErrorKind::BadShape`].
    #[track_caller]
    pub fn bad_shape(op: &'static str, shape: &Shape, why: impl Into<String>) -> Self {
        Error::new(
            op,
            ErrorKind::BadShape {
                shape: shape.clone(),
                why: why.into(),
            },
        )
    }

    /// Shorthand for [`ErrorKind::BadArgument`].
    #[track_caller]
    pub fn bad_argument(op: &'static str, why: impl Into<String>) -> Self {
        Error::new(op, ErrorKind::BadArgument { why: why.into() })
    }

    /// Checks `axis < rank`, or returns [`ErrorKind::AxisOutOfRange`].
    #[track_caller]
    pub fn check_axis(op: &'static str, axis: usize, rank: usize) -> Result<(), Error> {
        if axis < rank {
            Ok(())
        } else {
            Err(Error::new(op, ErrorKind::AxisOutOfRange { axis, rank }))
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Incompatible { lhs, rhs, why } => {
                write!(f, "shapes {lhs} and {rhs} are incompatible: {why}")
            }
            ErrorKind::BadShape { shape, why } => write!(f, "shape {shape} refused: {why}"),
            ErrorKind::BadArgument { why } => write!(f, "{why}"),
            ErrorKind::AxisOutOfRange { axis, rank } => {
                write!(f, "axis {axis} is out of range for a tensor of rank {rank}")
            }
            ErrorKind::LengthMismatch {
                shape,
                expected,
                got,
            } => write!(
                f,
                "shape {shape} needs {expected} elements but {got} were given"
            ),
            ErrorKind::ForeignTape => write!(f, "a handle from another tape was used on this one"),
            ErrorKind::BackwardTwice => write!(
                f,
                "backward already ran on this tape and consumed its graph; record the forward again"
            ),
            ErrorKind::FirstOrderOnly { op, at } => write!(
                f,
                "the gradient flows through `{op}` (recorded at {at}), whose VJP was given to \
                 Tape::record on tensors and is first-order only; record it with \
                 Tape::record_differentiable (its VJP written in ops on handles) to \
                 differentiate through it again"
            ),
            ErrorKind::NonFinite {
                what,
                shape,
                inputs,
                count,
                examples,
            } => {
                write!(
                    f,
                    "non-finite {what}: {count} of the {} elements of the {shape} tensor are NaN or infinite, e.g.",
                    shape.numel()
                )?;
                for (k, (i, v)) in examples.iter().enumerate() {
                    let sep = if k == 0 { " " } else { ", " };
                    write!(f, "{sep}[{i}] = {v}")?;
                }
                if !inputs.is_empty() {
                    let list: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
                    write!(f, "; inputs {}", list.join(", "))?;
                }
                Ok(())
            }
            #[cfg(feature = "data")]
            ErrorKind::Data(e) => write!(f, "{e}"),
            #[cfg(feature = "safetensors")]
            ErrorKind::Io(e) => write!(f, "{e}"),
            #[cfg(feature = "viz")]
            ErrorKind::Viz(e) => write!(f, "{e}"),
            ErrorKind::Gradcheck(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (called at {}:{}:{})",
            self.op,
            self.kind,
            self.location.file(),
            self.location.line(),
            self.location.column()
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            #[cfg(feature = "data")]
            ErrorKind::Data(e) => Some(&**e),
            #[cfg(feature = "safetensors")]
            ErrorKind::Io(e) => Some(&**e),
            #[cfg(feature = "viz")]
            ErrorKind::Viz(e) => Some(&**e),
            ErrorKind::Gradcheck(e) => Some(e),
            _ => None,
        }
    }
}

// `?` turns each of the crate's other errors into an `Error` located at the `?`.

#[cfg(feature = "data")]
impl From<crate::data::DataError> for Error {
    #[track_caller]
    fn from(e: crate::data::DataError) -> Self {
        Error::new("data", ErrorKind::Data(Cause::new(e)))
    }
}

#[cfg(feature = "safetensors")]
impl From<crate::nn::IoError> for Error {
    #[track_caller]
    fn from(e: crate::nn::IoError) -> Self {
        Error::new("nn::io", ErrorKind::Io(Cause::new(e)))
    }
}

#[cfg(feature = "viz")]
impl From<crate::viz::VizError> for Error {
    /// A [`VizError::Input`](crate::viz::VizError::Input) gives back the op error it holds,
    /// unwrapped; any other becomes [`ErrorKind::Viz`].
    #[track_caller]
    fn from(e: crate::viz::VizError) -> Self {
        match e {
            crate::viz::VizError::Input(e) => e,
            other => Error::new("viz", ErrorKind::Viz(Cause::new(other))),
        }
    }
}

impl From<GradcheckError> for Error {
    #[track_caller]
    fn from(e: GradcheckError) -> Self {
        Error::new("gradcheck", ErrorKind::Gradcheck(e))
    }
}

/// Unwraps an op's result or panics with its message; the panic points at the op's caller.
pub(crate) trait OrPanic<V> {
    fn or_panic(self) -> V;
}

impl<V> OrPanic<V> for Result<V, Error> {
    #[track_caller]
    #[inline]
    fn or_panic(self) -> V {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    // The error `?` makes of `e`, and the line of that `?`.
    fn propagate<E>(e: E) -> (Error, u32)
    where
        Error: From<E>,
    {
        fn inner<E>(e: E) -> Result<(), Error>
        where
            Error: From<E>,
        {
            Err::<(), E>(e)?;
            Ok(())
        }
        (inner(e).unwrap_err(), line!() - 3)
    }

    #[test]
    fn a_gradcheck_error_converts_with_question_mark() {
        // relu has no derivative at 0: its VJP sends 0, the central difference sees 1/2.
        let ge =
            crate::gradcheck::gradcheck(|v| v[0].relu().sum(), &[Tensor::from_vec(vec![0.0], [1])])
                .unwrap_err();
        let msg = ge.to_string();
        let (e, line) = propagate(ge.clone());
        assert_eq!(e.op, "gradcheck");
        assert_eq!(*e.kind, ErrorKind::Gradcheck(ge));
        assert_eq!(
            e.to_string(),
            format!("gradcheck: {msg} (called at src/error.rs:{line}:13)")
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[cfg(feature = "data")]
    #[test]
    fn a_data_error_converts_and_keeps_the_file() {
        let de =
            crate::data::load_png_folder::<f32>("/no/such/dir", Default::default()).unwrap_err();
        let want = de.to_string();
        let (e, line) = propagate(de);
        assert_eq!(e.op, "data");
        let ErrorKind::Data(inner) = &*e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(inner.path(), std::path::Path::new("/no/such/dir"));
        assert_eq!(e.clone(), e, "a clone is the same report");
        assert_eq!(
            e.to_string(),
            format!("data: {want} (called at src/error.rs:{line}:13)")
        );
        assert_eq!(std::error::Error::source(&e).unwrap().to_string(), want);
    }

    #[cfg(feature = "safetensors")]
    #[test]
    fn an_io_error_converts_and_keeps_the_file() {
        let ie = crate::nn::load_safetensors::<f32>("/no/such/m.safetensors").unwrap_err();
        let (e, _) = propagate(ie);
        assert_eq!(e.op, "nn::io");
        assert!(matches!(&*e.kind, ErrorKind::Io(i) if i.path.ends_with("m.safetensors")));
        assert!(
            e.to_string()
                .starts_with("nn::io: cannot read /no/such/m.safetensors: "),
            "{e}"
        );
    }

    #[cfg(feature = "viz")]
    #[test]
    fn a_viz_error_converts_and_an_op_error_inside_it_is_unwrapped() {
        let opts = crate::viz::ChartOptions {
            width: 10,
            ..Default::default()
        };
        let ve = crate::viz::render_chart("t", &[], &opts).unwrap_err();
        let want = ve.to_string();
        let (e, _) = propagate(ve);
        assert_eq!(e.op, "viz");
        assert!(matches!(&*e.kind, ErrorKind::Viz(_)));
        assert!(
            e.to_string()
                .starts_with(&format!("viz: {want} (called at"))
        );

        let op = Error::bad_argument("conv2d", "stride must be at least 1");
        let back: Error = crate::viz::VizError::Input(op.clone()).into();
        assert_eq!(back, op);
    }
}
