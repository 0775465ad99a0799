//! 2-D transposed convolution over NCHW input, as PyTorch's `F.conv_transpose2d`: the
//! gradient of `conv2d` with respect to its input, used as a layer (learned upsampling).

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::Pair;
use crate::ops::conv2d::{ConvOptions, geometry, transposed_conv};
use crate::ops::pad::PadMode;
use crate::shape::Shape;
use crate::tape::Var;

/// Options of [`Var::conv_transpose2d`], as in PyTorch's `F.conv_transpose2d`; each size a
/// [`Pair`]. `ConvTransposeOptions::new()` is stride 1, padding 0, output padding 0,
/// dilation 1, groups 1.
///
/// ```
/// use tapegrad::prelude::*;
/// let opts = ConvTransposeOptions::new().stride(2).padding(1).output_padding(1);
/// let tape = Tape::<f32>::new();
/// let x = tape.input(Tensor::zeros([1, 8, 7, 7]));
/// let w = tape.input(Tensor::zeros([8, 4, 3, 3]));
/// // (7 − 1)·2 − 2·1 + (3 − 1) + 1 + 1 = 14 per axis: the inverse of a stride-2 conv's shape.
/// assert_eq!(x.conv_transpose2d(w, opts).shape(), [1, 4, 14, 14]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvTransposeOptions {
    /// The stride of the convolution this one transposes (the upsampling factor).
    pub stride: Pair,
    /// The padding of that convolution: removed from each side of the output.
    pub padding: Pair,
    /// Rows and columns added at the bottom and right of the output, to reach the sizes a
    /// strided convolution maps onto the same input size; smaller than the stride or the
    /// dilation.
    pub output_padding: Pair,
    /// Spacing between kernel taps.
    pub dilation: Pair,
    /// Channel groups, dividing the input and output channels.
    pub groups: usize,
}

impl Default for ConvTransposeOptions {
    fn default() -> Self {
        ConvTransposeOptions {
            stride: Pair(1, 1),
            padding: Pair(0, 0),
            output_padding: Pair(0, 0),
            dilation: Pair(1, 1),
            groups: 1,
        }
    }
}

impl ConvTransposeOptions {
    /// Stride 1, padding 0, output padding 0, dilation 1, groups 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the stride.
    pub fn stride(self, stride: impl Into<Pair>) -> Self {
        ConvTransposeOptions {
            stride: stride.into(),
            ..self
        }
    }
    /// Sets the padding.
    pub fn padding(self, padding: impl Into<Pair>) -> Self {
        ConvTransposeOptions {
            padding: padding.into(),
            ..self
        }
    }
    /// Sets the output padding.
    pub fn output_padding(self, output_padding: impl Into<Pair>) -> Self {
        ConvTransposeOptions {
            output_padding: output_padding.into(),
            ..self
        }
    }
    /// Sets the dilation.
    pub fn dilation(self, dilation: impl Into<Pair>) -> Self {
        ConvTransposeOptions {
            dilation: dilation.into(),
            ..self
        }
    }
    /// Sets the number of channel groups.
    pub fn groups(self, groups: usize) -> Self {
        ConvTransposeOptions { groups, ..self }
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The transposed convolution of `self: [N, C, H, W]` with `weight: [C, O/groups, kh, kw]`
    /// (PyTorch's layout), giving `[N, O, Ho, Wo]` with
    /// `Ho = (H − 1)·sh − 2·ph + dh·(kh − 1) + oph + 1` and likewise `Wo`: each input value
    /// scatters `x[n, c, i, j] · w[c, o, p, q]` to output position
    /// `(i·sh + p·dh − ph, j·sw + q·dw − pw)`.
    ///
    /// It is exactly the input gradient of `conv2d` with the same options, run through the
    /// same kernels. VJP: `∂L/∂x = conv2d(g, w)` and `∂L/∂w` the convolution's weight
    /// gradient with the roles of `x` and `g` exchanged; every order is differentiable.
    ///
    /// Errors when either operand is not 4-D, the channels do not match, `groups` does not
    /// divide them, an option is 0, an output padding is not smaller than its stride or its
    /// dilation, the output would be empty, or `weight` is on another tape.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [1, 1, 1, 2]));
    /// let w = tape.param(Tensor::from_vec(vec![1.0, 10.0], [1, 1, 1, 2]));
    /// let y = x.conv_transpose2d(w, ConvTransposeOptions::new().stride((1, 2)));
    /// assert_eq!(y.value().to_vec(), vec![1.0, 10.0, 2.0, 20.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![11.0, 11.0]);
    /// ```
    #[track_caller]
    pub fn try_conv_transpose2d(
        self,
        weight: Var<'t, T>,
        opts: ConvTransposeOptions,
    ) -> Result<Var<'t, T>, Error> {
        self.conv_transpose2d_impl(weight, None, opts)
    }

    #[track_caller]
    fn conv_transpose2d_impl(
        self,
        weight: Var<'t, T>,
        bias: Option<Var<'t, T>>,
        opts: ConvTransposeOptions,
    ) -> Result<Var<'t, T>, Error> {
        const OP: &str = "conv_transpose2d";
        self.check_same_tape(OP, weight)?;
        let (xs, ws) = (self.shape(), weight.shape());
        let bad = |why: String| Err(Error::incompatible(OP, &xs, &ws, why));
        if xs.rank() != 4 || ws.rank() != 4 {
            return bad("input [N, C, H, W] and weight [C, O/groups, kh, kw] must be 4-D".into());
        }
        let ConvTransposeOptions {
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        } = opts;
        if groups == 0 || stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(Error::bad_argument(
                OP,
                format!("stride, dilation and groups must be at least 1; got {opts:?}"),
            ));
        }
        if ws[0] != xs[1] || xs[1] % groups != 0 {
            return bad(format!(
                "the input has {} channels; the weight [C, O/groups, kh, kw] expects {} in {groups} groups",
                xs[1], ws[0]
            ));
        }
        let out_len = |len: usize,
                       s: usize,
                       p: usize,
                       op: usize,
                       d: usize,
                       k: usize|
         -> Result<usize, String> {
            if op >= s && op >= d {
                return Err(format!(
                    "output padding {op} must be smaller than the stride {s} or the dilation {d}"
                ));
            }
            let full = (len.max(1) - 1)
                .checked_mul(s)
                .and_then(|v| v.checked_add(d.checked_mul(k.max(1) - 1)?))
                .and_then(|v| v.checked_add(op + 1));
            match full.and_then(|f| f.checked_sub(p.checked_mul(2)?)) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(format!(
                    "padding {p} leaves no output (input {len}, kernel {k}, stride {s}, dilation {d})"
                )),
            }
        };
        let ho = out_len(
            xs[2],
            stride.0,
            padding.0,
            output_padding.0,
            dilation.0,
            ws[2],
        );
        let wo = out_len(
            xs[3],
            stride.1,
            padding.1,
            output_padding.1,
            dilation.1,
            ws[3],
        );
        let (ho, wo) = match (ho, wo) {
            (Ok(h), Ok(w)) => (h, w),
            (Err(e), _) | (_, Err(e)) => return bad(e),
        };
        // The convolution this one transposes: from the output's shape back to the input's.
        let conv_opts = ConvOptions {
            stride,
            padding,
            dilation,
            groups,
        };
        let Some(out_channels) = ws[1].checked_mul(groups) else {
            return bad(format!(
                "{} output channels per group times {groups} groups is more than usize can count",
                ws[1]
            ));
        };
        let out_shape = Shape::from([xs[0], out_channels, ho, wo]);
        let geom = geometry(&out_shape, &ws, &conv_opts)
            .map_err(|e| Error::bad_argument(OP, e.to_string()))?;
        // An output padding of at least the stride (allowed below the dilation) gives the
        // convolution more output rows than the input has: those read zeros.
        let (eh, ew) = (geom.ho - xs[2], geom.wo - xs[3]);
        let x = if eh + ew > 0 {
            self.pad(&[(0, eh), (0, ew)], PadMode::Constant(0.0))
        } else {
            self
        };
        if let Some(b) = bias {
            self.check_same_tape(OP, b)?;
            if b.shape().dims() != [geom.c] {
                return Err(Error::incompatible(
                    OP,
                    &ws,
                    &b.shape(),
                    format!(
                        "the bias must have shape [O] = [{}], one value per output channel",
                        geom.c
                    ),
                ));
            }
        }
        Ok(transposed_conv(OP, x, weight, bias, geom))
    }

    /// [`Var::try_conv_transpose2d`], panicking at the caller's line on what it refuses.
    #[track_caller]
    pub fn conv_transpose2d(self, weight: Var<'t, T>, opts: ConvTransposeOptions) -> Var<'t, T> {
        self.try_conv_transpose2d(weight, opts).or_panic()
    }

    /// [`Var::try_conv_transpose2d`] plus a bias `[O]` added to each output channel.
    #[track_caller]
    pub fn try_conv_transpose2d_bias(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        opts: ConvTransposeOptions,
    ) -> Result<Var<'t, T>, Error> {
        self.conv_transpose2d_impl(weight, Some(bias), opts)
    }

    /// [`Var::try_conv_transpose2d_bias`], panicking at the caller's line on what it refuses.
    #[track_caller]
    pub fn conv_transpose2d_bias(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        opts: ConvTransposeOptions,
    ) -> Var<'t, T> {
        self.try_conv_transpose2d_bias(weight, bias, opts)
            .or_panic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, randn};
    use crate::tape::Tape;
    use crate::tensor::Tensor;

    /// (input shape, weight shape, options, bias)
    fn configs() -> Vec<([usize; 4], [usize; 4], ConvTransposeOptions, bool)> {
        let o = ConvTransposeOptions::new;
        vec![
            ([2, 3, 4, 4], [3, 2, 3, 3], o(), true),
            ([1, 2, 3, 5], [2, 3, 2, 3], o().stride(2), false),
            (
                [2, 2, 4, 3],
                [2, 2, 3, 3],
                o().stride(2).padding(1).output_padding(1),
                true,
            ),
            (
                [1, 4, 3, 3],
                [4, 1, 3, 2],
                o().stride((2, 3)).groups(2).padding((1, 0)),
                true,
            ),
            (
                [2, 2, 3, 4],
                [2, 2, 3, 3],
                o().dilation(2).padding(2),
                false,
            ),
            // Output padding of at least the stride, allowed under the dilation.
            (
                [1, 2, 3, 3],
                [2, 1, 3, 3],
                o().dilation(2).output_padding(1),
                true,
            ),
            ([1, 3, 2, 2], [3, 2, 4, 4], o().stride(2).padding(1), true),
            // Enough channels for Winograd on phases, whose input and weight gradients share
            // one transform of the output's gradient.
            (
                [2, 16, 3, 3],
                [16, 16, 4, 4],
                o().stride(2).padding(1),
                true,
            ),
            (
                [3, 1, 1, 1],
                [1, 2, 2, 2],
                o().stride(3).output_padding(2),
                false,
            ),
        ]
    }

    #[test]
    fn gradcheck_configurations() {
        let mut worst = 0.0f64;
        for (k, (xs, ws, opts, bias)) in configs().into_iter().enumerate() {
            let x = randn(k as u64, &xs);
            let w = randn(100 + k as u64, &ws);
            let what = format!("conv_transpose2d {xs:?} {ws:?} {opts:?}");
            worst = worst.max(if bias {
                let b = randn(200 + k as u64, &[ws[1] * opts.groups]);
                check(&what, &[x, w, b], |v| {
                    v[0].conv_transpose2d_bias(v[1], v[2], opts).tanh()
                })
            } else {
                check(&what, &[x, w], |v| v[0].conv_transpose2d(v[1], opts).tanh())
            });
        }
        eprintln!(
            "conv_transpose2d: {} configs, max |error| {worst:.3e}",
            configs().len()
        );
    }

    #[test]
    fn is_the_transpose_of_conv2d() {
        // <conv_transpose(x, w), y> = <x, conv(y, w)> for the same options.
        let tape = Tape::<f64>::new();
        let x = tape.input(randn(1, &[2, 4, 3, 4]));
        let w = tape.input(randn(2, &[4, 3, 3, 3]));
        let t = ConvTransposeOptions::new()
            .stride(2)
            .padding(1)
            .output_padding((1, 0));
        let y = tape.input(randn(3, &x.conv_transpose2d(w, t).shape()));
        let c = ConvOptions::new().stride(2).padding(1);
        let lhs = (x.conv_transpose2d(w, t) * y).sum().value().item();
        let rhs = (x * y.conv2d(w, c)).sum().value().item();
        approx::assert_relative_eq!(lhs, rhs, max_relative = 1e-12);
    }

    #[test]
    fn refusals_name_the_op_and_shapes() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([1, 2, 3, 3]));
        let w = tape.input(Tensor::zeros([2, 1, 3, 3]));
        let e = x
            .try_conv_transpose2d(w, ConvTransposeOptions::new().stride(2).output_padding(2))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("conv_transpose2d")
                && e.contains("[1, 2, 3, 3]")
                && e.contains("output padding 2 must be smaller"),
            "{e}"
        );
        let e = x
            .try_conv_transpose2d(w, ConvTransposeOptions::new().padding(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("leaves no output"), "{e}");
        let w3 = tape.input(Tensor::zeros([3, 1, 3, 3]));
        let e = x
            .try_conv_transpose2d(w3, ConvTransposeOptions::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 channels") && e.contains("[3, 1, 3, 3]"),
            "{e}"
        );
    }
}
