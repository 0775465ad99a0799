//! 2-D convolution over NCHW input, as PyTorch's `F.conv2d` (a cross-correlation: the
//! kernel is not flipped), and [`ConvOptions`], its options.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::conv::{
    ConvGeom, conv2d_backward_bias, conv2d_backward_weight, conv2d_forward_and_weight_grad,
    conv2d_forward_new, conv2d_transposed_new,
};
use crate::kernels::window::{Window, output_len};
use crate::ops::Pair;
use crate::shape::Shape;
use crate::tape::{Held, Var, VarGrads, VjpArgs};
use crate::tensor::Tensor;

/// Options of [`Var::conv2d`] and [`Var::conv2d_bias`], as in PyTorch's `F.conv2d`. Each
/// size is a [`Pair`] `(height, width)`; a single `usize` means the same on both axes.
///
/// `ConvOptions::new()` (also `ConvOptions::default()`) is stride 1, padding 0, dilation 1, groups 1.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::ops::conv2d::ConvOptions;
/// let opts = ConvOptions::new().stride((2, 1)).padding(1).dilation(2);
/// let tape = Tape::<f32>::new();
/// let x = tape.input(Tensor::zeros([1, 3, 9, 9]));
/// let w = tape.input(Tensor::zeros([8, 3, 3, 3]));
/// // (9 + 2·1 − 2·(3 − 1) − 1) / s + 1 per axis, with s = 2 down and 1 across.
/// assert_eq!(x.conv2d(w, opts).shape(), [1, 8, 4, 7]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvOptions {
    /// Step between output positions, at least 1.
    pub stride: Pair,
    /// Zeros added on both sides of each spatial axis of the input.
    pub padding: Pair,
    /// Spacing between kernel taps, at least 1 (1 is a dense kernel).
    pub dilation: Pair,
    /// Channel groups, at least 1: input and output channels are split into `groups`
    /// blocks and block `g` of the output sees only block `g` of the input. `groups = C = O`
    /// is a depthwise convolution.
    pub groups: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            stride: Pair(1, 1),
            padding: Pair(0, 0),
            dilation: Pair(1, 1),
            groups: 1,
        }
    }
}

impl ConvOptions {
    /// Stride 1, padding 0, dilation 1, groups 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the stride.
    pub fn stride(self, stride: impl Into<Pair>) -> Self {
        ConvOptions {
            stride: stride.into(),
            ..self
        }
    }

    /// Sets the zero padding.
    pub fn padding(self, padding: impl Into<Pair>) -> Self {
        ConvOptions {
            padding: padding.into(),
            ..self
        }
    }

    /// Sets the dilation.
    pub fn dilation(self, dilation: impl Into<Pair>) -> Self {
        ConvOptions {
            dilation: dilation.into(),
            ..self
        }
    }

    /// Sets the number of channel groups.
    pub fn groups(self, groups: usize) -> Self {
        ConvOptions { groups, ..self }
    }
}

/// The most elements a buffer may hold: `isize::MAX` bytes of f64, Rust's limit for one
/// allocation.
const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// Checks the options and the input and weight shapes, and returns the geometry.
#[track_caller]
pub(crate) fn geometry(x: &Shape, w: &Shape, opts: &ConvOptions) -> Result<ConvGeom, Error> {
    const OP: &str = "conv2d";
    let ConvOptions {
        stride: Pair(sh, sw),
        padding: Pair(ph, pw),
        dilation: Pair(dh, dw),
        groups,
    } = *opts;
    if groups == 0 {
        return Err(Error::bad_argument(OP, "groups must be at least 1; got 0"));
    }
    if sh == 0 || sw == 0 {
        return Err(Error::bad_argument(
            OP,
            format!("stride must be at least 1 on each axis; got ({sh}, {sw})"),
        ));
    }
    if dh == 0 || dw == 0 {
        return Err(Error::bad_argument(
            OP,
            format!("dilation must be at least 1 on each axis; got ({dh}, {dw})"),
        ));
    }
    // A function, not a closure: closures do not forward `#[track_caller]`.
    #[track_caller]
    fn bad(x: &Shape, w: &Shape, why: String) -> Result<ConvGeom, Error> {
        Err(Error::incompatible(OP, x, w, why))
    }
    if x.rank() != 4 {
        return bad(
            x,
            w,
            format!(
                "the input must be 4-D [N, C, H, W] but has rank {}",
                x.rank()
            ),
        );
    }
    if w.rank() != 4 {
        return bad(
            x,
            w,
            format!(
                "the weight must be 4-D [O, C/groups, kh, kw] but has rank {}",
                w.rank()
            ),
        );
    }
    let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
    let (o, wc, kh, kw) = (w[0], w[1], w[2], w[3]);
    if c % groups != 0 {
        return bad(
            x,
            w,
            format!("input has {c} channels, which groups = {groups} does not divide"),
        );
    }
    if wc.checked_mul(groups) != Some(c) {
        return bad(
            x,
            w,
            format!(
                "input has {c} channels but the weight expects {} (weight [O, C/groups, kh, kw] with groups = {groups})",
                wc.saturating_mul(groups)
            ),
        );
    }
    if o % groups != 0 {
        return bad(
            x,
            w,
            format!("weight has {o} output channels, which groups = {groups} does not divide"),
        );
    }
    if kh == 0 || kw == 0 {
        return bad(x, w, format!("the kernel is empty ({kh} x {kw})"));
    }
    let padded_fits = |len: usize, p: usize| p.checked_mul(2).and_then(|v| v.checked_add(len));
    if padded_fits(h, ph).is_none() || padded_fits(wd, pw).is_none() {
        return bad(
            x,
            w,
            format!(
                "padding ({ph}, {pw}) makes the padded input {h} x {wd} longer than usize can count"
            ),
        );
    }
    // No window at all (Some(0)) is refused like an overflow.
    let positive = |len: Option<usize>| len.filter(|&l| l > 0);
    let (Some(ho), Some(wo)) = (
        positive(output_len(h, kh, sh, ph, dh, false)),
        positive(output_len(wd, kw, sw, pw, dw, false)),
    ) else {
        // Extents past usize are larger than any input, so saturating keeps the message true.
        let span = |d: usize, k: usize| d.saturating_mul(k - 1).saturating_add(1);
        let padded = |len: usize, p: usize| p.saturating_mul(2).saturating_add(len);
        return bad(
            x,
            w,
            format!(
                "the kernel spans {} x {} with dilation ({dh}, {dw}), larger than the padded input {} x {} (padding ({ph}, {pw}))",
                span(dh, kh),
                span(dw, kw),
                padded(h, ph),
                padded(wd, pw)
            ),
        );
    };
    // The output and the column matrix (taps x positions, per image) must be buffers that
    // can exist: a huge padding with a small stride makes a huge output. A zero dimension
    // counts as 1, so every partial product the kernels form (`ho · wo` of an empty batch
    // included) is bounded too, not only the total.
    let fits = |dims: &[usize]| {
        dims.iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d.max(1)))
            .is_some_and(|e| e <= MAX_ELEMENTS)
    };
    if !fits(&[n, c, h, wd]) || !fits(&[n, o, ho, wo]) || !fits(&[wc, kh, kw, ho, wo]) {
        return bad(
            x,
            w,
            format!(
                "the output [{n}, {o}, {ho}, {wo}] (padding ({ph}, {pw}), stride ({sh}, {sw})) \
                 would hold more elements than memory can address"
            ),
        );
    }
    Ok(ConvGeom {
        n,
        c,
        h,
        w: wd,
        o,
        win: Window {
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
        },
        groups,
        ho,
        wo,
    })
}

impl<'t, T: Float> Var<'t, T> {
    /// 2-D convolution (cross-correlation, as PyTorch's `F.conv2d`) of the input
    /// `self: [N, C, H, W]` with `weight: [O, C/groups, kh, kw]`, giving `[N, O, Ho, Wo]`
    /// with `Ho = (H + 2·ph − dh·(kh − 1) − 1) / sh + 1` (floor) and likewise `Wo`:
    ///
    /// `y[n, o, i, j] = Σ_{c, p, q} x[n, k·C/groups + c, i·sh + p·dh − ph, j·sw + q·dw − pw] · w[o, c, p, q]`
    ///
    /// where `k = o / (O/groups)` is the group of output channel `o`, `c < C/groups`, and
    /// `x` reads as zero in the padding.
    ///
    /// VJP, with `g` the upstream gradient: `∂L/∂x` is every `g[n, o, i, j] · w[o, c, p, q]`
    /// added back at the input position the forward read (`col2im(Wᵀ · G)`, padding
    /// dropped); `∂L/∂w[o, c, p, q] = Σ_{n, i, j} g[n, o, i, j] · x[n, k·C/groups + c, i·sh + p·dh − ph, j·sw + q·dw − pw]`
    /// (`Σ_n G · colᵀ`).
    ///
    /// Errors when either operand is not 4-D, the channels do not match (`C` must be
    /// `weight[1] · groups`), `groups` does not divide `C` and `O`, an option is 0 (stride,
    /// dilation, groups), the kernel is empty or its dilated extent exceeds the padded
    /// input, the output would hold more elements than memory can address (a padding near
    /// `usize::MAX / 4` with a small stride), or `weight` is on another tape.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::ops::conv2d::ConvOptions;
    /// // A 1-D convolution as a 1 x W one: [1, 2, 3, 4, 5] with [1, 1, 1], padded by one.
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], [1, 1, 1, 5]));
    /// let w = tape.param(Tensor::ones([1, 1, 1, 3]));
    /// let y = x.conv2d(w, ConvOptions::new().padding((0, 1)));
    /// assert_eq!(y.value().to_vec(), vec![3.0, 6.0, 9.0, 12.0, 9.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[x].to_vec(), vec![2.0, 3.0, 3.0, 3.0, 2.0]); // taps covering each input
    /// assert_eq!(g[w].to_vec(), vec![10.0, 15.0, 14.0]);       // sums of shifted inputs
    /// ```
    #[track_caller]
    pub fn try_conv2d(self, weight: Var<'t, T>, opts: ConvOptions) -> Result<Var<'t, T>, Error> {
        self.conv2d_impl(weight, None, opts)
    }

    /// [`Var::try_conv2d`], panicking on shapes or options it refuses.
    ///
    /// # Panics
    /// With the message of [`Var::try_conv2d`]'s error.
    #[track_caller]
    pub fn conv2d(self, weight: Var<'t, T>, opts: ConvOptions) -> Var<'t, T> {
        self.try_conv2d(weight, opts).or_panic()
    }

    /// [`Var::try_conv2d`] plus a bias `[O]` added to every position of each output channel:
    /// `y[n, o, i, j] = conv(x, w)[n, o, i, j] + bias[o]`.
    ///
    /// VJP: as [`Var::try_conv2d`] for the input and weight, and
    /// `∂L/∂bias[o] = Σ_{n, i, j} g[n, o, i, j]`.
    ///
    /// Errors as [`Var::try_conv2d`], and when `bias` is not `[O]` or is on another tape.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::ops::conv2d::ConvOptions;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.input(Tensor::ones([2, 1, 3, 3]));
    /// let w = tape.param(Tensor::ones([2, 1, 2, 2]));
    /// let b = tape.param(Tensor::from_vec(vec![0.5, -1.0], [2]));
    /// let y = x.conv2d_bias(w, b, ConvOptions::new());
    /// assert_eq!(y.shape(), [2, 2, 2, 2]);
    /// assert_eq!(y.value().to_vec()[..8], [4.5, 4.5, 4.5, 4.5, 3.0, 3.0, 3.0, 3.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[b].to_vec(), vec![8.0, 8.0]); // 2 images x 4 positions
    /// ```
    #[track_caller]
    pub fn try_conv2d_bias(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        opts: ConvOptions,
    ) -> Result<Var<'t, T>, Error> {
        self.conv2d_impl(weight, Some(bias), opts)
    }

    /// [`Var::try_conv2d_bias`], panicking on shapes or options it refuses.
    ///
    /// # Panics
    /// With the message of [`Var::try_conv2d_bias`]'s error.
    #[track_caller]
    pub fn conv2d_bias(
        self,
        weight: Var<'t, T>,
        bias: Var<'t, T>,
        opts: ConvOptions,
    ) -> Var<'t, T> {
        self.try_conv2d_bias(weight, bias, opts).or_panic()
    }

    #[track_caller]
    fn conv2d_impl(
        self,
        weight: Var<'t, T>,
        bias: Option<Var<'t, T>>,
        opts: ConvOptions,
    ) -> Result<Var<'t, T>, Error> {
        self.check_same_tape("conv2d", weight)?;
        if let Some(b) = bias {
            self.check_same_tape("conv2d", b)?;
        }
        let (x, w) = (self.value(), weight.value());
        let geom = geometry(x.shape(), w.shape(), &opts)?;
        let bv = bias.map(|b| b.value());
        if let Some(bv) = &bv
            && bv.shape() != &[geom.o]
        {
            return Err(Error::incompatible(
                "conv2d",
                w.shape(),
                bv.shape(),
                format!(
                    "the bias must have shape [O] = [{}], one value per output channel of the weight [O, C/groups, kh, kw]",
                    geom.o
                ),
            ));
        }
        let y = conv2d_forward_new(&geom, x.data(), w.data(), bv.as_ref().map(|b| b.data()));
        let y = Tensor::from_vec(y, [geom.n, geom.o, geom.ho, geom.wo]);
        let held = [Held::tensor(&x), Held::tensor(&w)];
        match bias {
            Some(b) => {
                let inputs = [self, weight, b];
                self.tape()
                    .try_record_graph("conv2d", &inputs, y, &held, move |a| conv_vjp(a, geom))
            }
            None => self
                .tape()
                .try_record_graph("conv2d", &[self, weight], y, &held, move |a| {
                    conv_vjp(a, geom)
                }),
        }
    }
}

// The convolution's VJPs are ops of their own, each linear in both operands, so that each
// one's VJP is written in the other two: with `y = conv(x, w)`, `dx = conv^T(g, w)` and
// `dw = corr(g, x)`, the adjoint of `g -> conv^T(g, w)` is `conv(., w)`, and so on round.

/// The VJP of `conv2d` (with or without its bias).
fn conv_vjp<'s, T: Float>(a: &VjpArgs<'s, T>, geom: ConvGeom) -> VarGrads<'s, T> {
    let g = a.g();
    let grads = [
        a.then(0, || input_grad(g, a.input(1), geom)),
        a.then(1, || weight_grad(g, a.input(0), geom)),
        a.then(2, || bias_grad(g, geom)),
    ];
    // Collected (inline, no allocation), as many as the op has inputs.
    grads.into_iter().take(a.inputs().len()).collect()
}

/// `conv(x, w)` for a known geometry, without bias: the forward of the VJPs below.
fn convolve<'s, T: Float>(x: Var<'s, T>, w: Var<'s, T>, geom: ConvGeom) -> Var<'s, T> {
    let y = x.with_value(|x| w.with_value(|w| conv2d_forward_new(&geom, x.data(), w.data(), None)));
    record_convolve(x, w, y, geom)
}

/// Records `y`, the value of `conv(x, w)` (without bias), as that op.
fn record_convolve<'s, T: Float>(
    x: Var<'s, T>,
    w: Var<'s, T>,
    y: Vec<T>,
    geom: ConvGeom,
) -> Var<'s, T> {
    let y = Tensor::from_vec(y, [geom.n, geom.o, geom.ho, geom.wo]);
    x.tape()
        .record_differentiable("conv2d", &[x, w], y, move |a| {
            let g = a.g();
            [
                a.then(0, || input_grad(g, a.input(1), geom)),
                a.then(1, || weight_grad(g, a.input(0), geom)),
            ]
            .into()
        })
}

/// `∂L/∂x = conv^T(g, w)` (a transposed convolution of the output's gradient).
fn input_grad<'s, T: Float>(g: Var<'s, T>, w: Var<'s, T>, geom: ConvGeom) -> Var<'s, T> {
    transposed_conv("conv2d_backward_input", g, w, None, geom)
}

/// `conv^T(g, w)` plus an optional bias per channel of the result, recorded as `op`: the
/// input gradient of the convolution `geom`, and `conv_transpose2d`'s forward.
pub(crate) fn transposed_conv<'s, T: Float>(
    op: &'static str,
    g: Var<'s, T>,
    w: Var<'s, T>,
    bias: Option<Var<'s, T>>,
    geom: ConvGeom,
) -> Var<'s, T> {
    let dx = g.with_value(|g| {
        w.with_value(|w| match bias {
            Some(b) => {
                b.with_value(|b| conv2d_transposed_new(&geom, g.data(), w.data(), Some(b.data())))
            }
            None => conv2d_transposed_new(&geom, g.data(), w.data(), None),
        })
    });
    let dx = Tensor::from_vec(dx, [geom.n, geom.c, geom.h, geom.w]);
    // The bias's gradient sums over the result's channels: the convolution's bias
    // gradient for a geometry whose output is this result.
    let out_geom = ConvGeom {
        o: geom.c,
        ho: geom.h,
        wo: geom.w,
        ..geom
    };
    match bias {
        Some(b) => g
            .tape()
            .record_differentiable(op, &[g, w, b], dx, move |a| {
                transposed_vjp(a, geom, out_geom)
            }),
        None => g
            .tape()
            .record_differentiable(op, &[g, w], dx, move |a| transposed_vjp(a, geom, out_geom)),
    }
}

/// The VJP of [`transposed_conv`], whose result has the geometry `out` (with or without
/// its bias).
fn transposed_vjp<'s, T: Float>(
    a: &VjpArgs<'s, T>,
    geom: ConvGeom,
    out: ConvGeom,
) -> VarGrads<'s, T> {
    // <gg, conv^T(g, w)> = <conv(gg, w), g>.
    let (gg, g, w) = (a.g(), a.input(0), a.input(1));
    let [dg, dw] = if a.needs(0) && a.needs(1) {
        // Both read `gg` as a convolution's input: one pass over it serves both.
        let (y, dw) = gg.with_value(|ggv| {
            w.with_value(|wv| {
                g.with_value(|gv| {
                    conv2d_forward_and_weight_grad(&geom, ggv.data(), wv.data(), gv.data())
                })
            })
        });
        [
            Some(record_convolve(gg, w, y, geom)),
            Some(record_weight_grad(g, gg, dw, geom)),
        ]
    } else {
        [
            a.then(0, || convolve(gg, w, geom)),
            a.then(1, || weight_grad(g, gg, geom)),
        ]
    };
    let grads = [dg, dw, a.then(2, || bias_grad(gg, out))];
    grads.into_iter().take(a.inputs().len()).collect()
}

/// `∂L/∂w = corr(g, x)` (each weight's taps correlated with the output's gradient).
fn weight_grad<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, geom: ConvGeom) -> Var<'s, T> {
    let mut dw = crate::runtime::buffers::zeroed(geom.o * geom.taps());
    g.with_value(|g| x.with_value(|x| conv2d_backward_weight(&geom, g.data(), x.data(), &mut dw)));
    record_weight_grad(g, x, dw, geom)
}

/// Records `dw`, the value of `corr(g, x)`, as that op.
fn record_weight_grad<'s, T: Float>(
    g: Var<'s, T>,
    x: Var<'s, T>,
    dw: Vec<T>,
    geom: ConvGeom,
) -> Var<'s, T> {
    let shape = [geom.o, geom.c / geom.groups, geom.win.kh, geom.win.kw];
    g.tape().record_differentiable(
        "conv2d_backward_weight",
        &[g, x],
        Tensor::from_vec(dw, shape),
        move |a| {
            // <gg, corr(g, x)> = <conv(x, gg), g>.
            let gg = a.g();
            [
                a.then(0, || convolve(a.input(1), gg, geom)),
                a.then(1, || input_grad(a.input(0), gg, geom)),
            ]
            .into()
        },
    )
}

/// `∂L/∂b = Σ_{n, i, j} g[n, o, i, j]`; its adjoint spreads a value over the channel.
fn bias_grad<'s, T: Float>(g: Var<'s, T>, geom: ConvGeom) -> Var<'s, T> {
    let mut db = crate::runtime::buffers::zeroed(geom.o);
    g.with_value(|g| conv2d_backward_bias(&geom, g.data(), &mut db));
    g.tape().record_differentiable(
        "conv2d_backward_bias",
        &[g],
        Tensor::from_vec(db, [geom.o]),
        move |a| {
            let spread = a.g().reshape([1, geom.o, 1, 1]);
            [Some(spread.broadcast_to(a.input(0).shape()))].into()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// One gradcheck configuration: input `[n, c, h, w]`, weight `[o, c/groups, kh, kw]`.
    struct Cfg {
        n: usize,
        c: usize,
        hw: (usize, usize),
        o: usize,
        k: (usize, usize),
        opts: ConvOptions,
        bias: bool,
    }

    fn cfg(n: usize, c: usize, hw: (usize, usize), o: usize, k: (usize, usize)) -> Cfg {
        Cfg {
            n,
            c,
            hw,
            o,
            k,
            opts: ConvOptions::new(),
            bias: true,
        }
    }

    impl Cfg {
        fn with(self, opts: ConvOptions) -> Self {
            Cfg { opts, ..self }
        }
        fn no_bias(self) -> Self {
            Cfg {
                bias: false,
                ..self
            }
        }
    }

    fn configs() -> Vec<Cfg> {
        let o = ConvOptions::new();
        vec![
            cfg(1, 1, (5, 7), 1, (3, 3)),
            cfg(3, 3, (5, 7), 4, (3, 3)).with(o.stride(2)).no_bias(),
            cfg(1, 2, (7, 7), 2, (3, 3)).with(o.stride(3).padding(1)),
            cfg(2, 3, (6, 5), 4, (2, 2)).with(o.stride((2, 1))),
            cfg(1, 3, (5, 5), 4, (3, 3)).with(o.padding(1)),
            cfg(1, 2, (5, 6), 3, (3, 3))
                .with(o.padding((2, 0)))
                .no_bias(),
            cfg(1, 1, (7, 7), 2, (3, 3)).with(o.dilation(2)),
            cfg(2, 2, (5, 7), 1, (2, 2)).with(o.dilation((1, 2))),
            cfg(1, 3, (5, 7), 4, (3, 1)),
            cfg(1, 1, (5, 7), 4, (2, 5))
                .with(o.stride(2).padding((1, 2)))
                .no_bias(),
            cfg(3, 3, (4, 5), 4, (1, 1)),
            cfg(1, 3, (5, 5), 1, (1, 1)).with(o.stride(2)).no_bias(),
            cfg(1, 2, (2, 3), 2, (1, 1)).with(o.padding(1)),
            cfg(1, 4, (5, 5), 4, (3, 3)).with(o.groups(2).padding(1)),
            cfg(2, 3, (5, 7), 3, (3, 3)).with(o.groups(3)),
            cfg(1, 3, (6, 6), 6, (3, 3))
                .with(o.groups(3).stride(2))
                .no_bias(),
            cfg(3, 4, (7, 5), 2, (2, 3))
                .with(o.groups(2).stride((2, 1)).padding((1, 0)).dilation((2, 1))),
            cfg(1, 2, (3, 3), 2, (3, 3)).with(o.padding(2).dilation(2).stride(3)),
            cfg(1, 1, (1, 5), 1, (1, 3)).with(o.padding((0, 1))),
            cfg(3, 1, (5, 7), 1, (2, 5)).with(o.dilation((1, 2)).padding((0, 3)).stride((1, 3))),
            // 3x3 stride 1 with 16 channels each side: the Winograd kernels, odd sizes.
            cfg(1, 16, (3, 5), 16, (3, 3)).with(o.padding(1)),
            cfg(2, 16, (4, 3), 17, (3, 3))
                .with(o.padding((2, 0)))
                .no_bias(),
        ]
    }

    #[test]
    fn gradcheck_input_weight_bias_across_configs() {
        let mut worst: f64 = 0.0;
        let cfgs = configs();
        for (k, cf) in cfgs.iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(100 + k as u64);
            let x = Tensor::<f64>::randn([cf.n, cf.c, cf.hw.0, cf.hw.1], &mut rng);
            let w = Tensor::randn([cf.o, cf.c / cf.opts.groups, cf.k.0, cf.k.1], &mut rng);
            let b = Tensor::randn([cf.o], &mut rng);
            let opts = cf.opts;
            let r = if cf.bias {
                gradcheck(|v| v[0].conv2d_bias(v[1], v[2], opts), &[x, w, b])
            } else {
                gradcheck(|v| v[0].conv2d(v[1], opts), &[x, w])
            };
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("config {k} ({opts:?}, bias {}): {e}", cf.bias),
            }
        }
        println!(
            "conv2d: {} gradcheck configs pass, largest |error| {worst:.3e}",
            cfgs.len()
        );
        assert!(cfgs.len() >= 15);
    }

    #[test]
    fn one_dimensional_known_values() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(
            vec![1.0, 2.0, 3.0, 4.0, 5.0],
            [1, 1, 1, 5],
        ));
        let w = tape.param(Tensor::ones([1, 1, 1, 3]));
        let y = x.conv2d(w, ConvOptions::new().padding((0, 1)));
        assert_eq!(y.shape(), [1, 1, 1, 5]);
        assert_eq!(y.value().to_vec(), vec![3.0, 6.0, 9.0, 12.0, 9.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![2.0, 3.0, 3.0, 3.0, 2.0]);
        assert_eq!(g[w].to_vec(), vec![10.0, 15.0, 14.0]);
    }

    #[test]
    fn forward_known_values() {
        let tape = Tape::<f32>::new();
        // 3x3 box filter on arange(16) as 4x4, padding 1, stride 2: the windows centred on
        // (0,0), (0,2), (2,0), (2,2), clipped by the padding.
        let x = tape.input(Tensor::arange(16).reshape([1, 1, 4, 4]));
        let w = tape.input(Tensor::ones([1, 1, 3, 3]));
        let y = x.conv2d(w, ConvOptions::new().padding(1).stride(2));
        assert_eq!(y.shape(), [1, 1, 2, 2]);
        assert_eq!(y.value().to_vec(), vec![10.0, 24.0, 51.0, 90.0]);
        // Not flipped: [[1, 0], [0, -1]] gives x[i, j] − x[i+1, j+1] = −5 everywhere, plus bias.
        let k = tape.input(Tensor::from_vec(vec![1.0, 0.0, 0.0, -1.0], [1, 1, 2, 2]));
        let b = tape.input(Tensor::from_vec(vec![0.5], [1]));
        let y = x.conv2d_bias(k, b, ConvOptions::new());
        assert_eq!(y.value().to_vec(), vec![-4.5; 9]);
        // Depthwise: each channel with its own scale, channels kept apart.
        let x2 = tape.input(Tensor::from_vec(vec![1.0, 2.0, 10.0, 20.0], [1, 2, 1, 2]));
        let k2 = tape.input(Tensor::from_vec(vec![3.0, -1.0], [2, 1, 1, 1]));
        let y2 = x2.conv2d(k2, ConvOptions::new().groups(2));
        assert_eq!(y2.value().to_vec(), vec![3.0, 6.0, -10.0, -20.0]);
    }

    #[test]
    fn f32_forward_agrees_with_f64() {
        for (k, cf) in configs().iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(200 + k as u64);
            let x = Tensor::<f64>::randn([cf.n, cf.c, cf.hw.0, cf.hw.1], &mut rng);
            let w = Tensor::randn([cf.o, cf.c / cf.opts.groups, cf.k.0, cf.k.1], &mut rng);
            let b = Tensor::randn([cf.o], &mut rng);
            let t64 = Tape::<f64>::new();
            let y64 = t64
                .input(x.clone())
                .conv2d_bias(t64.input(w.clone()), t64.input(b.clone()), cf.opts)
                .value();
            let t32 = Tape::<f32>::inference();
            let y32 = t32
                .input(x.cast())
                .conv2d_bias(t32.input(w.cast()), t32.input(b.cast()), cf.opts)
                .value();
            assert_eq!(y32.shape(), y64.shape());
            for (a, b) in y32.data().iter().zip(y64.data()) {
                assert!((*a as f64 - b).abs() < 1e-4, "config {k}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn only_needed_gradients_are_computed() {
        // The input is a constant: its slot is skipped, the weight's still flows.
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::ones([1, 1, 3, 3]));
        let w = tape.param(Tensor::ones([1, 1, 2, 2]));
        let g = tape.backward(x.conv2d(w, ConvOptions::new()).sum());
        assert_eq!(g[w].to_vec(), vec![4.0; 4]);
        assert!(g.get(x).is_none());
    }

    #[test]
    fn empty_batch_gives_empty_output() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::zeros([0, 2, 4, 4]));
        let w = tape.param(Tensor::ones([3, 2, 3, 3]));
        let b = tape.param(Tensor::ones([3]));
        let y = x.conv2d_bias(w, b, ConvOptions::new());
        assert_eq!(y.shape(), [0, 3, 2, 2]);
        let g = tape.backward_with(y, Tensor::zeros([0, 3, 2, 2]));
        assert_eq!(g[w].to_vec(), vec![0.0; 54]);
        assert_eq!(g[b].to_vec(), vec![0.0; 3]);
    }

    fn err(x: &[usize], w: &[usize], opts: ConvOptions) -> String {
        let tape = Tape::<f64>::new();
        let xv = tape.input(Tensor::zeros(x));
        let wv = tape.input(Tensor::zeros(w));
        let e = xv.try_conv2d(wv, opts).unwrap_err();
        located_here(&e, line!() - 1);
        e.to_string()
    }

    /// The error names `conv2d` and points at the caller's line, not into the op.
    fn located_here(e: &Error, line: u32) {
        assert_eq!(e.op, "conv2d");
        assert_eq!(
            (e.location.file(), e.location.line()),
            ("src/ops/conv2d.rs", line),
            "{e}"
        );
    }

    fn assert_msg(msg: &str, start: &str) {
        assert!(msg.starts_with(start), "{msg}");
        assert!(msg.contains("(called at src/ops/conv2d.rs:"), "{msg}");
    }

    #[test]
    fn error_input_not_4d() {
        let m = err(&[3, 5, 5], &[4, 3, 3, 3], ConvOptions::new());
        assert_msg(
            &m,
            "conv2d: shapes [3, 5, 5] and [4, 3, 3, 3] are incompatible: the input must be 4-D [N, C, H, W] but has rank 3",
        );
    }

    #[test]
    fn error_weight_not_4d() {
        let m = err(&[1, 3, 5, 5], &[4, 27], ConvOptions::new());
        assert_msg(
            &m,
            "conv2d: shapes [1, 3, 5, 5] and [4, 27] are incompatible: the weight must be 4-D [O, C/groups, kh, kw] but has rank 2",
        );
    }

    #[test]
    fn error_channel_mismatch() {
        let m = err(&[1, 3, 5, 5], &[4, 1, 3, 3], ConvOptions::new());
        assert_msg(
            &m,
            "conv2d: shapes [1, 3, 5, 5] and [4, 1, 3, 3] are incompatible: input has 3 channels but the weight expects 1 (weight [O, C/groups, kh, kw] with groups = 1)",
        );
        let m = err(&[1, 4, 5, 5], &[4, 1, 3, 3], ConvOptions::new().groups(2));
        assert!(m.contains("input has 4 channels but the weight expects 2 (weight [O, C/groups, kh, kw] with groups = 2)"), "{m}");
    }

    #[test]
    fn error_channels_not_divisible_by_groups() {
        let m = err(&[1, 3, 5, 5], &[4, 1, 3, 3], ConvOptions::new().groups(2));
        assert_msg(
            &m,
            "conv2d: shapes [1, 3, 5, 5] and [4, 1, 3, 3] are incompatible: input has 3 channels, which groups = 2 does not divide",
        );
        let m = err(&[1, 4, 5, 5], &[3, 2, 3, 3], ConvOptions::new().groups(2));
        assert_msg(
            &m,
            "conv2d: shapes [1, 4, 5, 5] and [3, 2, 3, 3] are incompatible: weight has 3 output channels, which groups = 2 does not divide",
        );
    }

    #[test]
    fn error_bias_shape() {
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::zeros([1, 3, 5, 5]));
        let w = tape.input(Tensor::zeros([4, 3, 3, 3]));
        for bad in [vec![3], vec![1, 4], vec![]] {
            let b = tape.input(Tensor::zeros(bad.as_slice()));
            let e = x.try_conv2d_bias(w, b, ConvOptions::new()).unwrap_err();
            located_here(&e, line!() - 1);
            let m = e.to_string();
            assert_msg(
                &m,
                &format!(
                    "conv2d: shapes [4, 3, 3, 3] and {} are incompatible: the bias must have shape [O] = [4], one value per output channel",
                    Shape::new(&bad)
                ),
            );
        }
    }

    #[test]
    fn error_zero_options() {
        let m = err(
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            ConvOptions::new().stride((0, 1)),
        );
        assert_msg(
            &m,
            "conv2d: stride must be at least 1 on each axis; got (0, 1)",
        );
        let m = err(
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            ConvOptions::new().dilation((2, 0)),
        );
        assert_msg(
            &m,
            "conv2d: dilation must be at least 1 on each axis; got (2, 0)",
        );
        let m = err(&[1, 1, 5, 5], &[1, 1, 3, 3], ConvOptions::new().groups(0));
        assert_msg(&m, "conv2d: groups must be at least 1; got 0");
    }

    #[test]
    fn error_kernel_larger_than_padded_input() {
        let m = err(
            &[1, 1, 5, 4],
            &[1, 1, 3, 3],
            ConvOptions::new().dilation((1, 2)),
        );
        assert_msg(
            &m,
            "conv2d: shapes [1, 1, 5, 4] and [1, 1, 3, 3] are incompatible: the kernel spans 3 x 5 with dilation (1, 2), larger than the padded input 5 x 4 (padding (0, 0))",
        );
        // One more row of padding on each side makes it fit.
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::zeros([1, 1, 5, 4]));
        let w = tape.input(Tensor::zeros([1, 1, 3, 3]));
        let y = x.conv2d(w, ConvOptions::new().dilation((1, 2)).padding((0, 1)));
        assert_eq!(y.shape(), [1, 1, 3, 2]);
        // Sizes whose arithmetic would overflow are refused the same way, not wrapped.
        let m = err(
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            ConvOptions::new().dilation(usize::MAX),
        );
        assert!(m.contains("larger than the padded input"), "{m}");
    }

    #[test]
    fn error_output_too_large_or_padding_past_usize() {
        // Found by tests/properties.rs: a padding near usize::MAX / 2 with stride 1 asked the
        // kernel for an output of ~2^63 rows (an allocation that aborts the process).
        let m = err(
            &[1, 1, 1, 1],
            &[1, 1, 1, 1],
            ConvOptions::new().padding((usize::MAX / 4, 0)),
        );
        assert_msg(
            &m,
            "conv2d: shapes [1, 1, 1, 1] and [1, 1, 1, 1] are incompatible: the output \
             [1, 1, 9223372036854775807, 1] (padding (4611686018427387903, 0), stride (1, 1)) \
             would hold more elements than memory can address",
        );
        let m = err(
            &[1, 1, 2, 1],
            &[1, 1, 1, 1],
            ConvOptions::new().padding(usize::MAX / 2),
        );
        assert_msg(
            &m,
            "conv2d: shapes [1, 1, 2, 1] and [1, 1, 1, 1] are incompatible: padding \
             (9223372036854775807, 9223372036854775807) makes the padded input 2 x 1 longer \
             than usize can count",
        );
        // A large stride brings the same padding back to a small output.
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::ones([1, 1, 1, 1]));
        let w = tape.input(Tensor::ones([1, 1, 1, 1]));
        let big = usize::MAX / 4;
        let y = x.conv2d(w, ConvOptions::new().padding((big, 0)).stride((big, 1)));
        assert_eq!(y.shape(), [1, 1, 3, 1]);
        assert_eq!(y.value().to_vec(), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn error_empty_kernel() {
        let m = err(&[1, 1, 5, 5], &[1, 1, 0, 3], ConvOptions::new());
        assert_msg(
            &m,
            "conv2d: shapes [1, 1, 5, 5] and [1, 1, 0, 3] are incompatible: the kernel is empty (0 x 3)",
        );
    }

    #[test]
    fn error_foreign_tape() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
        let x = t1.input(Tensor::zeros([1, 1, 3, 3]));
        let w = t2.input(Tensor::zeros([1, 1, 2, 2]));
        let e = x.try_conv2d(w, ConvOptions::new()).unwrap_err();
        located_here(&e, line!() - 1);
        assert_eq!(*e.kind, ErrorKind::ForeignTape);
        assert_msg(
            &e.to_string(),
            "conv2d: a handle from another tape was used on this one",
        );
        let w1 = t1.input(Tensor::zeros([1, 1, 2, 2]));
        let b = t2.input(Tensor::zeros([1]));
        let e = x.try_conv2d_bias(w1, b, ConvOptions::new()).unwrap_err();
        located_here(&e, line!() - 1);
        assert_eq!(*e.kind, ErrorKind::ForeignTape);
    }

    #[test]
    #[should_panic(expected = "conv2d: shapes [1, 3, 5, 5] and [4, 1, 3, 3] are incompatible")]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([1, 3, 5, 5]));
        let w = tape.input(Tensor::zeros([4, 1, 3, 3]));
        let _ = x.conv2d(w, ConvOptions::new());
    }
}
