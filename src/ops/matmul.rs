//! Matrix product, 2-D or batched over a leading axis that broadcasts.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm, gemm_new};
use crate::shape::Shape;
use crate::tape::{Held, Var, VarGrads, VjpArgs};
use crate::tensor::Tensor;

/// Batch count, whether each operand is batched, and `m, k, n`.
struct Dims {
    batch: usize,
    a_batched: bool,
    b_batched: bool,
    m: usize,
    k: usize,
    n: usize,
}

#[track_caller]
fn dims(a: &Shape, b: &Shape) -> Result<Dims, Error> {
    // A function, not a closure: closures do not forward `#[track_caller]`, and the error
    // must point at the caller's line.
    #[track_caller]
    fn bad(a: &Shape, b: &Shape, why: &str) -> Result<Dims, Error> {
        Err(Error::incompatible("matmul", a, b, why))
    }
    if !(2..=3).contains(&a.rank()) || !(2..=3).contains(&b.rank()) {
        return bad(
            a,
            b,
            "matmul takes operands of rank 2 ([m, k] · [k, n]) or 3 ([batch, m, k] · [batch, k, n])",
        );
    }
    let (m, k) = (a[a.rank() - 2], a[a.rank() - 1]);
    let (k2, n) = (b[b.rank() - 2], b[b.rank() - 1]);
    if k != k2 {
        let mut why = format!(
            "inner dimensions differ: {k} (columns of the left) vs {k2} (rows of the right)"
        );
        // The usual cause: a weight written [out, in] as PyTorch's Linear stores it.
        if b.rank() == 2 && n == k {
            why += &format!(
                "; the right operand transposed would fit: a weight here is laid out [in, out] \
                 (x.matmul(w) for x of [batch, in]), so one of shape [{k2}, {n}] = [out, in] \
                 needs .t(): x.matmul(w.t())"
            );
        }
        return bad(a, b, &why);
    }
    let ba = if a.rank() == 3 { a[0] } else { 1 };
    let bb = if b.rank() == 3 { b[0] } else { 1 };
    if ba != bb && ba != 1 && bb != 1 {
        return bad(a, b, &format!("batch sizes {ba} and {bb} do not broadcast"));
    }
    Ok(Dims {
        // A batch of 1 broadcasts to the other's, 0 included (max would give 1 for 1 and 0,
        // a batch the empty operand does not have).
        batch: if ba == 1 { bb } else { ba },
        a_batched: a.rank() == 3 && ba > 1,
        b_batched: b.rank() == 3 && bb > 1,
        m,
        k,
        n,
    })
}

impl<'t, T: Float> Var<'t, T> {
    /// The matrix product `self · other`: `[m, k] · [k, n] → [m, n]`, or batched,
    /// `[B, m, k] · [B, k, n] → [B, m, n]`, where either side may be 2-D or have batch 1 and
    /// is then broadcast over the batch.
    ///
    /// VJP: `∂L/∂A = G · Bᵀ`, `∂L/∂B = Aᵀ · G`, each summed over the batch where its operand
    /// was broadcast.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    /// let b = tape.input(Tensor::from_vec(vec![5.0, 6.0, 7.0, 8.0], [2, 2]));
    /// assert_eq!(a.matmul(b).value().to_vec(), vec![19.0, 22.0, 43.0, 50.0]);
    /// ```
    #[track_caller]
    pub fn try_matmul(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        self.check_same_tape("matmul", other)?;
        let (a, b) = (self.value(), other.value());
        let d = dims(a.shape(), b.shape())?;
        let (m, k, n) = (d.m, d.k, d.n);
        let step = |batched: bool, len: usize| if batched { len } else { 0 };
        let y = gemm_new(
            d.batch,
            (MatRef::new(a.data(), m, k), step(d.a_batched, m * k)),
            (MatRef::new(b.data(), k, n), step(d.b_batched, k * n)),
        );
        let out: Shape = if a.rank() == 3 || b.rank() == 3 {
            [d.batch, m, n].into()
        } else {
            [m, n].into()
        };
        self.tape().try_record_graph(
            "matmul",
            &[self, other],
            Tensor::from_vec(y, out),
            &[Held::tensor(&a), Held::tensor(&b)],
            |x| matmul_vjp(x, false, false),
        )
    }

    /// [`Var::try_matmul`], panicking on shapes that do not multiply.
    ///
    /// # Panics
    /// With the message of [`Var::try_matmul`]'s error.
    #[track_caller]
    pub fn matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        self.try_matmul(other).or_panic()
    }
}

/// The VJP of `op(a) · op(b)` (`op` a transpose where flagged): `dA = G · op(B)^T` and
/// `dB = op(A)^T · G`, each transposed back where its operand was, as products of the same
/// kind (so differentiable in turn), summed over the batch for an operand that broadcast.
fn matmul_vjp<'s, T: Float>(x: &VjpArgs<'s, T>, ta: bool, tb: bool) -> VarGrads<'s, T> {
    let (g, a, b) = (x.g(), x.input(0), x.input(1));
    [
        x.then(0, || match ta {
            false => product(g, false, b, !tb, a.shape()),
            true => product(b, tb, g, true, a.shape()),
        }),
        x.then(1, || match tb {
            false => product(a, !ta, g, false, b.shape()),
            true => product(g, true, a, ta, b.shape()),
        }),
    ]
    .into()
}

/// `op(a) · op(b)` into a result of shape `out`: per batch entry when `out` has the batch,
/// summed over it when not. The VJPs of matmul, and theirs.
pub(crate) fn product<'s, T: Float>(
    a: Var<'s, T>,
    ta: bool,
    b: Var<'s, T>,
    tb: bool,
    out: Shape,
) -> Var<'s, T> {
    let y = a.with_value(|av| {
        b.with_value(|bv| {
            let view = |t: &Tensor<T>, tr: bool| {
                let s = t.shape();
                let (r, c) = (s[s.rank() - 2], s[s.rank() - 1]);
                let batch = if s.rank() == 3 { s[0] } else { 1 };
                (r, c, batch, tr)
            };
            let (ra, ca, ba, _) = view(av, ta);
            let (rb, cb, bb, _) = view(bv, tb);
            let (m, k) = if ta { (ca, ra) } else { (ra, ca) };
            let n = if tb { rb } else { cb };
            // A batch of 1 broadcasts to the other's, 0 included.
            let batch = if ba == 1 { bb } else { ba };
            let out_batched = batch > 1 && out.numel() == batch * m * n;
            let mut y = crate::runtime::buffers::zeroed(out.numel());
            for i in 0..batch {
                let ao = if ba > 1 { i * ra * ca } else { 0 };
                let bo = if bb > 1 { i * rb * cb } else { 0 };
                let am = match ta {
                    false => MatRef::new(&av.data()[ao..], m, k),
                    true => MatRef::transposed(&av.data()[ao..], m, k),
                };
                let bm = match tb {
                    false => MatRef::new(&bv.data()[bo..], k, n),
                    true => MatRef::transposed(&bv.data()[bo..], k, n),
                };
                let co = if out_batched { i * m * n } else { 0 };
                gemm(am, bm, MatMut::new(&mut y[co..], m, n), true);
            }
            y
        })
    });
    a.tape()
        .record_differentiable("matmul", &[a, b], Tensor::from_vec(y, out), move |x| {
            matmul_vjp(x, ta, tb)
        })
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// Each refusal names both shapes and points at the caller's line, not into the op.
    fn refused(a: &[usize], b: &[usize]) -> String {
        let tape = Tape::<f64>::new();
        let (x, y) = (tape.input(Tensor::ones(a)), tape.input(Tensor::ones(b)));
        let line = line!() + 1;
        let e = x.try_matmul(y).unwrap_err();
        assert_eq!(e.op, "matmul");
        assert_eq!(
            (e.location.file(), e.location.line()),
            ("src/ops/matmul.rs", line),
            "{e}"
        );
        e.to_string()
    }

    #[test]
    fn rank_other_than_2_or_3_is_refused() {
        for (a, b) in [(&[3][..], &[3, 2][..]), (&[2, 3], &[1, 2, 3, 4])] {
            let s = refused(a, b);
            assert!(
                s.contains(
                    "are incompatible: matmul takes operands of rank 2 ([m, k] · [k, n]) or 3 ([batch, m, k] · [batch, k, n]) (called at src/ops/matmul.rs:"
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn inner_dimensions_must_agree() {
        let s = refused(&[2, 3], &[4, 5]);
        assert!(
            s.starts_with(
                "matmul: shapes [2, 3] and [4, 5] are incompatible: inner dimensions differ: 3 (columns of the left) vs 4 (rows of the right) (called at src/ops/matmul.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn a_transposed_weight_is_pointed_out() {
        // x of [batch 2, in 3] against a weight [out 4, in 3]: .t() would fix it.
        let s = refused(&[2, 3], &[4, 3]);
        assert!(
            s.starts_with(
                "matmul: shapes [2, 3] and [4, 3] are incompatible: inner dimensions differ: 3 (columns of the left) vs 4 (rows of the right); the right operand transposed would fit: a weight here is laid out [in, out] (x.matmul(w) for x of [batch, in]), so one of shape [4, 3] = [out, in] needs .t(): x.matmul(w.t()) (called at src/ops/matmul.rs:"
            ),
            "{s}"
        );
        // Where the transpose would not fit either, there is no hint.
        assert!(!refused(&[2, 3], &[4, 5]).contains(".t()"));
    }

    #[test]
    fn batch_sizes_must_broadcast() {
        let s = refused(&[2, 3, 4], &[3, 4, 5]);
        assert!(
            s.starts_with(
                "matmul: shapes [2, 3, 4] and [3, 4, 5] are incompatible: batch sizes 2 and 3 do not broadcast (called at src/ops/matmul.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn foreign_tape_is_refused() {
        let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
        let a = t1.input(Tensor::ones([2, 2]));
        let b = t2.input(Tensor::ones([2, 2]));
        let s = a.try_matmul(b).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "matmul: a handle from another tape was used on this one (called at src/ops/matmul.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(
        expected = "matmul: shapes [2, 3] and [2, 3] are incompatible: inner dimensions differ"
    )]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::ones([2, 3]));
        let _ = a.matmul(a);
    }

    #[test]
    fn empty_batch_broadcasts_against_batch_one() {
        // Found by tests/properties.rs: [0, 2] · [0, 2, 1] took the batch as max(1, 0) = 1
        // and the kernel panicked on the empty right operand.
        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::zeros([0, 2]));
        let b = tape.param(Tensor::zeros([0, 2, 1]));
        assert_eq!(a.matmul(b).shape(), [0, 0, 1]);
        let c = tape.param(Tensor::ones([1, 3, 2]));
        let y = c.matmul(b);
        assert_eq!(y.shape(), [0, 3, 1]);
        let g = tape.backward(y.sum());
        assert_eq!(g[c].to_vec(), vec![0.0; 6]);
        assert_eq!(g[b].shape(), &[0, 2, 1]);
    }
}
