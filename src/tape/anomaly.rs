//! Anomaly mode's checks: every value an op records (forward) and every gradient a VJP
//! returns (backward) is scanned for NaN and infinity when [`Tape::detect_anomaly`] is on.

use super::{Node, Tape, Var};
use crate::error::{Error, ErrorKind};
use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::panic::Location;

impl<T: Float> Tape<T> {
    /// Anomaly mode's forward check: [`ErrorKind::NonFinite`] for a NaN or an infinity in
    /// `value`, located at the op's caller.
    pub(super) fn check_forward(
        &self,
        op: &'static str,
        inputs: &[Var<'_, T>],
        value: &Tensor<T>,
        location: &'static Location<'static>,
    ) -> Result<(), Error> {
        let shapes = || inputs.iter().map(|v| v.shape()).collect();
        non_finite(op, location, value, || "forward value".into(), shapes)
    }
}

/// Anomaly mode's backward check of a gradient at node `id`, located where it was recorded.
pub(super) fn check_backward<T: Float>(
    nodes: &[Node<T>],
    id: usize,
    g: &Tensor<T>,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    let node = &nodes[id];
    let inputs = || {
        node.parents
            .iter()
            .map(|&p| nodes[p as usize].value.shape().clone())
            .collect()
    };
    non_finite(node.op, node.location, g, what, inputs)
}

/// Anomaly mode's check of the gradient that node `id`'s VJP returned for its input `k`.
pub(super) fn check_input_gradient<T: Float>(
    nodes: &[Node<T>],
    id: usize,
    k: usize,
    g: &Tensor<T>,
) -> Result<(), Error> {
    let parent = &nodes[nodes[id].parents[k] as usize];
    let what = || {
        format!(
            "gradient for input {k} ({} {})",
            parent.op,
            parent.value.shape()
        )
    };
    check_backward(nodes, id, g, what)
}

/// [`ErrorKind::NonFinite`] of `op` at `location` when `t` holds a NaN or an infinity, with
/// its first four. The description and the input shapes are only built then: the check runs
/// on every value.
fn non_finite<T: Float>(
    op: &'static str,
    location: &'static Location<'static>,
    t: &Tensor<T>,
    what: impl FnOnce() -> String,
    inputs: impl FnOnce() -> Vec<Shape>,
) -> Result<(), Error> {
    if t.data().iter().all(|v| v.is_finite()) {
        return Ok(());
    }
    let bad = t.data().iter().enumerate().filter(|(_, v)| !v.is_finite());
    let kind = ErrorKind::NonFinite {
        what: what(),
        shape: t.shape().clone(),
        inputs: inputs(),
        count: bad.clone().count(),
        examples: bad.take(4).map(|(i, v)| (i, v.to_f64())).collect(),
    };
    Err(Error {
        op,
        kind: Box::new(kind),
        location,
    })
}
