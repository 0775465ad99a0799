//! One error type for the whole crate: the op that refused, what was wrong with which
//! shapes, and the line of the caller's code that asked for it.
//!
//! # Which API returns `Result` and which panics
//! Every fallible op has a `try_` form (`try_conv2d`, `try_matmul`, ...) that returns
//! `Result<_, Error>`. The plain form (`conv2d`, `matmul`, the `+ - * /` operators) panics
//! with the same message, which carries the caller's `file:line:column`, the way slice
//! indexing panics in the standard library. Models written as closures use the plain forms;
//! code that handles shapes it does not control uses the `try_` forms.

use crate::shape::Shape;
use std::fmt;
use std::panic::Location;

/// What was wrong, with the shapes and values involved.
#[derive(Clone, Debug, PartialEq)]
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

impl std::error::Error for Error {}

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
