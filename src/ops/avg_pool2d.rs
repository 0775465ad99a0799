//! 2-D average pooling over NCHW input.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::pool::{PoolGeom, avg_pool2d_backward, avg_pool2d_forward};
use crate::ops::Pair;
use crate::ops::max_pool2d::{PoolOptions, pool_geom};
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// 2-D average pooling of an NCHW input `[N, C, H, W]`, as PyTorch's `F.avg_pool2d`;
    /// `opts` is a [`PoolOptions`] or just a kernel size (`2`, `(3, 2)`). Dilation must be 1.
    ///
    /// Forward: `y[n, c, i, j] = (1 / D) Σ x[n, c, r, s]` over the real input cells `(r, s)`
    /// of window `(i, j)` (rows `i·sh − ph .. i·sh − ph + kh`, likewise columns; the padding
    /// adds zeros). The divisor `D` is as in PyTorch: with `count_include_pad` the window's
    /// size once clipped to the padded input (`min(start + k, H + p) − start` per axis, so
    /// padding counts but a ceil-mode window's overhang past the padding does not);
    /// without it, the number of real cells. Output `[N, C, OH, OW]` sized as for
    /// [`Var::max_pool2d`] with dilation 1.
    ///
    /// VJP: `∂L/∂x[n, c, r, s] = Σ g[n, c, i, j] / D(i, j)` over the windows `(i, j)` that
    /// hold `(r, s)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::ops::max_pool2d::PoolOptions;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]));
    /// assert_eq!(x.avg_pool2d(2).value().to_vec(), vec![2.5]);
    /// // Padding 1, stride 2: four windows of one real cell each, divided by 4 or by 1.
    /// let pad = PoolOptions::new(2).padding(1);
    /// assert_eq!(x.avg_pool2d(pad).value().to_vec(), vec![0.25, 0.5, 0.75, 1.0]);
    /// let y = x.avg_pool2d(pad.count_include_pad(false));
    /// assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(tape.backward(x.avg_pool2d(2).sum())[x].to_vec(), vec![0.25; 4]);
    /// ```
    #[track_caller]
    pub fn try_avg_pool2d(self, opts: impl Into<PoolOptions>) -> Result<Var<'t, T>, Error> {
        let opts = opts.into();
        if opts.dilation != Pair(1, 1) {
            return Err(Error::bad_argument(
                "avg_pool2d",
                format!(
                    "dilation ({}, {}) is not supported: average pooling takes dilation 1",
                    opts.dilation.0, opts.dilation.1
                ),
            ));
        }
        let x = self.value();
        let (g, out) = pool_geom("avg_pool2d", x.shape(), &opts)?;
        let cip = opts.count_include_pad;
        let mut y = crate::runtime::buffers::zeroed(out.numel());
        avg_pool2d_forward(x.data(), &g, cip, &mut y);
        let in_shape = x.shape().clone();
        drop(x); // the VJP needs only the geometry
        self.tape().try_record_differentiable(
            "avg_pool2d",
            &[self],
            Tensor::from_vec(y, out),
            move |a| [Some(avg_pool2d_adjoint(a.g(), &g, cip, &in_shape, opts))].into(),
        )
    }

    /// [`Var::try_avg_pool2d`], panicking on a bad shape or option.
    ///
    /// # Panics
    /// With the message of [`Var::try_avg_pool2d`]'s error.
    #[track_caller]
    pub fn avg_pool2d(self, opts: impl Into<PoolOptions>) -> Var<'t, T> {
        self.try_avg_pool2d(opts).or_panic()
    }
}

/// The VJP of average pooling, an op of its own: each `gy` spread evenly over its window's
/// inputs. Linear in `gy`, and its own adjoint is the pooling again.
fn avg_pool2d_adjoint<'s, T: Float>(
    gy: Var<'s, T>,
    g: &PoolGeom,
    cip: bool,
    in_shape: &Shape,
    opts: PoolOptions,
) -> Var<'s, T> {
    let mut gx = crate::runtime::buffers::zeroed(in_shape.numel());
    gy.with_value(|v| avg_pool2d_backward(v.data(), g, cip, &mut gx));
    let gx = Tensor::from_vec(gx, in_shape.clone());
    gy.tape()
        .record_differentiable("avg_pool2d_backward", &[gy], gx, move |a| {
            [Some(a.g().avg_pool2d(opts))].into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use rand::SeedableRng;

    fn configs() -> Vec<([usize; 4], PoolOptions, [usize; 2])> {
        // (input shape, options, expected output H x W, worked out by hand)
        vec![
            ([1, 1, 4, 4], PoolOptions::new(2), [2, 2]),
            // H (7-2)/2 + 1 = 3, W (5-2)/2 + 1 = 2
            ([2, 3, 7, 5], PoolOptions::new(2), [3, 2]),
            // stride 3: H 2, W 1
            ([1, 1, 7, 5], PoolOptions::new(3), [2, 1]),
            // overlapping, stride 1: 5x3
            ([2, 1, 7, 5], PoolOptions::new(3).stride(1), [5, 3]),
            // kernel (3, 2): 2x2
            ([1, 3, 7, 5], PoolOptions::new((3, 2)), [2, 2]),
            // kernel (1, 3), stride (2, 1): 4x3
            (
                [1, 1, 7, 5],
                PoolOptions::new((1, 3)).stride((2, 1)),
                [4, 3],
            ),
            // padding 1, counted: H (7+2-3)/2 + 1 = 4, W (5+2-3)/2 + 1 = 3
            (
                [2, 1, 7, 5],
                PoolOptions::new(3).stride(2).padding(1),
                [4, 3],
            ),
            // padding 1, not counted
            (
                [1, 3, 7, 5],
                PoolOptions::new(3)
                    .stride(2)
                    .padding(1)
                    .count_include_pad(false),
                [4, 3],
            ),
            // padding (1, 0): H 4, W 2
            (
                [2, 1, 7, 5],
                PoolOptions::new(3).stride(2).padding((1, 0)),
                [4, 2],
            ),
            // ceil: H 4 (floor 3), W 3 (floor 2); the last windows are clipped
            ([1, 1, 7, 5], PoolOptions::new(2).ceil_mode(true), [4, 3]),
            // ceil with padding, counted: H (8+2-3) = 7 -> 5 (floor 4); W (6+2-3) = 5 -> 4
            // (floor 3): the last windows run one past the padded input
            (
                [2, 1, 8, 6],
                PoolOptions::new(3).stride(2).padding(1).ceil_mode(true),
                [5, 4],
            ),
            // the same, padding not counted
            (
                [1, 3, 8, 6],
                PoolOptions::new(3)
                    .stride(2)
                    .padding(1)
                    .ceil_mode(true)
                    .count_include_pad(false),
                [5, 4],
            ),
            // ceil, stride 3: H 3 (floor 2), W 2 (floor 1)
            ([1, 1, 7, 5], PoolOptions::new(3).ceil_mode(true), [3, 2]),
            // stride (2, 1), kernel 2: 2x3
            ([2, 3, 5, 4], PoolOptions::new(2).stride((2, 1)), [2, 3]),
            // kernel (3, 2), stride 1, padding 1: 7x6
            (
                [1, 1, 7, 5],
                PoolOptions::new((3, 2)).stride(1).padding(1),
                [7, 6],
            ),
            // kernel (1, 3), stride 1, padding (0, 1), not counted: 7x5
            (
                [2, 1, 7, 5],
                PoolOptions::new((1, 3))
                    .stride(1)
                    .padding((0, 1))
                    .count_include_pad(false),
                [7, 5],
            ),
            // kernel 2, stride 1, padding 1 on 3x3: 4x4
            (
                [2, 3, 3, 3],
                PoolOptions::new(2).stride(1).padding(1),
                [4, 4],
            ),
            // the same, not counted, ceil mode (no change: (3+2-2)/1 is exact)
            (
                [1, 1, 3, 3],
                PoolOptions::new(2)
                    .stride(1)
                    .padding(1)
                    .ceil_mode(true)
                    .count_include_pad(false),
                [4, 4],
            ),
        ]
    }

    #[test]
    fn gradcheck_across_configurations() {
        let mut worst: f64 = 0.0;
        let cfgs = configs();
        for (i, &(shape, opts, out)) in cfgs.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let x = Tensor::<f64>::randn(shape, &mut rng);
            let tape = Tape::<f64>::new();
            let y = tape.input(x.clone()).avg_pool2d(opts);
            assert_eq!(y.shape(), [shape[0], shape[1], out[0], out[1]], "{opts:?}");
            match gradcheck(|v| v[0].avg_pool2d(opts), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("config {i} {shape:?} {opts:?}: {e}"),
            }
        }
        assert!(cfgs.len() >= 15);
        println!(
            "avg_pool2d gradcheck: {} configs, worst |error| {worst:.3e}",
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
        let y = x.avg_pool2d(2);
        // (1+5+3+4)/4, (2+0+8+6)/4, (7+9+0+3)/4, (1+2+5+4)/4
        assert_eq!(y.value().to_vec(), vec![3.25, 4.0, 4.75, 3.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![0.25; 16]);
    }

    #[test]
    fn divisor_with_padding_both_ways() {
        let tape = Tape::<f64>::new();
        // 1..9 in a 3x3, kernel 3, stride 1, padding 1: a 3x3 output.
        let x = tape.param(Tensor::from_vec(
            (1..=9).map(f64::from).collect(),
            [1, 1, 3, 3],
        ));
        let o = PoolOptions::new(3).stride(1).padding(1);
        // Window sums: corners 1+2+4+5 = 12, 2+3+5+6 = 16, 4+5+7+8 = 24, 5+6+8+9 = 28;
        // edges 1+..+6 = 21, 1+2+4+5+7+8 = 27, 2+3+5+6+8+9 = 33, 4+..+9 = 39; centre 45.
        let sums = [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0];
        // count_include_pad: every window is a full 3x3 of the padded input, divisor 9.
        let y = x.avg_pool2d(o).value().to_vec();
        for (a, s) in y.iter().zip(sums) {
            assert!((a - s / 9.0).abs() < 1e-12, "{y:?}");
        }
        // Real cells only: corners 4, edges 6, centre 9.
        let y = x.avg_pool2d(o.count_include_pad(false)).value().to_vec();
        assert_eq!(y, vec![3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0]);
        // Backward with the real-cell divisors: the corner x[0,0] lies in windows
        // (0,0), (0,1), (1,0), (1,1) with divisors 4, 6, 6, 9.
        let g = tape.backward(x.avg_pool2d(o.count_include_pad(false)).sum());
        let want = 1.0 / 4.0 + 2.0 / 6.0 + 1.0 / 9.0;
        assert!((g[x].to_vec()[0] - want).abs() < 1e-12);
    }

    #[test]
    fn ceil_mode_window_is_clipped_to_the_padded_input() {
        let tape = Tape::<f64>::new();
        // One row 1..6, kernel (1, 3), stride (1, 2), padding (0, 1), ceil mode:
        // W: (6+2-3)/2 = 2.5 -> ceil 3 + 1 = 4 (last start 6 < 6 + 1 kept; floor gives 3).
        // Windows in input columns: [-1, 2), [1, 4), [3, 6), [5, 8) clipped to the padded
        // input [-1, 7) as [5, 7): padded sizes 3, 3, 3, 2; real cells 2, 3, 3, 1.
        // Sums 1+2 = 3, 2+3+4 = 9, 4+5+6 = 15, 6.
        let x = tape.param(Tensor::from_vec(
            (1..=6).map(f64::from).collect(),
            [1, 1, 1, 6],
        ));
        let o = PoolOptions::new((1, 3))
            .stride((1, 2))
            .padding((0, 1))
            .ceil_mode(true);
        assert_eq!(x.avg_pool2d(o).value().to_vec(), vec![1.0, 3.0, 5.0, 3.0]);
        let y = x.avg_pool2d(o.count_include_pad(false));
        assert_eq!(y.value().to_vec(), vec![1.5, 3.0, 5.0, 6.0]);
        // Backward (real-cell divisors 2, 3, 3, 1): column 5 (value 6) is in windows 2 and 3.
        let g = tape.backward(y.sum());
        let want = [
            0.5,
            0.5 + 1.0 / 3.0,
            1.0 / 3.0,
            2.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0 + 1.0,
        ];
        for (a, b) in g[x].to_vec().iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{:?}", g[x].to_vec());
        }
        // Without padding the overhang is past the input itself: kernel 2, stride 2 on 5
        // columns, ceil: (5-2)/2 = 1.5 -> 3 windows, the last [4, 6) holds one cell and
        // divides by 1 either way.
        let x = tape.input(Tensor::from_vec(
            (1..=5).map(f64::from).collect(),
            [1, 1, 1, 5],
        ));
        let o = PoolOptions::new((1, 2)).ceil_mode(true);
        assert_eq!(x.avg_pool2d(o).value().to_vec(), vec![1.5, 3.5, 5.0]);
        let y = x.avg_pool2d(o.count_include_pad(false)).value().to_vec();
        assert_eq!(y, vec![1.5, 3.5, 5.0]);
    }

    fn err(shape: &[usize], opts: PoolOptions) -> String {
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::zeros(shape));
        let e = x.try_avg_pool2d(opts).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("(called at src/ops/avg_pool2d.rs:"), "{s}");
        s
    }

    #[test]
    fn error_dilation() {
        let s = err(&[1, 1, 4, 4], PoolOptions::new(2).dilation((1, 2)));
        assert!(
            s.starts_with(
                "avg_pool2d: dilation (1, 2) is not supported: average pooling takes dilation 1"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_zero_kernel_and_stride() {
        let s = err(&[1, 1, 4, 4], PoolOptions::new(0));
        assert!(
            s.starts_with("avg_pool2d: kernel (0, 0) must be positive in both axes"),
            "{s}"
        );
        let s = err(&[1, 1, 4, 4], PoolOptions::new(2).stride((0, 1)));
        assert!(
            s.starts_with("avg_pool2d: stride (0, 1) must be positive in both axes"),
            "{s}"
        );
    }

    #[test]
    fn error_padding_over_half_the_kernel() {
        let s = err(&[1, 1, 8, 8], PoolOptions::new(2).padding((0, 2)));
        assert!(
            s.starts_with(
                "avg_pool2d: padding (0, 2) must be at most half the kernel (2, 2) in each \
                 axis, here at most (1, 1)"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_not_4d() {
        let s = err(&[16], PoolOptions::new(2));
        assert!(
            s.starts_with(
                "avg_pool2d: shape [16] refused: expected a 4-D input [N, C, H, W], got rank 1"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_empty_plane() {
        let s = err(&[2, 3, 4, 0], PoolOptions::new(1));
        assert!(
            s.starts_with(
                "avg_pool2d: shape [2, 3, 4, 0] refused: the height and width must be non-zero"
            ),
            "{s}"
        );
    }

    #[test]
    fn error_output_too_small() {
        let s = err(&[1, 1, 3, 2], PoolOptions::new(3));
        assert!(
            s.starts_with(
                "avg_pool2d: shape [1, 1, 3, 2] refused: the output would be 1x0, expected at \
                 least 1x1: the padded input 3x2 must be at least the window's extent 3x3 in \
                 each axis (kernel (3, 3), dilation (1, 1), padding (0, 0))"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "avg_pool2d: dilation (2, 2) is not supported")]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([1, 1, 4, 4]))
            .avg_pool2d(PoolOptions::new(2).dilation(2));
    }
}
