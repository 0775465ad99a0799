//! 2-D max pooling over NCHW input, and [`PoolOptions`], the options both pooling ops take.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::pool::{
    NO_ARGMAX, PoolGeom, max_pool2d_backward, max_pool2d_forward, max_pool2d_tiled_backward,
    max_pool2d_tiled_forward,
};
use crate::kernels::window::{Window, output_len};
use crate::ops::Pair;
use crate::shape::Shape;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::rc::Rc;

/// Options of [`Var::max_pool2d`] and [`Var::avg_pool2d`], as in PyTorch's
/// `F.max_pool2d` / `F.avg_pool2d`. Every size is a [`Pair`] `(height, width)`; a single
/// `usize` means the same in both axes.
///
/// `PoolOptions::new(k)` (or just `k`, or `(kh, kw)`, through `From`) is a `k`-window with stride
/// `k`, no padding, dilation 1, floor mode, and `count_include_pad` on.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::ops::max_pool2d::PoolOptions;
/// let opts = PoolOptions::new(3).stride(2).padding(1).ceil_mode(true);
/// let tape = Tape::<f32>::new();
/// let x = tape.input(Tensor::zeros([1, 1, 8, 8]));
/// // (8 + 2·1 − 3) / 2 = 3.5: ceil mode makes 5 windows per axis where floor makes 4.
/// assert_eq!(x.max_pool2d(opts).shape(), [1, 1, 5, 5]);
/// assert_eq!(x.max_pool2d(opts.ceil_mode(false)).shape(), [1, 1, 4, 4]);
/// assert_eq!(x.max_pool2d((4, 2)).shape(), [1, 1, 2, 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolOptions {
    /// Window size.
    pub kernel: Pair,
    /// Step between windows; defaults to the kernel.
    pub stride: Pair,
    /// Implicit padding added on both sides of each axis; at most half the kernel. Max
    /// pooling pads with `-∞`, average pooling with zeros.
    pub padding: Pair,
    /// Spacing between the taps of a window (max pooling only; average pooling accepts 1).
    pub dilation: Pair,
    /// Rounds the output size up instead of down, adding a last partial window when one
    /// would start inside the input or the left padding.
    pub ceil_mode: bool,
    /// Average pooling only: count the padding in each window's divisor (PyTorch's default).
    /// Ignored by max pooling.
    pub count_include_pad: bool,
}

impl PoolOptions {
    /// A `kernel`-sized window with stride `kernel`, padding 0, dilation 1, floor mode and
    /// `count_include_pad` on.
    pub fn new(kernel: impl Into<Pair>) -> Self {
        let kernel = kernel.into();
        PoolOptions {
            kernel,
            stride: kernel,
            padding: Pair(0, 0),
            dilation: Pair(1, 1),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// Sets the stride.
    pub fn stride(self, stride: impl Into<Pair>) -> Self {
        PoolOptions {
            stride: stride.into(),
            ..self
        }
    }

    /// Sets the padding (at most half the kernel in each axis).
    pub fn padding(self, padding: impl Into<Pair>) -> Self {
        PoolOptions {
            padding: padding.into(),
            ..self
        }
    }

    /// Sets the dilation (max pooling only; average pooling refuses anything but 1).
    pub fn dilation(self, dilation: impl Into<Pair>) -> Self {
        PoolOptions {
            dilation: dilation.into(),
            ..self
        }
    }

    /// Sets ceil mode.
    pub fn ceil_mode(self, on: bool) -> Self {
        PoolOptions {
            ceil_mode: on,
            ..self
        }
    }

    /// Sets whether average pooling counts padded cells in its divisor.
    pub fn count_include_pad(self, on: bool) -> Self {
        PoolOptions {
            count_include_pad: on,
            ..self
        }
    }
}

impl From<usize> for PoolOptions {
    /// A square `k × k` window with stride `k`.
    fn from(k: usize) -> Self {
        PoolOptions::new(k)
    }
}

impl From<(usize, usize)> for PoolOptions {
    /// A `kh × kw` window with stride `(kh, kw)`.
    fn from(k: (usize, usize)) -> Self {
        PoolOptions::new(k)
    }
}

impl From<Pair> for PoolOptions {
    /// A `kernel` window with stride `kernel`.
    fn from(k: Pair) -> Self {
        PoolOptions::new(k)
    }
}

fn pair(p: Pair) -> String {
    format!("({}, {})", p.0, p.1)
}

/// Validates pooling options against an input shape, as PyTorch does, and returns the
/// geometry the kernels take and the output shape `[N, C, OH, OW]`.
#[track_caller]
pub(crate) fn pool_geom(
    op: &'static str,
    shape: &Shape,
    o: &PoolOptions,
) -> Result<(PoolGeom, Shape), Error> {
    for (name, v) in [
        ("kernel", o.kernel),
        ("stride", o.stride),
        ("dilation", o.dilation),
    ] {
        if v.0 == 0 || v.1 == 0 {
            return Err(Error::bad_argument(
                op,
                format!("{name} {} must be positive in both axes", pair(v)),
            ));
        }
    }
    let (k, p) = (o.kernel, o.padding);
    if p.0 > k.0 / 2 || p.1 > k.1 / 2 {
        return Err(Error::bad_argument(
            op,
            format!(
                "padding {} must be at most half the kernel {} in each axis, here at most {}",
                pair(p),
                pair(k),
                pair(Pair(k.0 / 2, k.1 / 2))
            ),
        ));
    }
    if shape.rank() != 4 {
        return Err(Error::bad_shape(
            op,
            shape,
            format!(
                "expected a 4-D input [N, C, H, W], got rank {}",
                shape.rank()
            ),
        ));
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    if h == 0 || w == 0 {
        return Err(Error::bad_shape(
            op,
            shape,
            "the height and width must be non-zero",
        ));
    }
    let (s, d) = (o.stride, o.dilation);
    // Sizes this large describe no real pooling, and an input that large could not exist;
    // refusing them here keeps the message about what the user gave (u128 holds the
    // products without overflow).
    const LIMIT: u128 = (i64::MAX / 2) as u128;
    for (axis, len, k, s, p, d) in [
        ("height", h, k.0, s.0, p.0, d.0),
        ("width", w, k.1, s.1, p.1, d.1),
    ] {
        let padded = len as u128 + 2 * p as u128;
        let span = d as u128 * (k as u128 - 1) + 1;
        if padded > LIMIT || span > LIMIT || s as u128 > LIMIT {
            return Err(Error::bad_argument(
                op,
                format!(
                    "the {axis} axis is too large to pool: padded input {padded}, window extent \
                     {span} (kernel {k}, dilation {d}), stride {s}; each must be at most {LIMIT}"
                ),
            ));
        }
    }
    // Below the limit the arithmetic cannot overflow (None); no window at all is Some(0).
    let oh = output_len(h, k.0, s.0, p.0, d.0, o.ceil_mode).unwrap_or(0);
    let ow = output_len(w, k.1, s.1, p.1, d.1, o.ceil_mode).unwrap_or(0);
    if oh < 1 || ow < 1 {
        return Err(Error::bad_shape(
            op,
            shape,
            format!(
                "the output would be {oh}x{ow}, expected at least 1x1: the padded input \
                 {}x{} must be at least the window's extent {}x{} in each axis (kernel {}, \
                 dilation {}, padding {})",
                h + 2 * p.0,
                w + 2 * p.1,
                d.0 * (k.0 - 1) + 1,
                d.1 * (k.1 - 1) + 1,
                pair(k),
                pair(d),
                pair(p)
            ),
        ));
    }
    let g = PoolGeom {
        planes: n * c,
        h,
        w,
        oh,
        ow,
        win: Window {
            kh: k.0,
            kw: k.1,
            sh: s.0,
            sw: s.1,
            ph: p.0,
            pw: p.1,
            dh: d.0,
            dw: d.1,
        },
    };
    Ok((g, Shape::from([n, c, oh, ow])))
}

impl<'t, T: Float> Var<'t, T> {
    /// 2-D max pooling of an NCHW input `[N, C, H, W]`, as PyTorch's `F.max_pool2d`;
    /// `opts` is a [`PoolOptions`] or just a kernel size (`2`, `(3, 2)`).
    ///
    /// Forward: `y[n, c, i, j] = max_{a < kh, b < kw} x[n, c, i·sh − ph + a·dh, j·sw − pw + b·dw]`
    /// over the taps inside the input (padding is `-∞`: it never wins). Output
    /// `[N, C, OH, OW]` with `OH = ⌊(H + 2ph − dh(kh − 1) − 1) / sh⌋ + 1` (`⌈…⌉` in ceil mode,
    /// less one if the last window would start at or past `H + ph`), likewise `OW`.
    /// Ties go to the first maximum in row-major window order; NaN counts as the maximum.
    ///
    /// VJP: `∂L/∂x[n, c, argmax(i, j)] += g[n, c, i, j]` for every window `(i, j)`: each
    /// gradient goes to its window's maximum, summed where overlapping windows share one.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(
    ///     vec![1.0, 5.0, 2.0, 0.0,
    ///          3.0, 4.0, 8.0, 6.0], [1, 1, 2, 4]));
    /// let y = x.max_pool2d(2);
    /// assert_eq!(y.value().to_vec(), vec![5.0, 8.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[x].to_vec(), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn try_max_pool2d(self, opts: impl Into<PoolOptions>) -> Result<Var<'t, T>, Error> {
        let opts = opts.into();
        let x = self.value();
        let (g, out) = pool_geom("max_pool2d", x.shape(), &opts)?;
        let mut y = crate::runtime::buffers::zeroed(out.numel());
        let in_shape = x.shape().clone();
        if g.is_tiling() {
            // Windows that tile the input (2x2 stride 2, ...): one pass, no argmax stored;
            // the VJP finds each window's maximum again from the input and the output it
            // keeps (shared buffers, not copies).
            max_pool2d_tiled_forward(x.data(), &g, &mut y);
            let y = Tensor::from_vec(y, out);
            let held = [Held::tensor(&x), Held::tensor(&y)];
            return self
                .tape()
                .try_record_graph("max_pool2d", &[self], y, &held, move |a| {
                    let (x, y) = (a.input(0), a.output());
                    [Some(scatter_to_max(
                        a.g(),
                        &g,
                        &Argmax::Tiled(x, y),
                        &in_shape,
                    ))]
                    .into()
                });
        }
        let mut arg = vec![0usize; out.numel()];
        max_pool2d_forward(x.data(), &g, &mut y, &mut arg);
        drop(x); // the VJP needs only the argmax, not the input
        let held = [Held::bytes(std::mem::size_of_val(&arg[..]))];
        let arg: Rc<[usize]> = arg.into();
        self.tape().try_record_graph(
            "max_pool2d",
            &[self],
            Tensor::from_vec(y, out),
            &held,
            move |a| {
                let arg = Argmax::Stored(arg.clone());
                [Some(scatter_to_max(a.g(), &g, &arg, &in_shape))].into()
            },
        )
    }

    /// [`Var::try_max_pool2d`], panicking on a bad shape or option.
    ///
    /// # Panics
    /// With the message of [`Var::try_max_pool2d`]'s error.
    #[track_caller]
    pub fn max_pool2d(self, opts: impl Into<PoolOptions>) -> Var<'t, T> {
        self.try_max_pool2d(opts).or_panic()
    }
}

/// Where each window's maximum is: found again from the input and the output (windows
/// that tile the input keep no argmax), or stored per output cell by the forward pass.
enum Argmax<'s, T: Float> {
    Tiled(Var<'s, T>, Var<'s, T>),
    Stored(Rc<[usize]>),
}

impl<'s, T: Float> Argmax<'s, T> {
    /// The per-plane argmax, computed for the tiled case.
    fn indices(&self, g: &PoolGeom) -> Rc<[usize]> {
        match self {
            Argmax::Stored(a) => a.clone(),
            Argmax::Tiled(x, y) => {
                let n = y.shape().numel();
                let (mut m, mut arg) = (vec![T::ZERO; n], vec![0usize; n]);
                x.with_value(|x| max_pool2d_forward(x.data(), g, &mut m, &mut arg));
                arg.into()
            }
        }
    }
}

/// Max-pooling's VJP, an op of its own: each `gy` added at its window's maximum. Linear in
/// `gy` (its adjoint reads `gg` back at the maxima, [`gather_at_max`]); zero derivative in
/// the input almost everywhere.
fn scatter_to_max<'s, T: Float>(
    gy: Var<'s, T>,
    g: &PoolGeom,
    arg: &Argmax<'s, T>,
    in_shape: &Shape,
) -> Var<'s, T> {
    let mut gx = crate::runtime::buffers::zeroed(in_shape.numel());
    gy.with_value(|gy| match arg {
        Argmax::Tiled(x, y) => x.with_value(|x| {
            y.with_value(|y| max_pool2d_tiled_backward(x.data(), y.data(), gy.data(), g, &mut gx))
        }),
        Argmax::Stored(a) => max_pool2d_backward(gy.data(), a, g, &mut gx),
    });
    let (g, stored, with_xy, without) = match arg {
        Argmax::Stored(a) => (*g, Some(a.clone()), [gy; 3], [gy]),
        Argmax::Tiled(x, y) => (*g, None, [gy, *x, *y], [gy]),
    };
    let inputs: &[Var<'s, T>] = if stored.is_some() { &without } else { &with_xy };
    gy.tape().record_differentiable(
        "max_pool2d_backward",
        inputs,
        Tensor::from_vec(gx, in_shape.clone()),
        move |a| {
            let dg = a.then(0, || {
                let arg = match &stored {
                    Some(arg) => arg.clone(),
                    None => Argmax::Tiled(a.input(1), a.input(2)).indices(&g),
                };
                gather_at_max(a.g(), &g, arg)
            });
            // No gradient for x and y (zero almost everywhere).
            [dg, None, None]
                .into_iter()
                .take(a.inputs().len())
                .collect()
        },
    )
}

/// `gx` read back at each window's maximum: the adjoint of [`scatter_to_max`], and linear.
fn gather_at_max<'s, T: Float>(gx: Var<'s, T>, g: &PoolGeom, arg: Rc<[usize]>) -> Var<'s, T> {
    let (ip, op) = (g.in_plane(), g.out_plane());
    let mut gy = vec![T::ZERO; g.planes * op];
    gx.with_value(|gx| {
        for (p, (gyp, ap)) in gy
            .chunks_exact_mut(op.max(1))
            .zip(arg.chunks_exact(op.max(1)))
            .enumerate()
        {
            for (v, &i) in gyp.iter_mut().zip(ap) {
                if i != NO_ARGMAX {
                    *v = gx.data()[p * ip + i];
                }
            }
        }
    });
    let shape = Shape::from([gx.shape()[0], gx.shape()[1], g.oh, g.ow]);
    let in_shape = gx.shape();
    let g = *g;
    gx.tape().record_differentiable(
        "max_pool2d_gather",
        &[gx],
        Tensor::from_vec(gy, shape),
        move |a| {
            let arg = Argmax::<T>::Stored(arg.clone());
            [Some(scatter_to_max(a.g(), &g, &arg, &in_shape))].into()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    /// Distinct values: a random permutation of 0..n scaled by 0.1, plus noise far below
    /// that spacing, so no window holds two values within eps of each other.
    fn distinct(shape: [usize; 4], seed: u64) -> Tensor<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut rng);
        let noise = Tensor::<f64>::randn([n], &mut rng);
        let v = perm
            .iter()
            .zip(noise.data())
            .map(|(&p, e)| 0.1 * p as f64 - 0.05 * n as f64 * 0.1 + 0.001 * e)
            .collect();
        Tensor::from_vec(v, shape)
    }

    fn configs() -> Vec<([usize; 4], PoolOptions, [usize; 2])> {
        // (input shape, options, expected output H x W, worked out by hand)
        vec![
            ([1, 1, 4, 4], PoolOptions::new(2), [2, 2]),
            // H: (7-2)/2 = 2 -> 3; W: (5-2)/2 = 1 -> 2
            ([2, 3, 7, 5], PoolOptions::new(2), [3, 2]),
            // stride defaults to 3: H (7-3)/3 = 1 -> 2; W (5-3)/3 = 0 -> 1
            ([1, 1, 7, 5], PoolOptions::new(3), [2, 1]),
            // overlapping: (7-3)/1 + 1 = 5, (5-3)/1 + 1 = 3
            ([2, 1, 7, 5], PoolOptions::new(3).stride(1), [5, 3]),
            // kernel (3, 2), stride (3, 2): H 2, W 2
            ([1, 3, 7, 5], PoolOptions::new((3, 2)), [2, 2]),
            // kernel (1, 3), stride (2, 1): H (7-1)/2 + 1 = 4, W (5-3)/1 + 1 = 3
            (
                [1, 1, 7, 5],
                PoolOptions::new((1, 3)).stride((2, 1)),
                [4, 3],
            ),
            // padding 1: H (7+2-3)/2 + 1 = 4, W (5+2-3)/2 + 1 = 3
            (
                [2, 1, 7, 5],
                PoolOptions::new(3).stride(2).padding(1),
                [4, 3],
            ),
            // padding (1, 0): H 4, W (5-3)/2 + 1 = 2
            (
                [1, 3, 7, 5],
                PoolOptions::new(3).stride(2).padding((1, 0)),
                [4, 2],
            ),
            // ceil: H ceil(5/2) + 1 = 4 (6 < 7 keeps it), W ceil(3/2) + 1 = 3 (4 < 5): floor
            // mode would give 3x2
            ([1, 1, 7, 5], PoolOptions::new(2).ceil_mode(true), [4, 3]),
            // ceil with padding: H (8+2-3) = 7 -> ceil 4 + 1 = 5 (8 < 9), floor 4;
            // W (6+2-3) = 5 -> 3 + 1 = 4 (6 < 7), floor 3
            (
                [2, 1, 8, 6],
                PoolOptions::new(3).stride(2).padding(1).ceil_mode(true),
                [5, 4],
            ),
            // ceil, stride 3: H (7-3) = 4 -> ceil 2 + 1 = 3 (6 < 7), floor 2;
            // W (5-3) = 2 -> 1 + 1 = 2 (3 < 5), floor 1
            ([1, 3, 7, 5], PoolOptions::new(3).ceil_mode(true), [3, 2]),
            // dilation 2 (extent 3), stride 1: H 7-3+1 = 5, W 5-3+1 = 3
            (
                [1, 1, 7, 5],
                PoolOptions::new(2).dilation(2).stride(1),
                [5, 3],
            ),
            // dilation 2 with padding: extent 5; H (7+2-5)/2 + 1 = 3, W (5+2-5)/2 + 1 = 2
            (
                [2, 1, 7, 5],
                PoolOptions::new(3).dilation(2).padding(1).stride(2),
                [3, 2],
            ),
            // dilation (2, 1), ceil: H extent 3, (7-3) = 4 -> 2 + 1 = 3; W (5-2) = 3 ->
            // ceil 2 + 1 = 3 (4 < 5), floor 2
            (
                [1, 1, 7, 5],
                PoolOptions::new(2).dilation((2, 1)).ceil_mode(true),
                [3, 3],
            ),
            // stride (2, 1), kernel 2: H (5-2)/2 + 1 = 2, W (4-2)/1 + 1 = 3
            ([2, 3, 5, 4], PoolOptions::new(2).stride((2, 1)), [2, 3]),
            // kernel (3, 2), stride 1, padding 1: H 7+2-3+1 = 7, W 5+2-2+1 = 6
            (
                [1, 1, 7, 5],
                PoolOptions::new((3, 2)).stride(1).padding(1),
                [7, 6],
            ),
            // kernel (1, 3), stride 1, padding (0, 1): same size 7x5
            (
                [2, 1, 7, 5],
                PoolOptions::new((1, 3)).stride(1).padding((0, 1)),
                [7, 5],
            ),
            // kernel 2, stride 1, padding 1 on 3x3: 4x4, corner windows mostly padding
            (
                [2, 3, 3, 3],
                PoolOptions::new(2).stride(1).padding(1),
                [4, 4],
            ),
        ]
    }

    #[test]
    fn gradcheck_across_configurations() {
        let mut worst: f64 = 0.0;
        let cfgs = configs();
        for (i, &(shape, opts, out)) in cfgs.iter().enumerate() {
            let x = distinct(shape, i as u64);
            let tape = Tape::<f64>::new();
            let y = tape.input(x.clone()).max_pool2d(opts);
            assert_eq!(y.shape(), [shape[0], shape[1], out[0], out[1]], "{opts:?}");
            match gradcheck(|v| v[0].max_pool2d(opts), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("config {i} {shape:?} {opts:?}: {e}"),
            }
        }
        assert!(cfgs.len() >= 15);
        println!(
            "max_pool2d gradcheck: {} configs, worst |error| {worst:.3e}",
            cfgs.len()
        );
    }

    #[test]
    fn forward_4x4_known_values_f32() {
        let tape = Tape::<f32>::new();
        #[rustfmt::skip]
        let x = tape.param(Tensor::from_vec(vec![
            1.0, 5.0, 2.0, 0.0,
            3.0, 4.0, 8.0, 6.0,
            7.0, 9.0, 1.0, 2.0,
            0.0, 3.0, 5.0, 4.0,
        ], [1, 1, 4, 4]));
        let y = x.max_pool2d(2);
        assert_eq!(y.shape(), [1, 1, 2, 2]);
        assert_eq!(y.value().to_vec(), vec![5.0, 8.0, 9.0, 5.0]);
        let g = tape.backward(y.sum());
        #[rustfmt::skip]
        assert_eq!(g[x].to_vec(), vec![
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 1.0, 0.0,
        ]);
    }

    #[test]
    fn ties_route_to_the_first_maximum() {
        let tape = Tape::<f64>::new();
        // One 2x2 window with 3 twice (row-major positions 1 and 2), and one all-equal window.
        let x = tape.param(Tensor::from_vec(
            vec![1.0, 3.0, 7.0, 7.0, 3.0, 2.0, 7.0, 7.0],
            [1, 1, 2, 4],
        ));
        let y = x.max_pool2d(2);
        assert_eq!(y.value().to_vec(), vec![3.0, 7.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn padding_never_wins() {
        let tape = Tape::<f64>::new();
        // 2x2 input, all negative; kernel 2, stride 2, padding 1: four windows, each one
        // real corner cell and three padded cells. Zero padding would give 0 everywhere.
        let x = tape.param(Tensor::from_vec(vec![-1.0, -2.0, -3.0, -4.0], [1, 1, 2, 2]));
        let y = x.max_pool2d(PoolOptions::new(2).padding(1));
        assert_eq!(y.shape(), [1, 1, 2, 2]);
        assert_eq!(y.value().to_vec(), vec![-1.0, -2.0, -3.0, -4.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![1.0; 4]);
    }

    #[test]
    fn overlapping_windows_accumulate() {
        let tape = Tape::<f64>::new();
        // 3x3 with the centre the maximum: all four 2x2 windows (stride 1) pick it.
        let x = tape.param(Tensor::from_vec(
            vec![1.0, 2.0, 3.0, 4.0, 9.0, 5.0, 6.0, 7.0, 8.0],
            [1, 1, 3, 3],
        ));
        let y = x.max_pool2d(PoolOptions::new(2).stride(1));
        assert_eq!(y.value().to_vec(), vec![9.0; 4]);
        let g = tape.backward(y.sum());
        assert_eq!(
            g[x].to_vec(),
            vec![0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn nan_propagates_and_takes_the_gradient() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(
            vec![1.0, f32::NAN, 5.0, f32::NAN],
            [1, 1, 1, 4],
        ));
        let y = x.max_pool2d((1, 4));
        assert!(y.value().item().is_nan());
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![0.0, 1.0, 0.0, 0.0], "the first NaN");
    }

    #[test]
    fn window_wholly_in_padding_gives_minus_infinity_and_no_gradient() {
        // H = 2, kernel (2, 1), dilation (3, 1), padding (1, 0): the single window's taps are
        // at rows -1 and 2, both padding. PyTorch gives -inf too.
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [1, 1, 2, 1]));
        let y = x.max_pool2d(PoolOptions::new((2, 1)).dilation((3, 1)).padding((1, 0)));
        assert_eq!(y.value().to_vec(), vec![f64::NEG_INFINITY]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn ceil_mode_output_sizes() {
        // (H, k, s, p, d, floor size, ceil size), each worked out by hand:
        let cases = [
            // (7-2)/2 = 2.5: floor 3, ceil 4; last ceil window starts at 6 < 7 + 0, kept.
            (7, 2, 2, 0, 1, 3, 4),
            // (5+2-2)/2 = 2.5: floor 3, ceil 4, but that window would start at 6 >= 5 + 1
            // (wholly in the right padding), so ceil gives 3.
            (5, 2, 2, 1, 1, 3, 3),
            // (6+2-3)/2 = 2.5: floor 3, ceil 4; start 6 < 7, kept.
            (6, 3, 2, 1, 1, 3, 4),
            // (4-2)/3 = 0.67: floor 1, ceil 2; start 3 < 4, kept.
            (4, 2, 3, 0, 1, 1, 2),
            // (4+2-3)/3 = 1 exactly: both 2.
            (4, 3, 3, 1, 1, 2, 2),
            // (3+2-2)/2 = 1.5: floor 2, ceil 3, but start 4 >= 3 + 1: ceil gives 2.
            (3, 2, 2, 1, 1, 2, 2),
            // (10-3)/4 = 1.75: floor 2, ceil 3; start 8 < 10, kept.
            (10, 3, 4, 0, 1, 2, 3),
            // dilation 2, extent 5: (8-5)/2 = 1.5: floor 2, ceil 3; start 4 < 8, kept.
            (8, 3, 2, 0, 2, 2, 3),
        ];
        for (h, k, s, p, d, floor, ceil) in cases {
            assert_eq!(
                output_len(h, k, s, p, d, false).unwrap(),
                floor,
                "H {h} k {k} s {s} p {p}"
            );
            assert_eq!(
                output_len(h, k, s, p, d, true).unwrap(),
                ceil,
                "H {h} k {k} s {s} p {p}"
            );
            let tape = Tape::<f32>::new();
            let x = tape.input(Tensor::zeros([1, 1, h, 1]));
            for (ceil_mode, want) in [(false, floor), (true, ceil)] {
                let o = PoolOptions::new((k, 1))
                    .stride((s, 1))
                    .padding((p, 0))
                    .dilation((d, 1))
                    .ceil_mode(ceil_mode);
                assert_eq!(x.max_pool2d(o).shape(), [1, 1, want, 1]);
            }
        }
    }

    #[test]
    fn options_and_conversions() {
        let o = PoolOptions::new(3);
        assert_eq!(
            (o.kernel, o.stride, o.padding, o.dilation),
            (Pair(3, 3), Pair(3, 3), Pair(0, 0), Pair(1, 1))
        );
        assert!(!o.ceil_mode && o.count_include_pad);
        assert_eq!(PoolOptions::from(2), PoolOptions::new(2));
        let o = PoolOptions::from((3, 2));
        assert_eq!((o.kernel, o.stride), (Pair(3, 2), Pair(3, 2)));
        let o = PoolOptions::new(3)
            .stride((1, 2))
            .padding(1)
            .dilation([2, 1]);
        assert_eq!(
            (o.stride, o.padding, o.dilation),
            (Pair(1, 2), Pair(1, 1), Pair(2, 1))
        );
    }

    #[test]
    fn inference_tape_and_empty_batch() {
        let tape = Tape::<f32>::inference();
        let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]));
        assert_eq!(x.max_pool2d(2).value().to_vec(), vec![4.0]);
        let e = tape.input(Tensor::zeros([0, 3, 4, 4]));
        assert_eq!(e.max_pool2d(2).shape(), [0, 3, 2, 2]);
    }

    fn err(shape: &[usize], opts: PoolOptions) -> String {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros(shape));
        let e = x.try_max_pool2d(opts).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("(called at src/ops/max_pool2d.rs:"), "{s}");
        s
    }

    #[test]
    fn error_sizes_past_i64() {
        // Found by tests/properties.rs: kernel usize::MAX made output_size's i64 arithmetic
        // overflow (a panic) instead of an error.
        let s = err(
            &[1, 1, 1, 1],
            PoolOptions::new(usize::MAX)
                .stride((usize::MAX, 1))
                .dilation((1, 2)),
        );
        assert!(
            s.starts_with(
                "max_pool2d: the height axis is too large to pool: padded input 1, window extent \
                 18446744073709551615 (kernel 18446744073709551615, dilation 1), stride \
                 18446744073709551615; each must be at most 4611686018427387903"
            ),
            "{s}"
        );
        let s = err(
            &[1, 1, 3, 3],
            PoolOptions::new((3, 1 << 62)).padding((1, 1 << 61)),
        );
        assert!(
            s.contains("the width axis is too large to pool: padded input "),
            "{s}"
        );
        // Average pooling shares the check.
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::zeros([1, 1, 2, 2]));
        let e = x.try_avg_pool2d(PoolOptions::new(usize::MAX)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("avg_pool2d: the height axis is too large"),
            "{e}"
        );
    }

    #[test]
    fn error_zero_kernel() {
        let s = err(&[1, 1, 4, 4], PoolOptions::new((0, 2)));
        assert!(
            s.starts_with("max_pool2d: kernel (0, 2) must be positive in both axes"),
            "{s}"
        );
    }

    #[test]
    fn error_zero_stride() {
        let s = err(&[1, 1, 4, 4], PoolOptions::new(2).stride((1, 0)));
        assert!(
            s.starts_with("max_pool2d: stride (1, 0) must be positive in both axes"),
            "{s}"
        );
    }

    #[test]
    fn error_zero_dilation() {
        let s = err(&[1, 1, 4, 4], PoolOptions::new(2).dilation(0));
        assert!(
            s.starts_with("max_pool2d: dilation (0, 0) must be positive in both axes"),
            "{s}"
        );
    }

    #[test]
    fn error_padding_over_half_the_kernel() {
        let s = err(&[1, 1, 8, 8], PoolOptions::new((3, 4)).padding((2, 1)));
        assert!(
            s.starts_with(
                "max_pool2d: padding (2, 1) must be at most half the kernel (3, 4) in each \
                 axis, here at most (1, 2)"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_not_4d() {
        let s = err(&[1, 4, 4], PoolOptions::new(2));
        assert!(
            s.starts_with(
                "max_pool2d: shape [1, 4, 4] refused: expected a 4-D input [N, C, H, W], got rank 3"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_empty_plane() {
        let s = err(&[1, 1, 0, 4], PoolOptions::new(2).padding(1));
        assert!(
            s.starts_with(
                "max_pool2d: shape [1, 1, 0, 4] refused: the height and width must be non-zero"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_output_too_small() {
        // Dilation 2 makes the 3-kernel span 5 rows; 3 + 2·1 = 5 fits, 2 + 2 = 4 does not.
        let s = err(
            &[1, 1, 2, 6],
            PoolOptions::new(3).dilation((2, 1)).padding(1),
        );
        assert!(
            s.starts_with(
                "max_pool2d: shape [1, 1, 2, 6] refused: the output would be 0x2, expected at \
                 least 1x1: the padded input 4x8 must be at least the window's extent 5x3 in \
                 each axis (kernel (3, 3), dilation (2, 1), padding (1, 1))"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "max_pool2d: stride (0, 0) must be positive in both axes")]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([1, 1, 4, 4]))
            .max_pool2d(PoolOptions::new(2).stride(0));
    }
}
