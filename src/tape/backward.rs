//! Reverse mode: [`Tape::backward`] sends a gradient from one output back to every
//! parameter on plain tensors, once; [`Tape::grad`] records the gradients as new nodes, so
//! that they can be used in a loss and differentiated again.

use super::anomaly::{check_backward, check_input_gradient};
use super::vjp::{GraphVjp, VjpArgs, VjpKind};
use super::{Grads, Tape, Var};
use crate::error::{Error, ErrorKind, OrPanic};
use crate::float::Float;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::fmt;

/// While a VJP runs: whether its ops keep VJPs of their own (under [`Tape::grad`]) or record
/// values only (under [`Tape::backward`]); restores the tape's modes when dropped, also on a
/// panic inside the VJP.
struct InVjp<'a, T: Float> {
    tape: &'a Tape<T>,
    saved: (bool, bool),
}

impl<'a, T: Float> InVjp<'a, T> {
    fn enter(tape: &'a Tape<T>, record: bool) -> Self {
        let saved = (tape.record_vjps.get(), tape.in_vjp.get());
        tape.record_vjps.set(record && tape.recording);
        tape.in_vjp.set(true);
        InVjp { tape, saved }
    }
}

impl<T: Float> Drop for InVjp<'_, T> {
    fn drop(&mut self) {
        self.tape.record_vjps.set(self.saved.0);
        self.tape.in_vjp.set(self.saved.1);
    }
}

impl<T: Float> Tape<T> {
    /// Gradients of a scalar (one-element) output with respect to every parameter.
    ///
    /// # Panics
    /// When `output` holds more than one element (reduce it with `.mean()` or `.sum()`, or
    /// use [`Tape::backward_with`]), on an inference tape, when backward already ran on this
    /// recording, or when `output` belongs to another tape. [`Tape::try_backward`] returns these as errors.
    #[track_caller]
    pub fn backward(&self, output: Var<'_, T>) -> Gradients<T> {
        self.try_backward(output).or_panic()
    }

    /// [`Tape::backward`], returning misuse as an error.
    #[track_caller]
    pub fn try_backward(&self, output: Var<'_, T>) -> Result<Gradients<T>, Error> {
        let shape = output.shape();
        if shape.numel() != 1 {
            return Err(Error::bad_shape(
                "backward",
                &shape,
                "backward needs a one-element output: reduce it to one with .mean() or .sum() \
                 first (softmax, cross_entropy, bce, bce_with_logits and mse_loss \
                 return one value per row or element, unreduced); to backpropagate from every \
                 element with an explicit seed gradient, use backward_with",
            ));
        }
        self.try_backward_with(output, Tensor::ones(shape))
    }

    /// Gradients of `output` with respect to every parameter, for an explicit upstream
    /// gradient `seed` of `output`'s shape (a vector-Jacobian product).
    ///
    /// # Panics
    /// As [`Tape::backward`], and when `seed`'s shape differs from `output`'s.
    #[track_caller]
    pub fn backward_with(&self, output: Var<'_, T>, seed: Tensor<T>) -> Gradients<T> {
        self.try_backward_with(output, seed).or_panic()
    }

    /// [`Tape::backward_with`], returning misuse as an error.
    #[track_caller]
    pub fn try_backward_with(
        &self,
        output: Var<'_, T>,
        seed: Tensor<T>,
    ) -> Result<Gradients<T>, Error> {
        if !std::ptr::eq(output.tape, self) {
            return Err(Error::new("backward", ErrorKind::ForeignTape));
        }
        if !self.recording {
            return Err(Error::bad_argument(
                "backward",
                "this tape was made with Tape::inference and records no VJPs",
            ));
        }
        let out_shape = output.shape();
        if seed.shape() != &out_shape {
            return Err(Error::incompatible(
                "backward",
                &out_shape,
                seed.shape(),
                "the seed gradient must have the output's shape",
            ));
        }
        {
            let mut inner = self.inner.borrow_mut();
            if inner.consumed {
                return Err(Error::new("backward", ErrorKind::BackwardTwice));
            }
            inner.consumed = true;
            // Forward only adds saved tensors and backward only frees them: the peak is now.
            let now = inner.saved_bytes();
            inner.peak_saved = inner.peak_saved.max(now);
        }
        let result = self.sweep(output.id as usize, seed);
        // Nothing can run backward on this recording again: free every VJP and what it
        // saved, including those of nodes the output does not depend on.
        for node in self.inner.borrow_mut().nodes.iter_mut() {
            node.vjp = None;
        }
        Ok(Gradients {
            grads: result?,
            tape: self as *const Self as usize,
            generation: self.generation,
        })
    }

    /// Gradients of the one-element `output` with respect to `wrt`, recorded on this tape as
    /// new nodes: each is a [`Var`] that can enter a loss and be differentiated again (by
    /// `grad` or [`Tape::backward`]), to any order. PyTorch's
    /// `torch.autograd.grad(output, wrt, create_graph=True)`.
    ///
    /// Only the ops between `output` and `wrt` run their VJPs. The tape keeps its graph (a
    /// later `grad` or `backward` goes through it again). Each of `wrt` must need a gradient
    /// (a [`Tape::param`], or computed from one); one that `output` does not depend on gets
    /// zeros.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let y = (x * x * x).sum(); // sum x^3
    /// let dx = tape.grad(y, &[x])[0]; // 3 x^2
    /// let ddx = tape.grad(dx.sum(), &[x])[0]; // 6 x
    /// assert_eq!(dx.value().to_vec(), vec![3.0, 12.0]);
    /// assert_eq!(ddx.value().to_vec(), vec![6.0, 12.0]);
    /// // A gradient penalty: the first gradient enters the loss; d/dx (9 x^4) = 36 x^3.
    /// let loss = y + dx.square().sum();
    /// assert_eq!(tape.backward(loss)[x].to_vec(), vec![3.0 + 36.0, 12.0 + 288.0]);
    /// ```
    ///
    /// # Panics
    /// As [`Tape::try_grad`]'s errors.
    #[track_caller]
    pub fn grad<'t>(&'t self, output: Var<'t, T>, wrt: &[Var<'t, T>]) -> Vec<Var<'t, T>> {
        self.try_grad(output, wrt).or_panic()
    }

    /// [`Tape::grad`], returning misuse as an error: an output of more than one element, a
    /// handle from another tape, an inference tape, a graph consumed by `backward`, a `wrt`
    /// that needs no gradient, or an op on the way whose VJP is first-order only
    /// ([`ErrorKind::FirstOrderOnly`]).
    #[track_caller]
    pub fn try_grad<'t>(
        &'t self,
        output: Var<'t, T>,
        wrt: &[Var<'t, T>],
    ) -> Result<Vec<Var<'t, T>>, Error> {
        for v in std::iter::once(&output).chain(wrt) {
            if !std::ptr::eq(v.tape, self) {
                return Err(Error::new("grad", ErrorKind::ForeignTape));
            }
        }
        let shape = output.shape();
        if shape.numel() != 1 {
            return Err(Error::bad_shape(
                "grad",
                &shape,
                "grad needs a one-element output: reduce it with .sum() or .mean() first",
            ));
        }
        if !self.recording {
            return Err(Error::bad_argument(
                "grad",
                "this tape was made with Tape::inference and records no VJPs",
            ));
        }
        if self.inner.borrow().consumed {
            return Err(Error::new("grad", ErrorKind::BackwardTwice));
        }
        for (i, v) in wrt.iter().enumerate() {
            if !v.requires_grad() {
                return Err(Error::bad_argument(
                    "grad",
                    format!(
                        "wrt[{i}] ({v:?}) needs no gradient: differentiate with respect to a \
                         tape.param or a value computed from one"
                    ),
                ));
            }
        }
        let seed = self.leaf("grad", Tensor::ones(shape), false);
        let grads = self.sweep_graph(output, seed, wrt)?;
        Ok(wrt
            .iter()
            .map(|v| match grads.get(v.id as usize).copied().flatten() {
                Some(g) => g,
                None => self.leaf("grad", Tensor::zeros(v.shape()), false),
            })
            .collect())
    }

    /// The reverse sweep of [`Tape::try_backward_with`]: runs every VJP the output depends
    /// on, latest first, and returns one slot per node (filled for parameters only). Each
    /// VJP and what it saved are dropped as soon as it has run.
    fn sweep(&self, output: usize, seed: Tensor<T>) -> Result<Vec<Option<Tensor<T>>>, Error> {
        let anomaly = self.anomaly.get();
        let mut grads: Vec<Option<Tensor<T>>> = vec![None; self.len()];
        grads[output] = Some(seed);
        let mut needs: SmallVec<[bool; 3]> = SmallVec::new();
        for id in (0..=output).rev() {
            let (vjp, g) = {
                let mut inner = self.inner.borrow_mut();
                let nodes = &mut inner.nodes;
                let Some(vjp) = nodes[id].vjp.take() else {
                    continue;
                };
                // An intermediate's gradient is needed only by its own VJP: take it to free it.
                let Some(g) = grads[id].take() else {
                    continue;
                };
                if anomaly {
                    check_backward(nodes, id, &g, || "gradient of the output".into())?;
                }
                needs.clear();
                needs.extend(
                    nodes[id]
                        .parents
                        .iter()
                        .map(|&p| nodes[p as usize].requires_grad),
                );
                (vjp, g)
            };
            let input_grads = match vjp {
                VjpKind::Tensor(f) => f(&g, &needs),
                VjpKind::Graph(f) => self.run_on_values(id, &f, g, &needs),
            };
            let inner = self.inner.borrow();
            let nodes = &inner.nodes;
            debug_assert_eq!(
                input_grads.len(),
                needs.len(),
                "the VJP of {} returned the wrong number of gradients",
                nodes[id].op
            );
            for (k, gi) in input_grads.0.into_iter().enumerate() {
                let (Some(gi), true) = (gi, needs[k]) else {
                    continue;
                };
                let p = nodes[id].parents[k] as usize;
                debug_assert_eq!(
                    gi.shape(),
                    nodes[p].value.shape(),
                    "the VJP of {} returned a gradient of the wrong shape for input {k}",
                    nodes[id].op
                );
                if anomaly {
                    check_input_gradient(nodes, id, k, &gi)?;
                }
                match &mut grads[p] {
                    Some(acc) => crate::kernels::elementwise::add_assign(acc.data_mut(), gi.data()),
                    slot => *slot = Some(gi),
                }
            }
        }
        // Parameters the output does not depend on get zeros, so `grads[w]` never panics.
        let inner = self.inner.borrow();
        for (id, node) in inner.nodes.iter().enumerate() {
            if node.is_param && grads[id].is_none() {
                grads[id] = Some(Tensor::zeros(node.value.shape().clone()));
            }
            if !node.is_param {
                grads[id] = None;
            }
        }
        Ok(grads)
    }

    /// Runs the differentiable VJP of node `id` for a plain backward: its ops record values
    /// only, and the nodes they add are dropped once their values are taken, so the tape is
    /// as it was.
    fn run_on_values(
        &self,
        id: usize,
        vjp: &GraphVjp<T>,
        g: Tensor<T>,
        needs: &[bool],
    ) -> Grads<T> {
        let mark = self.len();
        let grads = {
            let _mode = InVjp::enter(self, false);
            let g = self.leaf("grad", g, false);
            let args = self.vjp_args(id, g, needs);
            vjp(&args)
                .0
                .into_iter()
                .map(|v| v.map(Var::value))
                .collect()
        };
        self.inner.borrow_mut().nodes.truncate(mark);
        grads
    }

    /// The handles a differentiable VJP of node `id` is given.
    fn vjp_args<'t>(&'t self, id: usize, g: Var<'t, T>, needs: &[bool]) -> VjpArgs<'t, T> {
        let inner = self.inner.borrow();
        let mut inputs = SmallVec::new();
        for &p in &inner.nodes[id].parents {
            inputs.push(Var { tape: self, id: p });
        }
        VjpArgs {
            g,
            output: Var {
                tape: self,
                id: id as u32,
            },
            inputs,
            needs: needs.iter().copied().collect(),
        }
    }

    /// The reverse sweep of [`Tape::try_grad`]: the VJPs on the way from `output` to `wrt`
    /// run with their ops recorded, and the gradients add up as nodes. Returns each node's
    /// gradient, by id, up to `output`.
    #[track_caller]
    fn sweep_graph<'t>(
        &'t self,
        output: Var<'t, T>,
        seed: Var<'t, T>,
        wrt: &[Var<'t, T>],
    ) -> Result<Vec<Option<Var<'t, T>>>, Error> {
        let n = output.id as usize + 1;
        // Which nodes lie on a path to one of `wrt`: only their VJPs run.
        let mut reach = vec![false; n];
        for v in wrt {
            if let Some(r) = reach.get_mut(v.id as usize) {
                *r = true;
            }
        }
        {
            let inner = self.inner.borrow();
            for (id, node) in inner.nodes[..n].iter().enumerate() {
                if node.vjp.is_some() && node.parents.iter().any(|&p| reach[p as usize]) {
                    reach[id] = true;
                }
            }
        }
        let anomaly = self.anomaly.get();
        let mut grads: Vec<Option<Var<'t, T>>> = vec![None; n];
        grads[output.id as usize] = Some(seed);
        let _mode = InVjp::enter(self, true);
        for id in (0..n).rev() {
            let Some(g) = grads[id].filter(|_| reach[id]) else {
                continue;
            };
            let (vjp, needs) = {
                let inner = self.inner.borrow();
                let node = &inner.nodes[id];
                let needs: SmallVec<[bool; 3]> =
                    node.parents.iter().map(|&p| reach[p as usize]).collect();
                match &node.vjp {
                    Some(VjpKind::Graph(f)) if needs.contains(&true) => (f.clone(), needs),
                    Some(VjpKind::Tensor(_)) if needs.contains(&true) => {
                        return Err(Error {
                            op: "grad",
                            kind: Box::new(ErrorKind::FirstOrderOnly {
                                op: node.op,
                                at: node.location,
                            }),
                            location: std::panic::Location::caller(),
                        });
                    }
                    _ => continue,
                }
            };
            if anomaly {
                g.with_value(|gv| {
                    check_backward(&self.inner.borrow().nodes, id, gv, || {
                        "gradient of the output".into()
                    })
                })?;
            }
            let args = self.vjp_args(id, g, &needs);
            let input_grads = vjp(&args);
            for (k, gi) in input_grads.0.into_iter().enumerate() {
                let (Some(gi), true) = (gi, needs[k]) else {
                    continue;
                };
                let p = args.inputs[k].id as usize;
                if anomaly {
                    let nodes = &self.inner.borrow().nodes;
                    check_input_gradient(nodes, id, k, &nodes[gi.id as usize].value)?;
                }
                grads[p] = Some(match grads[p] {
                    Some(acc) => acc + gi,
                    None => gi,
                });
            }
        }
        Ok(grads)
    }
}

/// The gradients from one `backward`, indexed by the parameters' handles: `grads[w]`.
pub struct Gradients<T: Float> {
    grads: Vec<Option<Tensor<T>>>,
    tape: usize,
    generation: u64,
}

impl<T: Float> Gradients<T> {
    /// The gradient of a parameter, or `None` for a value that is not a parameter of the
    /// tape and recording this came from.
    pub fn get(&self, v: Var<'_, T>) -> Option<&Tensor<T>> {
        if v.tape as *const Tape<T> as usize != self.tape || v.tape.generation != self.generation {
            return None;
        }
        self.grads.get(v.id as usize).and_then(|g| g.as_ref())
    }

    /// Takes a parameter's gradient out, leaving `None`.
    pub fn take(&mut self, v: Var<'_, T>) -> Option<Tensor<T>> {
        self.get(v)?;
        self.grads[v.id as usize].take()
    }
}

impl<T: Float> std::ops::Index<Var<'_, T>> for Gradients<T> {
    type Output = Tensor<T>;
    /// The gradient of the parameter `v`.
    ///
    /// # Panics
    /// When `v` has no gradient here: it is not a parameter, or not of the tape that ran backward
    /// ([`Gradients::get`] returns `None` instead).
    #[track_caller]
    fn index(&self, v: Var<'_, T>) -> &Tensor<T> {
        match self.get(v) {
            Some(g) => g,
            None => panic!(
                "gradients: no gradient for {v:?}: only parameters (tape.param) of the tape that ran backward have one"
            ),
        }
    }
}

impl<T: Float> fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.grads
                    .iter()
                    .enumerate()
                    .filter_map(|(i, g)| g.as_ref().map(|g| (format!("%{i}"), g.shape().clone()))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    /// Each misuse of backward is refused with its message, located at the caller's line.
    fn located(e: &Error, line: u32) -> String {
        assert_eq!(
            (e.op, e.location.file(), e.location.line()),
            ("backward", "src/tape/backward.rs", line),
            "{e}"
        );
        e.to_string()
    }

    #[test]
    fn backward_of_a_non_scalar_is_refused() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::ones([2, 3]));
        let e = tape.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: shape [2, 3] refused: backward needs a one-element output: reduce it to one with .mean() or .sum() first (softmax, cross_entropy, bce, bce_with_logits and mse_loss return one value per row or element, unreduced); to backpropagate from every element with an explicit seed gradient, use backward_with (called at src/tape/backward.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn seed_of_another_shape_is_refused() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::ones([2, 3]));
        let e = tape.try_backward_with(x, Tensor::ones([3])).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: shapes [2, 3] and [3] are incompatible: the seed gradient must have the output's shape (called at src/tape/backward.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn inference_tape_is_refused() {
        let tape = Tape::<f32>::inference();
        let x = tape.input(Tensor::ones([1]));
        let e = tape.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: this tape was made with Tape::inference and records no VJPs (called at src/tape/backward.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn second_backward_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::ones([1]));
        let y = x * 2.0;
        let _ = tape.backward(y);
        let e = tape.try_backward(y).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: backward already ran on this tape and consumed its graph; record the forward again (called at src/tape/backward.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn output_of_another_tape_is_refused() {
        let (t1, t2) = (Tape::<f32>::new(), Tape::<f32>::new());
        let x = t2.param(Tensor::ones([1]));
        let e = t1.try_backward(x).unwrap_err();
        let s = located(&e, line!() - 1);
        assert!(
            s.starts_with(
                "backward: a handle from another tape was used on this one (called at src/tape/backward.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "backward: shape [2] refused: backward needs a one-element output")]
    fn plain_backward_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::ones([2]));
        let _ = tape.backward(x);
    }
}
