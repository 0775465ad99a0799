//! Softmax along one axis, and the lane loops that log_softmax and cross_entropy share.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;

/// Views `shape` as `[outer, n, inner]` around `axis`: `outer` blocks, each `n` rows of
/// `inner` contiguous elements. A lane (the values softmax normalises together) is one
/// column of one block: `n` elements `inner` apart.
pub(crate) fn lanes(shape: &Shape, axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Softmax (or, with `log`, log-softmax) of every lane of `x`, laid out as [`lanes`] says.
///
/// Each lane's maximum is subtracted before exponentiating, so no `exp` overflows and the
/// largest term is exactly 1: the sum lies in `[1, n]` and its logarithm is finite. The
/// loops run over whole rows of `inner` elements at a time so memory is read in order.
pub(crate) fn softmax_lanes<T: Float>(
    x: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    log: bool,
) -> Vec<T> {
    let mut y = crate::runtime::buffers::zeroed(x.len());
    if x.is_empty() {
        return y; // `inner` may be 0, which chunks_exact refuses
    }
    let mut m = vec![T::NEG_INFINITY; inner];
    let mut s = crate::runtime::buffers::zeroed(inner);
    let block = n * inner;
    for o in 0..outer {
        let xb = &x[o * block..(o + 1) * block];
        let yb = &mut y[o * block..(o + 1) * block];
        m.fill(T::NEG_INFINITY);
        s.fill(T::ZERO);
        for row in xb.chunks_exact(inner) {
            for (mi, &v) in m.iter_mut().zip(row) {
                // A NaN is taken as the maximum, so it propagates to its whole lane.
                if v > *mi || v.is_nan() {
                    *mi = v;
                }
            }
        }
        for (xr, yr) in xb.chunks_exact(inner).zip(yb.chunks_exact_mut(inner)) {
            for i in 0..inner {
                let e = (xr[i] - m[i]).exp();
                s[i] += e;
                yr[i] = e;
            }
        }
        if log {
            // log_softmax = (x − m) − ln Σ exp(x − m); recomputing x − m avoids ln(e).
            for v in s.iter_mut() {
                *v = v.ln();
            }
            for (xr, yr) in xb.chunks_exact(inner).zip(yb.chunks_exact_mut(inner)) {
                for i in 0..inner {
                    yr[i] = (xr[i] - m[i]) - s[i];
                }
            }
        } else {
            for yr in yb.chunks_exact_mut(inner) {
                for (yi, &si) in yr.iter_mut().zip(s.iter()) {
                    *yi /= si;
                }
            }
        }
    }
    y
}

/// The VJP of [`softmax_lanes`] given its output `y` and the upstream gradient `g`:
/// softmax `y ⊙ (g − Σ_lane g ⊙ y)`, log-softmax `g − exp(y) ⊙ Σ_lane g`.
pub(crate) fn softmax_lanes_backward<T: Float>(
    y: &[T],
    g: &[T],
    outer: usize,
    n: usize,
    inner: usize,
    log: bool,
) -> Vec<T> {
    let mut gx = crate::runtime::buffers::zeroed(y.len());
    if y.is_empty() {
        return gx;
    }
    let mut s = crate::runtime::buffers::zeroed(inner);
    let block = n * inner;
    for o in 0..outer {
        let r = o * block..(o + 1) * block;
        let (yb, gb, gxb) = (&y[r.clone()], &g[r.clone()], &mut gx[r]);
        s.fill(T::ZERO);
        for (yr, gr) in yb.chunks_exact(inner).zip(gb.chunks_exact(inner)) {
            for i in 0..inner {
                s[i] += if log { gr[i] } else { gr[i] * yr[i] };
            }
        }
        for ((yr, gr), gxr) in yb
            .chunks_exact(inner)
            .zip(gb.chunks_exact(inner))
            .zip(gxb.chunks_exact_mut(inner))
        {
            for i in 0..inner {
                gxr[i] = if log {
                    gr[i] - yr[i].exp() * s[i]
                } else {
                    yr[i] * (gr[i] - s[i])
                };
            }
        }
    }
    gx
}

/// Softmax or log-softmax of `v` along `axis`, recorded as one node named `op`.
#[track_caller]
pub(crate) fn softmax_op<'t, T: Float>(
    op: &'static str,
    v: Var<'t, T>,
    axis: usize,
    log: bool,
) -> Result<Var<'t, T>, Error> {
    let x = v.value();
    Error::check_axis(op, axis, x.rank())?;
    let shape = x.shape().clone();
    let (outer, n, inner) = lanes(&shape, axis);
    let y = Tensor::from_vec(softmax_lanes(x.data(), outer, n, inner, log), shape);
    let held = [Held::tensor(&y)];
    v.tape().try_record_graph(op, &[v], y, &held, move |a| {
        [Some(softmax_backward(a.g(), a.output(), axis, log))].into()
    })
}

/// The VJP of softmax (`y ⊙ (g − Σ g ⊙ y)`) or log-softmax (`g − e^y Σ g`), sums over each
/// lane of `axis`, in one fused pass: an op of its own, whose VJP is written in ops.
pub(crate) fn softmax_backward<'s, T: Float>(
    g: Var<'s, T>,
    y: Var<'s, T>,
    axis: usize,
    log: bool,
) -> Var<'s, T> {
    let shape = y.shape();
    let (outer, n, inner) = lanes(&shape, axis);
    let gx = y.with_value(|yv| {
        g.with_value(|gv| softmax_lanes_backward(yv.data(), gv.data(), outer, n, inner, log))
    });
    let op = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    g.tape()
        .record_differentiable(op, &[g, y], Tensor::from_vec(gx, shape), move |a| {
            let (gg, g, y) = (a.g(), a.input(0), a.input(1));
            let lane_sum = move |v| Var::sum_axes(v, &[axis], true);
            if log {
                // h = g − e^y Σ g: ∂/∂g = gg − Σ (gg e^y), ∂/∂y = −gg e^y Σ g.
                let e = y.exp();
                [
                    a.then(0, || gg - lane_sum(gg * e)),
                    a.then(1, || -(gg * e * lane_sum(g))),
                ]
                .into()
            } else {
                // h = y (g − s), s = Σ g y: ∂/∂g = y (gg − Σ gg y) (h itself, for gg),
                // ∂/∂y = gg (g − s) − g Σ gg y.
                [
                    a.then(0, || softmax_backward(gg, y, axis, false)),
                    a.then(1, || gg * (g - lane_sum(g * y)) - g * lane_sum(gg * y)),
                ]
                .into()
            }
        })
}

impl<'t, T: Float> Var<'t, T> {
    /// Softmax along `axis`: `yᵢ = exp(xᵢ − m) / Σⱼ exp(xⱼ − m)` over each lane of `axis`,
    /// where `m` is the lane's maximum (subtracted for stability: no overflow for any finite
    /// input, and `[1000, 0]` gives exactly `[1, 0]` in `f32`). Same shape as the input;
    /// every lane sums to 1. An error when `axis` is not below the rank.
    ///
    /// VJP: `∂L/∂x = y ⊙ (g − Σ_axis g ⊙ y)`, the sum taken over each lane and broadcast back.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 1.0, 1.0, 1.0], [2, 3]));
    /// let y = x.softmax(1).value();
    /// assert!((y[[0, 2]] - 0.6652409557748219).abs() < 1e-12);
    /// assert_eq!(y[[1, 0]], 1.0 / 3.0);
    /// assert!(x.try_softmax(2).is_err());
    /// ```
    #[track_caller]
    pub fn try_softmax(self, axis: usize) -> Result<Var<'t, T>, Error> {
        softmax_op("softmax", self, axis, false)
    }

    /// [`Var::try_softmax`], panicking when `axis` is out of range.
    ///
    /// # Panics
    /// With the message of [`Var::try_softmax`]'s error.
    #[track_caller]
    pub fn softmax(self, axis: usize) -> Var<'t, T> {
        self.try_softmax(axis).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;

    fn configs() -> Vec<(Vec<usize>, usize)> {
        vec![
            (vec![1], 0),
            (vec![5], 0),
            (vec![1, 4], 0),
            (vec![1, 4], 1),
            (vec![3, 4], 0),
            (vec![3, 4], 1),
            (vec![4, 1], 1),
            (vec![2, 3, 5], 0),
            (vec![2, 3, 5], 1),
            (vec![2, 3, 5], 2),
            (vec![3, 1, 2], 1),
        ]
    }

    #[test]
    fn gradcheck_along_every_axis() {
        let mut worst: f64 = 0.0;
        for (k, (shape, axis)) in configs().into_iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::randn(shape.as_slice(), &mut rng) * 2.0;
            let r = gradcheck(|v| v[0].softmax(axis), &[x]);
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{shape:?} axis {axis}: {e}"),
            }
        }
        println!(
            "softmax: {} configs, max abs err {worst:e}",
            configs().len()
        );
    }

    #[test]
    fn lanes_sum_to_one_along_the_axis() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::randn([2, 3, 4], &mut rng));
        for axis in 0..3 {
            let y = x.softmax(axis);
            let s = y.sum_axes(&[axis], false).value();
            for v in s.data() {
                assert!((v - 1.0).abs() < 1e-12, "axis {axis}: {v}");
            }
            assert!(y.value().data().iter().all(|&p| p > 0.0 && p < 1.0));
        }
    }

    #[test]
    fn known_values_f32_and_f64() {
        // softmax([1, 2, 3]) = e^k / (e + e^2 + e^3)
        let (e1, e2, e3) = (1f64.exp(), 2f64.exp(), 3f64.exp());
        let want = [e1, e2, e3].map(|e| e / (e1 + e2 + e3));
        let t64 = Tape::<f64>::new();
        let y = t64
            .input(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]))
            .softmax(0)
            .value();
        for (a, b) in y.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
        // Along axis 0 of a [3, 2] matrix: column 1 is constant, so uniform.
        let t32 = Tape::<f32>::new();
        let y = t32
            .input(Tensor::from_vec(vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0], [3, 2]))
            .softmax(0)
            .value();
        for i in 0..3 {
            assert!((y[[i, 0]] as f64 - want[i]).abs() < 1e-6);
            assert!((y[[i, 1]] - 1.0 / 3.0).abs() < 1e-7);
        }
    }

    #[test]
    fn huge_logits_are_stable() {
        let t = Tape::<f32>::new();
        let y = t
            .input(Tensor::from_vec(vec![1000.0, 0.0], [2]))
            .softmax(0)
            .value();
        assert_eq!(y.to_vec(), vec![1.0, 0.0]);
        let y = t
            .input(Tensor::from_vec(vec![-1e30, 1e30, 3e38], [3]))
            .softmax(0)
            .value();
        assert_eq!(y.to_vec(), vec![0.0, 0.0, 1.0]);
        // The gradient is finite too.
        let x = t.param(Tensor::from_vec(vec![1000.0, 0.0, -1000.0], [3]));
        let g = t.backward_with(x.softmax(0), Tensor::from_vec(vec![1.0, -2.0, 3.0], [3]));
        assert!(g[x].data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradient_of_a_weighted_output() {
        // d/dx of softmax(x)[0] = y0 (e0 − y)
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![0.5, -1.0, 2.0], [3]));
        let y = x.softmax(0);
        let yv = y.value();
        let g = tape.backward_with(y, Tensor::from_vec(vec![1.0, 0.0, 0.0], [3]));
        let y0 = yv[[0]];
        let want = [y0 * (1.0 - y0), -y0 * yv[[1]], -y0 * yv[[2]]];
        for (a, b) in g[x].data().iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn axis_out_of_range() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let e = x.try_softmax(2).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "softmax: axis 2 is out of range for a tensor of rank 2 (called at src/ops/softmax.rs:"
            ),
            "{e}"
        );
        let s = tape.scalar(1.0);
        let e = s.try_softmax(0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("softmax: axis 0 is out of range for a tensor of rank 0"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "softmax: axis 5 is out of range for a tensor of rank 1")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([2])).softmax(5);
    }

    #[test]
    fn empty_lanes_and_blocks() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::zeros([2, 0, 3]));
        for axis in 0..3 {
            let y = x.softmax(axis);
            assert_eq!(y.shape(), [2, 0, 3]);
        }
        let x = tape.param(Tensor::zeros([0]));
        assert_eq!(x.softmax(0).shape(), [0]);
    }
}
