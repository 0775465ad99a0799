//! Reordering axes: `permute`, `transpose` of two axes, and `t` for matrices.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Reorders the axes: output axis `i` is input axis `perm[i]`, so
    /// `y[i₀, …, iᵣ₋₁] = x[j]` with `j[perm[k]] = iₖ`, as `torch.permute` and
    /// `numpy.transpose`. The data is copied into the new row-major order (the identity
    /// permutation copies nothing).
    ///
    /// Shapes: `[d₀, …, dᵣ₋₁] → [d_perm[0], …, d_perm[r-1]]`.
    ///
    /// VJP: `∂L/∂x = permute(g, perm⁻¹)` with `perm⁻¹[perm[i]] = i`.
    ///
    /// Errors: `perm` is not a permutation of `0..rank` (wrong length, an axis out of range,
    /// or an axis repeated).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::arange(24).reshape([2, 3, 4]));
    /// let y = x.permute(&[2, 0, 1]);
    /// assert_eq!(y.shape(), [4, 2, 3]);
    /// assert_eq!(y.value()[[3, 1, 2]], x.value()[[1, 2, 3]]);
    /// assert!(x.try_permute(&[0, 0, 1]).is_err());
    /// ```
    #[track_caller]
    pub fn try_permute(self, perm: &[usize]) -> Result<Var<'t, T>, Error> {
        let shape = self.shape();
        let r = shape.rank();
        if perm.len() != r {
            return Err(Error::bad_argument(
                "permute",
                format!(
                    "{perm:?} has length {} but the tensor of shape {shape} has rank {r}; a permutation of 0..{r} is needed",
                    perm.len()
                ),
            ));
        }
        let mut seen = vec![false; r];
        for &p in perm {
            if p >= r || std::mem::replace(&mut seen[p], true) {
                return Err(Error::bad_argument(
                    "permute",
                    format!(
                        "{perm:?} is not a permutation of 0..{r} (the axes of shape {shape}): axis {p} is {}",
                        if p >= r { "out of range" } else { "repeated" }
                    ),
                ));
            }
        }
        Ok(self.permute_unchecked("permute", perm))
    }

    /// [`Var::try_permute`], panicking when `perm` is not a permutation of `0..rank`.
    ///
    /// # Panics
    /// With the message of [`Var::try_permute`]'s error.
    #[track_caller]
    pub fn permute(self, perm: &[usize]) -> Var<'t, T> {
        self.try_permute(perm).or_panic()
    }

    /// Swaps axes `a` and `b`, as `torch.transpose(x, a, b)`; `a == b` leaves `x` as it is.
    /// The data is copied into the new row-major order: `y[…, i, …, j, …] = x[…, j, …, i, …]`.
    ///
    /// Shapes: extents `a` and `b` swapped, `[…, dₐ, …, d_b, …] → […, d_b, …, dₐ, …]`.
    ///
    /// VJP: `∂L/∂x = transpose(g, a, b)` (a swap is its own inverse).
    ///
    /// Errors: `a` or `b` not below the rank.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::zeros([2, 3, 4]));
    /// assert_eq!(x.transpose(0, 2).shape(), [4, 3, 2]);
    /// assert!(x.try_transpose(1, 3).is_err());
    /// ```
    #[track_caller]
    pub fn try_transpose(self, a: usize, b: usize) -> Result<Var<'t, T>, Error> {
        let r = self.shape().rank();
        Error::check_axis("transpose", a, r)?;
        Error::check_axis("transpose", b, r)?;
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        Ok(self.permute_unchecked("transpose", &perm))
    }

    /// [`Var::try_transpose`], panicking on an axis out of range.
    ///
    /// # Panics
    /// With the message of [`Var::try_transpose`]'s error.
    #[track_caller]
    pub fn transpose(self, a: usize, b: usize) -> Var<'t, T> {
        self.try_transpose(a, b).or_panic()
    }

    /// The transpose of a matrix, `[m, n] → [n, m]`: `yᵢⱼ = xⱼᵢ`. As `torch.t`, a rank-0 or
    /// rank-1 input is returned as it is.
    ///
    /// VJP: `∂L/∂x = gᵀ`.
    ///
    /// Errors: a rank above 2 (use [`Var::transpose`] or [`Var::permute`]).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// let y = x.t();
    /// assert_eq!(y.shape(), [3, 2]);
    /// assert_eq!(y.value().to_vec(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn try_t(self) -> Result<Var<'t, T>, Error> {
        let shape = self.shape();
        match shape.rank() {
            0 => Ok(self.permute_unchecked("t", &[])),
            1 => Ok(self.permute_unchecked("t", &[0])),
            2 => Ok(self.permute_unchecked("t", &[1, 0])),
            _ => Err(Error::bad_shape(
                "t",
                &shape,
                "t transposes a matrix and takes rank 0, 1 or 2; use transpose(a, b) or permute for higher ranks",
            )),
        }
    }

    /// [`Var::try_t`], panicking on a rank above 2.
    ///
    /// # Panics
    /// With the message of [`Var::try_t`]'s error.
    #[track_caller]
    pub fn t(self) -> Var<'t, T> {
        self.try_t().or_panic()
    }

    /// Records the permutation of axes `perm`, already checked to be one of `0..rank`.
    #[track_caller]
    fn permute_unchecked(self, op: &'static str, perm: &[usize]) -> Var<'t, T> {
        let x = self.value();
        let in_shape = x.shape().clone();
        let out_shape: Shape = perm.iter().map(|&p| in_shape[p]).collect::<Vec<_>>().into();
        let y = if perm.iter().enumerate().all(|(i, &p)| i == p) {
            x // the identity: share the buffer
        } else {
            Tensor::from_vec(permute_copy(x.data(), &in_shape, perm), out_shape)
        };
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        self.tape().record_differentiable(op, &[self], y, move |a| {
            [Some(a.g().permute_unchecked("permute", &inv))].into()
        })
    }
}

// ---------------------------------------------------------------------------------------
// Kernel: the strided copy behind permute (slices and shapes only; no tape). Kept here as
// private functions, beside the one op that uses them.
// ---------------------------------------------------------------------------------------

/// Tile edge of the blocked 2-D transpose: 32×32 elements of `f64` span 8 KiB each way,
/// well inside L1 for the source rows and destination rows touched by one tile.
const TILE: usize = 32;

/// `x` (row-major, shape `dims`) with its axes reordered so that output axis `i` is input
/// axis `perm[i]`, as a new row-major buffer.
///
/// Axes of extent 1 are dropped and runs of output axes that are also neighbours, in order,
/// in the input are merged, so the copy works on the fewest, longest axes. Then, if the
/// innermost output axis is contiguous in the input, whole runs are copied with
/// `copy_from_slice`; otherwise the two axes involved (the input's contiguous one and the
/// output's innermost one) are copied as a tiled 2-D transpose, so that reads and writes
/// both stay within a few cache lines.
fn permute_copy<T: Float>(x: &[T], dims: &[usize], perm: &[usize]) -> Vec<T> {
    debug_assert_eq!(dims.len(), perm.len());
    debug_assert_eq!(x.len(), dims.iter().product::<usize>());
    if x.is_empty() {
        return Vec::new();
    }
    let st = Shape::new(dims).strides_inline();
    // (extent, source stride) of each output axis after dropping and merging.
    let mut ax: Vec<(usize, usize)> = Vec::with_capacity(perm.len());
    for &p in perm {
        let (e, s) = (dims[p], st[p]);
        if e == 1 {
            continue;
        }
        match ax.last_mut() {
            Some(last) if last.1 == s * e => *last = (last.0 * e, s),
            _ => ax.push((e, s)),
        }
    }
    // One axis left (or none) means the order is unchanged.
    if ax.len() <= 1 {
        return x.to_vec();
    }
    let r = ax.len();
    let mut out_st = vec![1usize; r];
    for i in (0..r - 1).rev() {
        out_st[i] = out_st[i + 1] * ax[i + 1].0;
    }
    let mut y = crate::runtime::buffers::zeroed(x.len());
    let (inner, inner_src) = ax[r - 1];
    if inner_src == 1 {
        // The innermost output axis is a contiguous run of the input.
        let outer: Vec<_> = (0..r - 1).map(|i| (ax[i].0, ax[i].1, out_st[i])).collect();
        for_each_offset(&outer, |so, oo| {
            y[oo..oo + inner].copy_from_slice(&x[so..so + inner]);
        });
        return y;
    }
    // The output axis that reads the input contiguously (exactly one after merging).
    let p = ax
        .iter()
        .position(|&(_, s)| s == 1)
        .expect("an axis of stride 1");
    let (rows, rows_out) = (ax[p].0, out_st[p]);
    let outer: Vec<_> = (0..r - 1)
        .filter(|&i| i != p)
        .map(|i| (ax[i].0, ax[i].1, out_st[i]))
        .collect();
    for_each_offset(&outer, |so, oo| {
        // A [rows, inner] block of the output, read as [inner, rows] from the input.
        for i0 in (0..rows).step_by(TILE) {
            let i1 = (i0 + TILE).min(rows);
            for j0 in (0..inner).step_by(TILE) {
                let j1 = (j0 + TILE).min(inner);
                for i in i0..i1 {
                    let dst = &mut y[oo + i * rows_out + j0..oo + i * rows_out + j1];
                    for (d, j) in dst.iter_mut().zip(j0..j1) {
                        *d = x[so + i + j * inner_src];
                    }
                }
            }
        }
    });
    y
}

/// Calls `f(source_offset, output_offset)` for every index of the axes given as
/// `(extent, source stride, output stride)`, in row-major order; once with `(0, 0)` when
/// there are none.
fn for_each_offset(axes: &[(usize, usize, usize)], mut f: impl FnMut(usize, usize)) {
    let r = axes.len();
    let mut idx = vec![0usize; r];
    let (mut so, mut oo) = (0usize, 0usize);
    loop {
        f(so, oo);
        // Odometer, updating both offsets incrementally.
        let mut k = r;
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            let (e, ss, os) = axes[k];
            idx[k] += 1;
            so += ss;
            oo += os;
            if idx[k] < e {
                break;
            }
            so -= ss * e;
            oo -= os * e;
            idx[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::permute_copy;
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    /// The definition, element by element: y[i] = x[j] with j[perm[k]] = i[k].
    fn reference(x: &[f64], dims: &[usize], perm: &[usize]) -> Vec<f64> {
        let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
        let n: usize = dims.iter().product();
        let mut y = vec![0.0; n];
        for (o, yo) in y.iter_mut().enumerate() {
            let mut rem = o;
            let mut idx = vec![0; dims.len()];
            for k in (0..out.len()).rev() {
                idx[perm[k]] = rem % out[k];
                rem /= out[k];
            }
            let src = idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i);
            *yo = x[src];
        }
        y
    }

    /// Every permutation of 0..r.
    fn all_perms(r: usize) -> Vec<Vec<usize>> {
        if r == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in all_perms(r - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, r - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn kernel_matches_the_definition() {
        let shapes: &[&[usize]] = &[
            &[],
            &[7],
            &[3, 5],
            &[1, 5],
            &[2, 3, 4],
            &[3, 1, 4],
            &[2, 1, 1, 3],
            &[2, 3, 2, 5],
            &[35, 40],    // tiles with ragged edges
            &[2, 33, 65], // ragged tiles under an outer axis
            &[0, 3],
        ];
        for &dims in shapes {
            let n: usize = dims.iter().product();
            let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            for perm in all_perms(dims.len()) {
                assert_eq!(
                    permute_copy(&x, dims, &perm),
                    reference(&x, dims, &perm),
                    "dims {dims:?} perm {perm:?}"
                );
            }
        }
    }

    #[test]
    fn gradcheck_permutations_of_ranks_1_to_4() {
        let shapes: &[&[usize]] = &[
            &[4],
            &[3, 2],
            &[1, 3],
            &[2, 3, 4],
            &[2, 1, 3],
            &[2, 3, 1, 2],
        ];
        let mut worst: f64 = 0.0;
        let mut passed = 0;
        for (k, &dims) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::<f64>::randn(dims, &mut rng);
            // Every permutation up to rank 3 (identity and reversal included); at rank 4
            // the identity, the reversal and a few mixed ones.
            let perms = if dims.len() <= 3 {
                all_perms(dims.len())
            } else {
                vec![
                    vec![0, 1, 2, 3],
                    vec![3, 2, 1, 0],
                    vec![0, 2, 3, 1],
                    vec![1, 0, 3, 2],
                    vec![2, 3, 0, 1],
                ]
            };
            for perm in perms {
                match gradcheck(|v| v[0].permute(&perm), std::slice::from_ref(&x)) {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("dims {dims:?} perm {perm:?}: {e}"),
                }
                passed += 1;
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let x = Tensor::<f64>::randn([2, 3, 4], &mut rng);
        for (a, b) in [(0, 1), (0, 2), (1, 2), (1, 1)] {
            match gradcheck(|v| v[0].transpose(a, b), std::slice::from_ref(&x)) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("transpose({a}, {b}): {e}"),
            }
            passed += 1;
        }
        for dims in [&[3, 5][..], &[4], &[]] {
            let x = Tensor::<f64>::randn(dims, &mut rng);
            match gradcheck(|v| v[0].t(), &[x]) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("t() of {dims:?}: {e}"),
            }
            passed += 1;
        }
        println!("permute: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::arange(6).reshape([1, 2, 3]));
        let y = x.permute(&[2, 0, 1]);
        assert_eq!(y.shape(), [3, 1, 2]);
        assert_eq!(y.value().to_vec(), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let w = tape.input(Tensor::arange(6).reshape([3, 1, 2]));
        let g = tape.backward((y * w).sum());
        // g[x] is w permuted back: g[0, i, j] = w[j, 0, i].
        assert_eq!(g[x].to_vec(), vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
        assert_eq!(x.t().value().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
        assert_eq!(x.transpose(1, 0).value().to_vec(), vec![1.0, 3.0, 2.0, 4.0]);
        // The identity shares the buffer; rank 0 and 1 pass through t() unchanged.
        assert!(x.permute(&[0, 1]).value().shares_buffer(&x.value()));
        let v = tape.input(Tensor::from_vec(vec![1.0, 2.0], [2]));
        assert_eq!(v.t().value().to_vec(), vec![1.0, 2.0]);
        assert_eq!(tape.scalar(3.0).permute(&[]).value().item(), 3.0);
    }

    #[test]
    fn wrong_length_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_permute(&[1, 0, 2]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "permute: [1, 0, 2] has length 3 but the tensor of shape [2, 3] has rank 2; a permutation of 0..2 is needed (called at src/ops/permute.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn repeated_or_out_of_range_axis_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3, 4]));
        let s = x.try_permute(&[0, 2, 0]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "permute: [0, 2, 0] is not a permutation of 0..3 (the axes of shape [2, 3, 4]): axis 0 is repeated (called at src/ops/permute.rs:"
            ),
            "{s}"
        );
        let s = x.try_permute(&[0, 3, 1]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "permute: [0, 3, 1] is not a permutation of 0..3 (the axes of shape [2, 3, 4]): axis 3 is out of range (called at src/ops/permute.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn transpose_axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_transpose(0, 2).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "transpose: axis 2 is out of range for a tensor of rank 2 (called at src/ops/permute.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn t_of_rank_3_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3, 4]));
        let s = x.try_t().unwrap_err().to_string();
        assert!(
            s.starts_with(
                "t: shape [2, 3, 4] refused: t transposes a matrix and takes rank 0, 1 or 2; use transpose(a, b) or permute for higher ranks (called at src/ops/permute.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "permute: [1] has length 1 but")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([2, 3])).permute(&[1]);
    }
}
