//! What a tape holds and how it looks: [`TapeReport`] (memory by op, with what VJPs keep
//! for backward, declared through [`Held`]), the DOT graph and the one-line-per-node summary.

use super::{Inner, Tape};
use crate::float::Float;
use crate::tensor::Tensor;
use std::fmt;

impl<T: Float> Tape<T> {
    /// What the tape holds now: nodes by op, the bytes of their values, and the bytes its
    /// pending VJPs keep for backward (with the peak since the tape was made or cleared).
    /// Buffers shared by several nodes (a reshape and its input, a saved input) count once
    /// in the totals.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::ones([256]));
    /// let loss = x.tanh().square().sum();
    /// let before = tape.report();
    /// assert_eq!(before.nodes, 4);
    /// // tanh keeps its output and square keeps its input: the same 1 KiB buffer, once.
    /// assert_eq!(before.saved_bytes, 1024);
    /// tape.backward(loss);
    /// let after = tape.report();
    /// assert_eq!((after.saved_bytes, after.peak_saved_bytes), (0, 1024));
    /// println!("{after}");
    /// ```
    pub fn report(&self) -> TapeReport {
        let mut inner = self.inner.borrow_mut();
        let saved_bytes = inner.saved_bytes();
        inner.peak_saved = inner.peak_saved.max(saved_bytes);
        let Inner {
            nodes,
            scratch,
            peak_saved,
            held,
            ..
        } = &mut *inner;
        let mut ops: Vec<OpStats> = Vec::new();
        for n in nodes.iter() {
            let i = match ops.iter().position(|o| o.op == n.op) {
                Some(i) => i,
                None => {
                    ops.push(OpStats {
                        op: n.op,
                        nodes: 0,
                        value_bytes: 0,
                        saved_bytes: 0,
                    });
                    ops.len() - 1
                }
            };
            ops[i].nodes += 1;
            ops[i].value_bytes += std::mem::size_of_val(n.value.data());
        }
        for &(id, h) in held.iter() {
            let n = &nodes[id as usize];
            if n.vjp.is_some() {
                let i = ops.iter().position(|o| o.op == n.op).expect("listed above");
                ops[i].saved_bytes += h.bytes;
            }
        }
        TapeReport {
            nodes: nodes.len(),
            pending_vjps: nodes.iter().filter(|n| n.vjp.is_some()).count(),
            value_bytes: distinct_bytes(scratch, nodes.iter().map(|n| Held::tensor(&n.value))),
            saved_bytes,
            peak_saved_bytes: *peak_saved,
            ops,
        }
    }

    /// The graph in Graphviz's DOT language: one box per node with its id, op, shape and
    /// the line that recorded it, an edge from each input to its op; parameters are blue,
    /// constants grey. Render with `dot -Tsvg tape.dot -o tape.svg`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let w = tape.param(Tensor::ones([3, 2]));
    /// let x = tape.input(Tensor::ones([4, 3]));
    /// let y = x.matmul(w).relu();
    /// let dot = tape.to_dot();
    /// assert!(dot.starts_with("digraph tape {"));
    /// assert!(dot.contains("n1 -> n2;") && dot.contains("n0 -> n2;"));
    /// ```
    pub fn to_dot(&self) -> String {
        use std::fmt::Write;
        let inner = self.inner.borrow();
        let mut s = String::from(
            "digraph tape {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
        );
        for (i, n) in inner.nodes.iter().enumerate() {
            let file = n.location.file().rsplit('/').next().unwrap_or("");
            let style = if n.is_param {
                ", style=filled, fillcolor=\"#cfe3ff\""
            } else if n.parents.is_empty() {
                ", style=filled, fillcolor=\"#e8e8e8\""
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  n{i} [label=\"%{i} {}\\n{}\\n{file}:{}\"{style}];",
                n.op,
                n.value.shape(),
                n.location.line()
            );
            for p in &n.parents {
                let _ = writeln!(s, "  n{p} -> n{i};");
            }
        }
        s.push_str("}\n");
        s
    }

    /// One line per node: id, op, shape, inputs and the caller's location.
    pub fn summary(&self) -> String {
        let inner = self.inner.borrow();
        let mut s = String::new();
        for (i, n) in inner.nodes.iter().enumerate() {
            s += &format!(
                "%{i} = {}({}) {} at {}:{}\n",
                n.op,
                n.parents
                    .iter()
                    .map(|p| format!("%{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                n.value.shape(),
                n.location.file(),
                n.location.line()
            );
        }
        s
    }
}

impl<T: Float> Inner<T> {
    /// The bytes of the distinct buffers that pending VJPs keep.
    pub(super) fn saved_bytes(&mut self) -> usize {
        let Inner {
            nodes,
            scratch,
            held,
            ..
        } = self;
        let pending = held
            .iter()
            .filter(|(id, _)| nodes[*id as usize].vjp.is_some());
        distinct_bytes(scratch, pending.map(|&(_, h)| h))
    }
}

/// The bytes of the distinct buffers among `tensors` (a buffer shared by several counts once).
fn distinct_bytes(scratch: &mut Vec<(usize, usize)>, held: impl Iterator<Item = Held>) -> usize {
    scratch.clear();
    let mut owned = 0;
    for h in held {
        match h.buffer {
            0 => owned += h.bytes,
            b => scratch.push((b, h.bytes)),
        }
    }
    scratch.sort_unstable();
    scratch.dedup_by_key(|p| p.0);
    owned + scratch.iter().map(|p| p.1).sum::<usize>()
}

/// What a VJP keeps for backward, declared to [`Tape::record_saving`] so that
/// [`Tape::report`] can count it: a tensor (its buffer's address and size, so that a buffer
/// kept by several nodes counts once) or a buffer of another type (argmax indices). Only
/// the address and size are recorded; the VJP itself owns what it keeps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Held {
    buffer: usize,
    bytes: usize,
}

impl Held {
    /// A tensor the VJP keeps (a clone sharing its buffer).
    pub fn tensor<T: Float>(t: &Tensor<T>) -> Held {
        Held {
            buffer: t.data().as_ptr() as usize,
            bytes: std::mem::size_of_val(t.data()),
        }
    }

    /// Any other buffer the VJP owns, of `bytes` bytes.
    pub fn bytes(bytes: usize) -> Held {
        Held { buffer: 0, bytes }
    }
}

/// A snapshot of what a tape holds, from [`Tape::report`]; its `Display` is a table.
#[derive(Clone, Debug, PartialEq)]
pub struct TapeReport {
    /// Nodes recorded since the tape was made or cleared.
    pub nodes: usize,
    /// VJPs not yet run (and not freed): zero after `backward`.
    pub pending_vjps: usize,
    /// Bytes of the nodes' values (the arena holds them until [`Tape::clear`]).
    pub value_bytes: usize,
    /// Bytes the pending VJPs keep for backward; zero once `backward` has run.
    pub saved_bytes: usize,
    /// The most bytes held for backward at once since the tape was made or cleared.
    pub peak_saved_bytes: usize,
    /// Per op, in order of first appearance.
    pub ops: Vec<OpStats>,
}

/// One op's line in a [`TapeReport`].
#[derive(Clone, Debug, PartialEq)]
pub struct OpStats {
    /// The op's name (`"conv2d"`, `"param"`, ...).
    pub op: &'static str,
    /// How many nodes it recorded.
    pub nodes: usize,
    /// Bytes of those nodes' values.
    pub value_bytes: usize,
    /// Bytes their pending VJPs keep (a buffer kept by two ops counts under each).
    pub saved_bytes: usize,
}

fn human_bytes(b: usize) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

impl fmt::Display for TapeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tape: {} nodes, values {}, held for backward {} (peak {}), {} VJPs pending",
            self.nodes,
            human_bytes(self.value_bytes),
            human_bytes(self.saved_bytes),
            human_bytes(self.peak_saved_bytes),
            self.pending_vjps
        )?;
        writeln!(
            f,
            "{:<16} {:>6} {:>12} {:>12}",
            "op", "nodes", "values", "saved"
        )?;
        for o in &self.ops {
            writeln!(
                f,
                "{:<16} {:>6} {:>12} {:>12}",
                o.op,
                o.nodes,
                human_bytes(o.value_bytes),
                human_bytes(o.saved_bytes)
            )?;
        }
        Ok(())
    }
}
