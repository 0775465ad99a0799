//! Concatenation of several tensors along one axis.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// The tensors `xs` joined end to end along `axis`, as `torch.cat(xs, axis)`: all have
    /// the same rank and the same extents on every other axis; the result's extent on
    /// `axis` is the sum of theirs. A single input is returned as it is (sharing its buffer).
    ///
    /// Shapes: `[…, aₖ, …]` for each input `k` → `[…, Σₖ aₖ, …]`.
    ///
    /// VJP: `∂L/∂xₖ = g[…, oₖ..oₖ + aₖ, …]`, the slice of `g` along `axis` where `xₖ`
    /// was placed (`oₖ = Σ_{j<k} aⱼ`). An input listed twice receives both slices, summed.
    ///
    /// Errors: an empty slice; inputs from different tapes; `axis` not below the rank;
    /// inputs of different ranks, or whose extents differ on an axis other than `axis`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    /// let b = tape.param(Tensor::from_vec(vec![5.0, 6.0], [2, 1]));
    /// let y = Var::concat(&[a, b], 1);
    /// assert_eq!(y.shape(), [2, 3]);
    /// assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 5.0, 3.0, 4.0, 6.0]);
    /// let g = tape.backward((y * y).sum());
    /// assert_eq!(g[b].to_vec(), vec![10.0, 12.0]);
    /// assert!(Var::try_concat(&[a, b], 0).is_err());
    /// ```
    #[track_caller]
    pub fn try_concat(xs: &[Var<'t, T>], axis: usize) -> Result<Var<'t, T>, Error> {
        let Some(&first) = xs.first() else {
            return Err(Error::bad_argument(
                "concat",
                "needs at least one tensor, but the slice of inputs is empty",
            ));
        };
        for &x in &xs[1..] {
            first.check_same_tape("concat", x)?;
        }
        let vals: Vec<Tensor<T>> = xs.iter().map(|v| v.value()).collect();
        let s0 = vals[0].shape().clone();
        let rank = s0.rank();
        Error::check_axis("concat", axis, rank)?;
        for (i, v) in vals.iter().enumerate().skip(1) {
            let s = v.shape();
            if s.rank() != rank {
                return Err(Error::incompatible(
                    "concat",
                    &s0,
                    s,
                    format!(
                        "input {i} has rank {} but input 0 has rank {rank}; concatenating along axis {axis} needs inputs of equal rank",
                        s.rank()
                    ),
                ));
            }
            if let Some(a) = (0..rank).find(|&a| a != axis && s[a] != s0[a]) {
                return Err(Error::incompatible(
                    "concat",
                    &s0,
                    s,
                    format!(
                        "input {i} has extent {} on axis {a} but input 0 has {}; concatenating along axis {axis} needs equal extents on every other axis",
                        s[a], s0[a]
                    ),
                ));
            }
        }
        // Each input is `outer` rows of `chunks[k]` contiguous elements; the output's rows
        // are those chunks side by side.
        let outer: usize = s0[..axis].iter().product();
        let inner: usize = s0[axis + 1..].iter().product();
        let chunks: Vec<usize> = vals.iter().map(|v| v.shape()[axis] * inner).collect();
        let mut out_shape = s0.clone();
        out_shape[axis] = vals.iter().map(|v| v.shape()[axis]).sum();
        let y = if vals.len() == 1 {
            vals[0].clone()
        } else {
            let parts: Vec<&[T]> = vals.iter().map(|v| v.data()).collect();
            Tensor::from_vec(join_rows(&parts, &chunks, outer), out_shape)
        };
        let lens: Vec<usize> = vals.iter().map(|v| v.shape()[axis]).collect();
        drop(vals); // the VJP needs only the extents
        first
            .tape()
            .try_record_differentiable("concat", xs, y, move |a| {
                // Each input's gradient is its range of g along the axis.
                let mut start = 0;
                let mut grads = Vec::with_capacity(lens.len());
                for (k, &len) in lens.iter().enumerate() {
                    grads.push(a.then(k, || a.g().narrow(axis, start, len)));
                    start += len;
                }
                grads.into()
            })
    }

    /// [`Var::try_concat`], panicking on inputs that do not fit together.
    ///
    /// # Panics
    /// With the message of [`Var::try_concat`]'s error.
    #[track_caller]
    pub fn concat(xs: &[Var<'t, T>], axis: usize) -> Var<'t, T> {
        Self::try_concat(xs, axis).or_panic()
    }
}

// ---------------------------------------------------------------------------------------
// Kernel: the block copies behind concat (slices and sizes only; no tape). Kept here as
// private functions, beside the one op that uses them.
// ---------------------------------------------------------------------------------------

/// For each of `outer` rows, the `chunks[k]` elements of row `o` of each `parts[k]`, one
/// after another: concatenation along an axis, with everything before it as `outer`.
fn join_rows<T: Float>(parts: &[&[T]], chunks: &[usize], outer: usize) -> Vec<T> {
    let row: usize = chunks.iter().sum();
    let mut y = Vec::with_capacity(outer * row);
    for o in 0..outer {
        for (p, &c) in parts.iter().zip(chunks) {
            y.extend_from_slice(&p[o * c..(o + 1) * c]);
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::{Tape, Var};
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_along_every_axis() {
        let mut worst: f64 = 0.0;
        let mut passed = 0;
        let base = [2usize, 3, 2];
        // Rank 3, along each axis, 2 and 3 inputs of different extents on that axis.
        for axis in 0..3 {
            for extents in [&[1usize, 3][..], &[2, 1, 3]] {
                let mut rng = rand::rngs::StdRng::seed_from_u64((axis * 10 + extents.len()) as u64);
                let xs: Vec<Tensor<f64>> = extents
                    .iter()
                    .map(|&e| {
                        let mut s = base;
                        s[axis] = e;
                        Tensor::randn(s, &mut rng)
                    })
                    .collect();
                match gradcheck(|v| Var::concat(v, axis), &xs) {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("axis {axis} extents {extents:?}: {e}"),
                }
                passed += 1;
            }
        }
        // Other ranks, a single input, and one input used twice.
        let more: &[(&[&[usize]], usize)] = &[
            (&[&[2], &[3]], 0),
            (&[&[4]], 0),
            (&[&[2, 3], &[2, 1]], 1),
            (&[&[1, 3], &[2, 3], &[1, 3]], 0),
            (&[&[2, 1, 2, 2], &[2, 2, 2, 2]], 1),
            (&[&[1, 2, 2, 3], &[1, 2, 2, 1]], 3),
        ];
        for (k, &(shapes, axis)) in more.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + k as u64);
            let xs: Vec<Tensor<f64>> = shapes.iter().map(|&s| Tensor::randn(s, &mut rng)).collect();
            match gradcheck(|v| Var::concat(v, axis), &xs) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{shapes:?} along {axis}: {e}"),
            }
            passed += 1;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(200);
        let x = Tensor::<f64>::randn([2, 3], &mut rng);
        match gradcheck(|v| Var::concat(&[v[0], v[0]], 1), &[x]) {
            Ok(rep) => worst = worst.max(rep.max_abs_err()),
            Err(e) => panic!("one input twice: {e}"),
        }
        passed += 1;
        println!("concat: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::arange(4).reshape([2, 1, 2]));
        let b = tape.param(Tensor::from_vec(
            vec![10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0],
            [2, 2, 2],
        ));
        let y = Var::concat(&[a, b], 1);
        assert_eq!(y.shape(), [2, 3, 2]);
        assert_eq!(
            y.value().to_vec(),
            vec![
                0.0, 1.0, 10.0, 11.0, 12.0, 13.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0
            ]
        );
        let w = tape.input(Tensor::arange(12).reshape([2, 3, 2]));
        let g = tape.backward((y * w).sum());
        assert_eq!(g[a].to_vec(), vec![0.0, 1.0, 6.0, 7.0]);
        assert_eq!(
            g[b].to_vec(),
            vec![2.0, 3.0, 4.0, 5.0, 8.0, 9.0, 10.0, 11.0]
        );

        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
        let b = tape.param(Tensor::from_vec(vec![3.0], [1]));
        let c = tape.input(Tensor::zeros([0]));
        let y = Var::concat(&[a, c, b, a], 0);
        assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 3.0, 1.0, 2.0]);
        let g = tape.backward_with(y, Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0], [5]));
        assert_eq!(g[a].to_vec(), vec![5.0, 7.0]); // both slices, summed
        assert_eq!(g[b].to_vec(), vec![3.0]);
        // A single input shares its buffer.
        assert!(Var::concat(&[a], 0).value().shares_buffer(&a.value()));
    }

    #[test]
    fn empty_slice_is_refused() {
        let s = Var::<f32>::try_concat(&[], 0).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "concat: needs at least one tensor, but the slice of inputs is empty (called at src/ops/concat.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn rank_mismatch_is_refused() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let b = tape.input(Tensor::zeros([2, 3, 1]));
        let s = Var::try_concat(&[a, a, b], 1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "concat: shapes [2, 3] and [2, 3, 1] are incompatible: input 2 has rank 3 but input 0 has rank 2; concatenating along axis 1 needs inputs of equal rank (called at src/ops/concat.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn extent_mismatch_is_refused() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::zeros([2, 3, 4]));
        let b = tape.input(Tensor::zeros([2, 5, 3]));
        let s = Var::try_concat(&[a, b], 1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "concat: shapes [2, 3, 4] and [2, 5, 3] are incompatible: input 1 has extent 3 on axis 2 but input 0 has 4; concatenating along axis 1 needs equal extents on every other axis (called at src/ops/concat.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let s = Var::try_concat(&[a, a], 2).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "concat: axis 2 is out of range for a tensor of rank 2 (called at src/ops/concat.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn foreign_tape_is_refused() {
        let t1 = Tape::<f32>::new();
        let t2 = Tape::<f32>::new();
        let a = t1.input(Tensor::zeros([2]));
        let b = t2.input(Tensor::zeros([2]));
        let s = Var::try_concat(&[a, b], 0).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "concat: a handle from another tape was used on this one (called at src/ops/concat.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "concat: needs at least one tensor")]
    fn plain_form_panics() {
        Var::<f64>::concat(&[], 0);
    }
}
