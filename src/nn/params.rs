//! Named parameters that outlive the tapes: [`ParamStore`] holds them, [`ParamStore::bind`]
//! puts them on a tape for one step as a [`Bound`] set of handles, and [`Bound::grads`]
//! takes their gradients off as a [`ParamGrads`] for an optimiser.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::nn::init::Init;
use crate::shape::Shape;
use crate::tape::{Gradients, Tape, Var};
use crate::tensor::Tensor;
use rand::Rng;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// The handle of a parameter in its [`ParamStore`]: a small `Copy` value, valid for the
/// store that returned it (and its clones, and the [`Bound`] handles and [`ParamGrads`]
/// made from them). It carries its store's number, so that an id used on another store is
/// refused with a message naming both, instead of silently picking the parameter that
/// happens to sit at the same position there.
///
/// ```should_panic
/// use tapegrad::prelude::*;
/// use tapegrad::nn::ParamStore;
/// let mut encoder = ParamStore::<f32>::new();
/// let mut decoder = ParamStore::<f32>::new();
/// let _enc_w = encoder.insert("w", Tensor::zeros([2]));
/// let dec_w = decoder.insert("w", Tensor::zeros([3]));
/// let _ = &encoder[dec_w]; // panics: "ParamStore: ParamId 0 of store #.. is not a parameter of store #.. ..."
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId {
    store: u32,
    index: u32,
}

impl ParamId {
    /// The parameter's position in its store (insertion order, from 0).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// The number of the store that made this id (see [`ParamStore::number`]).
    pub fn store(self) -> u32 {
        self.store
    }
}

/// The next store's number: every [`ParamStore::new`] takes one, so ids of two stores differ.
static NEXT_STORE: AtomicU32 = AtomicU32::new(1);

/// The error for `id` used where the parameters of store number `here` are expected
/// (`what` describes them), or past their `len`.
#[track_caller]
fn bad_id(op: &'static str, id: ParamId, here: u32, what: &str, len: usize) -> Error {
    let why = if id.store != here {
        format!(
            "ParamId {} of store #{} is not a parameter of {what}; use the ids that store \
             returned (or look them up by name with by_name)",
            id.index, id.store
        )
    } else {
        format!(
            "ParamId {} is past the {len} parameters of {what} (an id added to a clone after \
             the copy was made?)",
            id.index
        )
    };
    Error::bad_argument(op, why)
}

/// Named parameters in insertion order: the weights of a model, kept between steps.
///
/// Names are unique (adding a name twice is an error: `try_add`/`try_insert` return it,
/// `add`/`insert` panic with it) and are the keys of the safetensors files that
/// `nn::save_safetensors` writes (feature `safetensors`).
///
/// # A training step
/// [`bind`](ParamStore::bind) the store to the tape, run the model on the handles, take the
/// gradients with [`Bound::grads`], then **clear the tape before the optimiser's step**:
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{Init, Optimizer, ParamStore, Sgd};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut store = ParamStore::<f32>::new();
/// let w = store.add("w", [3, 1], Init::GlorotUniform, &mut rng);
/// let b = store.add("b", [1], Init::Zeros, &mut rng);
/// let mut opt = Sgd::new(0.1);
///
/// let x = Tensor::from_vec(vec![1.0, 0.0, 2.0, 0.0, 1.0, -1.0], [2, 3]);
/// let y = Tensor::from_vec(vec![1.0, -1.0], [2, 1]);
/// let mut tape = Tape::new();
/// for _ in 0..200 {
///     let p = store.bind(&tape);
///     let pred = tape.input(x.clone()).matmul(p[w]) + p[b];
///     let loss = (pred - tape.input(y.clone())).square().mean();
///     let grads = p.grads(&tape.backward(loss));
///     tape.clear(); // the tape lets go of the parameters: the step updates them in place
///     opt.step(&mut store, &grads);
/// }
/// let tape = Tape::inference();
/// let p = store.bind(&tape);
/// let pred = tape.input(x).matmul(p[w]) + p[b];
/// assert!((pred.value()[[0, 0]] - 1.0).abs() < 1e-3);
/// ```
///
/// # Buffers
/// Some named tensors of a model are state, not weights: a batch norm's running mean and
/// variance. [`ParamStore::add_buffer`] adds one. A buffer is saved and loaded like a
/// parameter, but it is bound as a constant (no gradient), no optimiser moves it, and its
/// new value in a training step (set with [`Bound::set_buffer`], as `nn::BatchNorm2d`
/// does) travels in the [`ParamGrads`] and is written by the optimiser's step (or by
/// [`ParamStore::apply_buffers`]).
///
/// The tape holds a reference to every parameter's buffer (`bind` shares them, it does not
/// copy) until it is cleared or dropped. A step taken while it still holds them is correct
/// but copies each buffer before writing to it (tensors are copy-on-write); clearing first
/// makes the update in place.
pub struct ParamStore<T: Float = f32> {
    number: u32,
    names: Vec<String>,
    tensors: Vec<Tensor<T>>,
    /// Per entry, true for a buffer (state that no optimiser steps).
    buffer: Vec<bool>,
    index: HashMap<String, ParamId>,
}

impl<T: Float> Default for ParamStore<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Clone for ParamStore<T> {
    /// A copy sharing every buffer until either side writes to it. The copy keeps the
    /// store's number: the ids of the original index it too.
    fn clone(&self) -> Self {
        ParamStore {
            number: self.number,
            names: self.names.clone(),
            tensors: self.tensors.clone(),
            buffer: self.buffer.clone(),
            index: self.index.clone(),
        }
    }
}

impl<T: Float> ParamStore<T> {
    /// An empty store, with a number of its own (see [`ParamStore::number`]).
    pub fn new() -> Self {
        ParamStore {
            number: NEXT_STORE.fetch_add(1, Ordering::Relaxed),
            names: Vec::new(),
            tensors: Vec::new(),
            buffer: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds a parameter named `name` of `shape`, drawn from `init`, and returns its handle.
    ///
    /// Errors: `name` is already taken or is `__metadata__` (the one key the safetensors
    /// format reserves), or `init` refuses the shape (see [`Init::try_tensor`]).
    ///
    /// ```
    /// use tapegrad::nn::{Init, ParamStore};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut store = ParamStore::<f32>::new();
    /// store.add("conv1.weight", [8, 1, 3, 3], Init::HeUniform, &mut rng);
    /// let e = store.try_add("conv1.weight", [8], Init::Zeros, &mut rng).unwrap_err();
    /// assert!(e.to_string().contains("a parameter named \"conv1.weight\" already exists"));
    /// ```
    #[track_caller]
    pub fn try_add<R: Rng + ?Sized>(
        &mut self,
        name: impl Into<String>,
        shape: impl Into<Shape>,
        init: Init,
        rng: &mut R,
    ) -> Result<ParamId, Error> {
        let name = name.into();
        self.check_name("add", &name)?;
        let t = init.try_tensor(shape, rng)?;
        Ok(self.push(name, t, false))
    }

    /// [`ParamStore::try_add`], panicking on error.
    ///
    /// # Panics
    /// When `name` is taken or reserved, or `init` refuses the shape.
    #[track_caller]
    pub fn add<R: Rng + ?Sized>(
        &mut self,
        name: impl Into<String>,
        shape: impl Into<Shape>,
        init: Init,
        rng: &mut R,
    ) -> ParamId {
        self.try_add(name, shape, init, rng).or_panic()
    }

    /// Adds a parameter with a given value (shared, not copied) and returns its handle.
    ///
    /// Errors: `name` is already taken or is `__metadata__`.
    #[track_caller]
    pub fn try_insert(
        &mut self,
        name: impl Into<String>,
        value: Tensor<T>,
    ) -> Result<ParamId, Error> {
        let name = name.into();
        self.check_name("insert", &name)?;
        Ok(self.push(name, value, false))
    }

    /// [`ParamStore::try_insert`], panicking on error.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamStore;
    /// let mut store = ParamStore::<f64>::new();
    /// let b = store.insert("bias", Tensor::from_vec(vec![0.5, -0.5], [2]));
    /// assert_eq!(store[b].to_vec(), vec![0.5, -0.5]);
    /// assert_eq!(store.by_name("bias"), Some(b));
    /// ```
    ///
    /// # Panics
    /// When `name` is taken or reserved.
    #[track_caller]
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor<T>) -> ParamId {
        self.try_insert(name, value).or_panic()
    }

    /// Adds a buffer: a named tensor saved and loaded with the parameters but never
    /// trained (a batch norm's running statistics). It is bound as a constant, optimisers
    /// skip it, and a training step updates it through [`Bound::set_buffer`].
    ///
    /// Errors: `name` is already taken or is `__metadata__`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamStore;
    /// let mut store = ParamStore::<f32>::new();
    /// let mean = store.try_add_buffer("bn.running_mean", Tensor::zeros([4])).unwrap();
    /// assert!(store.is_buffer(mean));
    /// assert_eq!(store.trainable().count(), 0);
    /// ```
    #[track_caller]
    pub fn try_add_buffer(
        &mut self,
        name: impl Into<String>,
        value: Tensor<T>,
    ) -> Result<ParamId, Error> {
        let name = name.into();
        self.check_name("add_buffer", &name)?;
        Ok(self.push(name, value, true))
    }

    /// [`ParamStore::try_add_buffer`], panicking on error.
    ///
    /// # Panics
    /// When `name` is taken or reserved.
    #[track_caller]
    pub fn add_buffer(&mut self, name: impl Into<String>, value: Tensor<T>) -> ParamId {
        self.try_add_buffer(name, value).or_panic()
    }

    /// True when `id` is a buffer ([`ParamStore::add_buffer`]), false for a trainable
    /// parameter.
    ///
    /// # Panics
    /// When `id` comes from another store.
    #[track_caller]
    pub fn is_buffer(&self, id: ParamId) -> bool {
        self.buffer[self.position(id).or_panic()]
    }

    /// The handles of the trainable parameters (every entry but the buffers), in order:
    /// what an optimiser steps.
    pub fn trainable(&self) -> impl Iterator<Item = ParamId> + '_ {
        self.ids().filter(|id| !self.buffer[id.index()])
    }

    /// Writes the buffers' new values that `grads` carries (set in the training step with
    /// [`Bound::set_buffer`]). Every optimiser's `step` does this first; call it yourself
    /// in an optimiser of your own, or to keep the statistics of a step you do not take.
    ///
    /// # Panics
    /// When `grads` are of another store.
    #[track_caller]
    pub fn apply_buffers(&mut self, grads: &ParamGrads<T>) {
        for (id, value) in &grads.buffers {
            let i = self.position(*id).or_panic();
            self.tensors[i] = value.clone();
        }
    }

    #[track_caller]
    fn check_name(&self, method: &'static str, name: &str) -> Result<(), Error> {
        let op = match method {
            "add" => "ParamStore::add",
            "add_buffer" => "ParamStore::add_buffer",
            _ => "ParamStore::insert",
        };
        if let Some(&id) = self.index.get(name) {
            return Err(Error::bad_argument(
                op,
                format!(
                    "a parameter named {name:?} already exists (shape {}); names must be unique",
                    self.tensors[id.index()].shape()
                ),
            ));
        }
        if name == "__metadata__" {
            return Err(Error::bad_argument(
                op,
                "the name \"__metadata__\" is reserved by the safetensors format",
            ));
        }
        Ok(())
    }

    fn push(&mut self, name: String, value: Tensor<T>, buffer: bool) -> ParamId {
        let index =
            u32::try_from(self.tensors.len()).expect("a store holds at most 2^32 parameters");
        let id = ParamId {
            store: self.number,
            index,
        };
        self.index.insert(name.clone(), id);
        self.names.push(name);
        self.tensors.push(value);
        self.buffer.push(buffer);
        id
    }

    /// The value of a parameter, or `None` for an id of another store.
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.position(id).ok().map(|i| &self.tensors[i])
    }

    /// The value of a parameter, writable (`store[id]` and `&mut store[id]` panic instead of
    /// returning `None`). Keep its shape: an optimiser's state was sized by it.
    pub fn get_mut(&mut self, id: ParamId) -> Option<&mut Tensor<T>> {
        let i = self.position(id).ok()?;
        Some(&mut self.tensors[i])
    }

    /// The handle of the parameter named `name`.
    pub fn by_name(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).copied()
    }

    /// The name of a parameter.
    ///
    /// # Panics
    /// When `id` comes from another store.
    #[track_caller]
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[self.position(id).or_panic()]
    }

    /// The store's number, unique in the process (clones share it): the ids it returns
    /// carry it, and messages about a foreign id name the stores by it.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// `(name, value)` of every parameter, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Tensor<T>)> + '_ {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    /// The handles of every parameter, in insertion order.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = ParamId> + use<T> {
        let store = self.number;
        // `push` made every index fit in a u32.
        (0..self.tensors.len() as u32).map(move |index| ParamId { store, index })
    }

    /// The number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The number of scalars in all parameters together, buffers included.
    ///
    /// ```
    /// use tapegrad::nn::{Init, ParamStore};
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let mut store = ParamStore::<f32>::new();
    /// store.add("fc.w", [784, 10], Init::GlorotUniform, &mut rng);
    /// store.add("fc.b", [10], Init::Zeros, &mut rng);
    /// assert_eq!((store.len(), store.num_elements()), (2, 7850));
    /// ```
    pub fn num_elements(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }

    /// One line per parameter (name, shape, number of scalars) and a total.
    pub fn summary(&self) -> String {
        let width = self.names.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut s = String::new();
        for ((name, t), &buffer) in self.iter().zip(&self.buffer) {
            s += &format!(
                "{name:<width$}  {:<16} {:>10}{}\n",
                t.shape().to_string(),
                t.numel(),
                if buffer { "  (buffer)" } else { "" }
            );
        }
        s += &format!(
            "{} parameters, {} scalars\n",
            self.len(),
            self.num_elements()
        );
        s
    }

    /// Puts every parameter on `tape` as a trainable leaf (`tape.param`, sharing the
    /// buffer, no copy) and every buffer as a constant (`tape.input`), and returns the
    /// handles, indexed by [`ParamId`]: `p[w]`.
    ///
    /// On an inference tape ([`Tape::inference`]) the leaves need no gradient and the same
    /// model code runs for evaluation.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamStore;
    /// let mut store = ParamStore::<f64>::new();
    /// let w = store.insert("w", Tensor::from_vec(vec![2.0, -1.0], [2, 1]));
    /// let tape = Tape::new();
    /// let p = store.bind(&tape);
    /// let x = tape.input(Tensor::from_vec(vec![1.0, 3.0], [1, 2]));
    /// let y = x.matmul(p[w]).sum();
    /// assert_eq!(y.value().item(), -1.0);
    /// let grads = p.grads(&tape.backward(y));
    /// assert_eq!(grads[w].to_vec(), vec![1.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn bind<'t>(&self, tape: &'t Tape<T>) -> Bound<'t, T> {
        let mut vars = Vec::with_capacity(self.tensors.len());
        for (t, &buffer) in self.tensors.iter().zip(&self.buffer) {
            vars.push(match buffer {
                false => tape.param(t.clone()),
                true => tape.input(t.clone()),
            });
        }
        self.bound(tape, vars)
    }

    fn bound<'t>(&self, tape: &'t Tape<T>, vars: Vec<Var<'t, T>>) -> Bound<'t, T> {
        Bound {
            tape,
            vars,
            buffer: self.buffer.clone(),
            updates: RefCell::new(Vec::new()),
            store: self.number,
        }
    }

    /// A copy in another float type, under the same number: the ids of this store index the
    /// copy too. The usual use is an `f64` copy of an `f32` model for
    /// [`gradcheck_model`](crate::gradcheck::gradcheck_model).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamStore;
    /// let mut store = ParamStore::<f32>::new();
    /// let w = store.insert("w", Tensor::from_vec(vec![0.5, -2.0], [2]));
    /// let wide: ParamStore<f64> = store.cast();
    /// assert_eq!(wide[w].to_vec(), vec![0.5, -2.0]);
    /// assert_eq!(wide.name(w), "w");
    /// ```
    pub fn cast<U: Float>(&self) -> ParamStore<U> {
        ParamStore {
            number: self.number,
            names: self.names.clone(),
            tensors: self.tensors.iter().map(|t| t.cast()).collect(),
            buffer: self.buffer.clone(),
            index: self.index.clone(),
        }
    }

    /// This store bound with its trainable parameters as the handles `params` already on
    /// `tape` (one per parameter, in store order) and its buffers as constants, for checks
    /// that put perturbed values on the tape themselves.
    pub(crate) fn bound_to<'t>(&self, tape: &'t Tape<T>, params: Vec<Var<'t, T>>) -> Bound<'t, T> {
        let mut params = params.into_iter();
        let vars = (self.tensors.iter().zip(&self.buffer))
            .map(|(t, &buffer)| match buffer {
                true => tape.input(t.clone()),
                false => params.next().expect("one handle per trainable parameter"),
            })
            .collect();
        self.bound(tape, vars)
    }

    /// Every entry's tensor, writable, in store order (buffers included).
    #[cfg(feature = "mpi")]
    pub(crate) fn tensors_mut(&mut self) -> &mut [Tensor<T>] {
        &mut self.tensors
    }

    /// Where `id`'s parameter sits, or the error naming both stores for a foreign id.
    #[track_caller]
    fn position(&self, id: ParamId) -> Result<usize, Error> {
        if id.store == self.number && id.index() < self.tensors.len() {
            return Ok(id.index());
        }
        let what = format!("store #{} ({} parameters)", self.number, self.len());
        Err(bad_id("ParamStore", id, self.number, &what, self.len()))
    }
}

impl<T: Float> std::ops::Index<ParamId> for ParamStore<T> {
    type Output = Tensor<T>;
    /// The value of parameter `id`.
    ///
    /// # Panics
    /// When `id` is not a parameter of this store.
    #[track_caller]
    fn index(&self, id: ParamId) -> &Tensor<T> {
        &self.tensors[self.position(id).or_panic()]
    }
}

impl<T: Float> std::ops::IndexMut<ParamId> for ParamStore<T> {
    /// The value of parameter `id`.
    ///
    /// # Panics
    /// When `id` is not a parameter of this store.
    #[track_caller]
    fn index_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        let i = self.position(id).or_panic();
        &mut self.tensors[i]
    }
}

impl<T: Float> fmt::Debug for ParamStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, t)| (n, t.shape())))
            .finish()
    }
}

/// The parameters of a [`ParamStore`] on one tape: `p[id]` (or `p.var(id)`) is the handle
/// the model uses. Made by [`ParamStore::bind`].
pub struct Bound<'t, T: Float = f32> {
    tape: &'t Tape<T>,
    vars: Vec<Var<'t, T>>,
    /// Per entry, true for a buffer.
    buffer: Vec<bool>,
    /// The buffers' values set in this step, latest last per id.
    updates: RefCell<Vec<(ParamId, Tensor<T>)>>,
    /// The number of the store bound.
    store: u32,
}

impl<'t, T: Float> Bound<'t, T> {
    /// The handle of a parameter on the tape.
    ///
    /// # Panics
    /// When `id` comes from another store.
    #[track_caller]
    pub fn var(&self, id: ParamId) -> Var<'t, T> {
        self[id]
    }

    /// The tape the parameters are on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The number of parameters.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// True in training mode: the tape's mode ([`Tape::is_training`]), which layers such as
    /// batch norm and dropout follow.
    pub fn is_training(&self) -> bool {
        self.tape.is_training()
    }

    /// The current value of buffer `id`: the one set in this step by
    /// [`Bound::set_buffer`], or the store's.
    ///
    /// # Panics
    /// When `id` is not a buffer of the bound store.
    #[track_caller]
    pub fn buffer(&self, id: ParamId) -> Tensor<T> {
        let i = self.buffer_position("Bound::buffer", id).or_panic();
        let updates = self.updates.borrow();
        match updates.iter().rev().find(|(u, _)| *u == id) {
            Some((_, t)) => t.clone(),
            None => self.vars[i].value(),
        }
    }

    /// Sets buffer `id`'s value for the rest of this step and for the store: the
    /// [`ParamGrads`] that [`Bound::grads`] returns carry it, and the optimiser's step
    /// writes it. What a batch norm does with its running statistics in training.
    ///
    /// Errors: `id` is not a buffer of the bound store, or `value` has another shape.
    #[track_caller]
    pub fn try_set_buffer(&self, id: ParamId, value: Tensor<T>) -> Result<(), Error> {
        const OP: &str = "Bound::set_buffer";
        let i = self.buffer_position(OP, id)?;
        let old = self.vars[i].shape();
        if value.shape() != &old {
            let why = format!(
                "the buffer has shape {old}, the new value {}",
                value.shape()
            );
            return Err(Error::bad_argument(OP, why));
        }
        let mut updates = self.updates.borrow_mut();
        match updates.iter_mut().find(|(u, _)| *u == id) {
            Some(slot) => slot.1 = value,
            None => updates.push((id, value)),
        }
        Ok(())
    }

    /// [`Bound::try_set_buffer`], panicking on error.
    ///
    /// # Panics
    /// When `id` is not a buffer of the bound store, or `value` has another shape.
    #[track_caller]
    pub fn set_buffer(&self, id: ParamId, value: Tensor<T>) {
        self.try_set_buffer(id, value).or_panic()
    }

    /// Where buffer `id` sits, or the error for a parameter or a foreign id.
    #[track_caller]
    fn buffer_position(&self, op: &'static str, id: ParamId) -> Result<usize, Error> {
        if id.store != self.store || id.index() >= self.vars.len() {
            let what = format!("the bound store #{}", self.store);
            return Err(bad_id(op, id, self.store, &what, self.len()));
        }
        if !self.buffer[id.index()] {
            let why = format!(
                "ParamId {} is a trainable parameter, not a buffer (add_buffer makes one)",
                id.index
            );
            return Err(Error::bad_argument(op, why));
        }
        Ok(id.index())
    }

    /// True when the store was empty.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The gradient of every parameter, in store order, owned (no longer tied to the tape),
    /// with the buffers' new values of this step. A buffer's gradient is zero.
    ///
    /// Errors: `grads` does not come from the `backward` of this tape's current recording
    /// (another tape, a recording since cleared, or a backward run before this `bind`).
    #[track_caller]
    pub fn try_grads(&self, grads: &Gradients<T>) -> Result<ParamGrads<T>, Error> {
        let mut out = Vec::with_capacity(self.vars.len());
        for (i, &v) in self.vars.iter().enumerate() {
            if self.buffer[i] {
                out.push(Tensor::zeros(v.shape()));
                continue;
            }
            match grads.get(v) {
                Some(g) => out.push(g.clone()),
                None => {
                    return Err(Error::bad_argument(
                        "Bound::grads",
                        format!(
                            "the gradients have no entry for parameter {i} ({v:?}): they come from \
                             another tape, from a recording since cleared, or from a backward that \
                             ran before this bind"
                        ),
                    ));
                }
            }
        }
        Ok(ParamGrads {
            grads: out,
            buffers: self.updates.borrow().clone(),
            store: Some(self.store),
        })
    }

    /// [`Bound::try_grads`], panicking on error.
    ///
    /// # Panics
    /// When `grads` does not come from this tape's current recording.
    #[track_caller]
    pub fn grads(&self, grads: &Gradients<T>) -> ParamGrads<T> {
        self.try_grads(grads).or_panic()
    }
}

impl<'t, T: Float> std::ops::Index<ParamId> for Bound<'t, T> {
    type Output = Var<'t, T>;
    /// The handle bound for parameter `id`.
    ///
    /// # Panics
    /// When `id` is not a parameter of the bound store.
    #[track_caller]
    fn index(&self, id: ParamId) -> &Var<'t, T> {
        match self.vars.get(id.index()) {
            Some(v) if id.store == self.store => v,
            _ => {
                let what = format!("the bound store #{}", self.store);
                Err(bad_id("Bound", id, self.store, &what, self.len())).or_panic()
            }
        }
    }
}

impl<T: Float> fmt::Debug for Bound<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.vars).finish()
    }
}

/// The gradients of a store's parameters from one step, in store order, indexed by
/// [`ParamId`]. Made by [`Bound::grads`] (or [`ParamGrads::from_tensors`]), read by an
/// [`Optimizer`](crate::nn::Optimizer).
#[derive(Clone)]
pub struct ParamGrads<T: Float = f32> {
    grads: Vec<Tensor<T>>,
    /// The buffers' new values from the step ([`Bound::set_buffer`]).
    buffers: Vec<(ParamId, Tensor<T>)>,
    /// The number of the store whose parameters these are; `None` for gradients given
    /// directly, which any store's ids index.
    store: Option<u32>,
}

impl<T: Float> ParamGrads<T> {
    /// Gradients given directly, one per parameter in store order (for tests, or gradients
    /// computed elsewhere).
    pub fn from_tensors(grads: Vec<Tensor<T>>) -> Self {
        ParamGrads {
            grads,
            buffers: Vec::new(),
            store: None,
        }
    }

    /// The gradient of a parameter, or `None` for an id of another store (or past these
    /// gradients).
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.position(id).ok().map(|i| &self.grads[i])
    }

    /// Where `id`'s gradient sits, or the error naming both stores for a foreign id.
    #[track_caller]
    fn position(&self, id: ParamId) -> Result<usize, Error> {
        let here = self.store.unwrap_or(id.store);
        if id.store == here && id.index() < self.grads.len() {
            return Ok(id.index());
        }
        let what = match self.store {
            Some(s) => format!("the gradients of store #{s} ({} parameters)", self.len()),
            None => format!("these gradients ({} given)", self.len()),
        };
        Err(bad_id("ParamGrads", id, here, &what, self.len()))
    }

    /// Every gradient, in store order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Tensor<T>> + '_ {
        self.grads.iter()
    }

    /// The number of gradients.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// The gradients and the buffers' new values, writable (the order of each is that of
    /// the store).
    #[cfg(feature = "mpi")]
    pub(crate) fn parts_mut(&mut self) -> (&mut [Tensor<T>], impl Iterator<Item = &mut Tensor<T>>) {
        (&mut self.grads, self.buffers.iter_mut().map(|(_, t)| t))
    }

    /// The gradients as tensors, in store order.
    pub fn into_tensors(self) -> Vec<Tensor<T>> {
        self.grads
    }

    /// The L2 norm of all gradients taken together as one vector (accumulated in `f64`).
    pub fn norm(&self) -> f64 {
        self.grads
            .iter()
            .flat_map(|g| g.data())
            .map(|v| v.to_f64() * v.to_f64())
            .sum::<f64>()
            .sqrt()
    }

    /// Scales all gradients down so that their joint L2 norm is at most `max_norm`, and
    /// returns the norm before clipping: PyTorch's `clip_grad_norm_` (the factor is
    /// `max_norm / (norm + 1e-6)`, applied only when below 1).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamGrads;
    /// let mut g = ParamGrads::from_tensors(vec![Tensor::<f64>::from_vec(vec![3.0, 4.0], [2])]);
    /// assert_eq!(g.clip_norm(1.0), 5.0);
    /// assert!((g.norm() - 1.0).abs() < 1e-6);
    /// ```
    ///
    /// # Panics
    /// When `max_norm` is negative or NaN.
    #[track_caller]
    pub fn clip_norm(&mut self, max_norm: f64) -> f64 {
        assert!(
            max_norm >= 0.0,
            "clip_norm: max_norm must be >= 0, not {max_norm}"
        );
        let norm = self.norm();
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            let c = T::from_f64(coef);
            for g in &mut self.grads {
                g.data_mut().iter_mut().for_each(|v| *v *= c);
            }
        }
        norm
    }

    /// Clamps every gradient element into `[−max, max]` (PyTorch's `clip_grad_value_`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamGrads;
    /// let mut g = ParamGrads::from_tensors(vec![Tensor::from_vec(vec![-3.0, 0.5, 2.0], [3])]);
    /// g.clip_value(1.0);
    /// assert_eq!(g.iter().next().unwrap().to_vec(), vec![-1.0, 0.5, 1.0]);
    /// ```
    ///
    /// # Panics
    /// When `max` is negative or NaN.
    #[track_caller]
    pub fn clip_value(&mut self, max: f64) {
        assert!(max >= 0.0, "clip_value: max must be >= 0, not {max}");
        let (lo, hi) = (T::from_f64(-max), T::from_f64(max));
        for g in &mut self.grads {
            g.data_mut().iter_mut().for_each(|v| {
                // Comparisons, so that NaN stays NaN as in PyTorch.
                if *v < lo {
                    *v = lo;
                } else if *v > hi {
                    *v = hi;
                }
            });
        }
    }
}

impl<T: Float> std::ops::Index<ParamId> for ParamGrads<T> {
    type Output = Tensor<T>;
    /// The gradient of parameter `id`.
    ///
    /// # Panics
    /// When `id` is of another store than these gradients, or past them.
    #[track_caller]
    fn index(&self, id: ParamId) -> &Tensor<T> {
        &self.grads[self.position(id).or_panic()]
    }
}

impl<T: Float> fmt::Debug for ParamGrads<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.grads.iter().map(Tensor::shape))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn store() -> (ParamStore<f64>, ParamId, ParamId) {
        let mut rng = StdRng::seed_from_u64(0);
        let mut s = ParamStore::new();
        let w = s.add("w", [3, 2], Init::GlorotUniform, &mut rng);
        let b = s.add("b", [2], Init::Constant(0.5), &mut rng);
        (s, w, b)
    }

    #[test]
    fn names_order_and_counts() {
        let (mut s, w, b) = store();
        let c = s.insert("c", Tensor::scalar(1.0));
        assert_eq!((w.index(), b.index(), c.index()), (0, 1, 2));
        assert_eq!(s.len(), 3);
        assert_eq!(s.num_elements(), 6 + 2 + 1);
        assert_eq!(s.by_name("b"), Some(b));
        assert_eq!(s.by_name("nope"), None);
        assert_eq!(s.name(w), "w");
        let names: Vec<&str> = s.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["w", "b", "c"]);
        assert_eq!(s.ids().collect::<Vec<_>>(), vec![w, b, c]);
        assert_eq!(s[b].to_vec(), vec![0.5, 0.5]);
        s[b].data_mut()[0] = 2.0;
        s.get_mut(c).unwrap().data_mut()[0] = 3.0;
        assert_eq!(s.get(b).unwrap().to_vec(), vec![2.0, 0.5]);
        assert_eq!(s[c].item(), 3.0);
        assert!(s.summary().ends_with("3 parameters, 9 scalars\n"));
        assert_eq!(format!("{s:?}"), "{\"w\": [3, 2], \"b\": [2], \"c\": []}");
    }

    #[test]
    fn duplicate_and_reserved_names_are_errors() {
        let (mut s, _, _) = store();
        let mut rng = StdRng::seed_from_u64(0);
        let e = s.try_add("w", [3], Init::Zeros, &mut rng).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "ParamStore::add: a parameter named \"w\" already exists (shape [3, 2]); names must be unique (called at src/nn/params.rs:"
            ),
            "{e}"
        );
        let e = s.try_insert("b", Tensor::zeros([2])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "ParamStore::insert: a parameter named \"b\" already exists (shape [2])"
            ),
            "{e}"
        );
        let e = s
            .try_insert("__metadata__", Tensor::zeros([2]))
            .unwrap_err();
        assert!(
            e.to_string().contains("reserved by the safetensors format"),
            "{e}"
        );
        // A refused add leaves the store as it was.
        assert_eq!(s.len(), 2);
        let e = s.try_add("v", [4], Init::HeNormal, &mut rng).unwrap_err();
        assert!(e.to_string().starts_with("init: shape [4] refused"), "{e}");
        assert_eq!(s.len(), 2);
        assert_eq!(s.by_name("v"), None);
    }

    #[test]
    #[should_panic(expected = "ParamStore::insert: a parameter named \"w\" already exists")]
    fn plain_insert_panics_on_duplicates() {
        let (mut s, _, _) = store();
        s.insert("w", Tensor::zeros([1]));
    }

    /// The panic message of `f`.
    fn panic_message(f: impl FnOnce()) -> String {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn a_foreign_id_is_refused_naming_both_stores() {
        // Two stores of the same layout: the foreign id's index is in range in both, and
        // used to pick the other store's parameter without a word.
        let (s, w, _) = store();
        let (other, ow, ob) = store();
        let (here, there) = (s.number(), other.number());
        assert_ne!(here, there);
        assert_eq!((ow.store(), w.store()), (there, here));
        let want = format!(
            "ParamStore: ParamId 1 of store #{there} is not a parameter of store #{here} (2 parameters); use the ids that store returned (or look them up by name with by_name) (called at src/nn/params.rs:"
        );
        let msg = panic_message(|| {
            let _ = &s[ob];
        });
        assert!(msg.starts_with(&want), "{msg}");
        assert!(s.get(ob).is_none() && s.get(w).is_some());
        let mut s2 = s.clone();
        assert!(s2.get_mut(ow).is_none());
        assert_eq!(s2.name(w), "w", "a clone keeps the store's ids");
        let msg = panic_message(|| {
            let _ = s.name(ow);
        });
        assert!(msg.starts_with("ParamStore: ParamId 0 of store #"), "{msg}");

        // The bound handles and the gradients know their store too.
        let tape = Tape::new();
        let p = s.bind(&tape);
        let msg = panic_message(|| {
            let _ = p[ow];
        });
        assert!(
            msg.starts_with(&format!(
                "Bound: ParamId 0 of store #{there} is not a parameter of the bound store #{here}"
            )),
            "{msg}"
        );
        let g = p.grads(&tape.backward(p[w].sum()));
        assert!(g.get(ow).is_none() && g.get(w).is_some());
        let msg = panic_message(|| {
            let _ = &g[ob];
        });
        assert!(
            msg.starts_with(&format!(
                "ParamGrads: ParamId 1 of store #{there} is not a parameter of the gradients of store #{here} (2 parameters)"
            )),
            "{msg}"
        );
        // Gradients given directly take any store's ids, in range.
        let given = ParamGrads::from_tensors(vec![Tensor::<f64>::zeros([1])]);
        assert!(given.get(ow).is_some() && given.get(ob).is_none());
        let msg = panic_message(|| {
            let _ = &given[ob];
        });
        assert!(
            msg.starts_with(
                "ParamGrads: ParamId 1 is past the 1 parameters of these gradients (1 given)"
            ),
            "{msg}"
        );
    }

    #[test]
    fn bind_shares_and_grads_follow_store_order() {
        let (s, w, b) = store();
        let tape = Tape::new();
        let p = s.bind(&tape);
        assert_eq!(p.len(), 2);
        assert!(p[w].value().shares_buffer(&s[w]), "bind must not copy");
        assert!(p[w].requires_grad());
        let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3]));
        // loss = sum(x w + b) -> dw = x^T 1, db = 1
        let loss = (x.matmul(p.var(w)) + p[b]).sum();
        let g = p.grads(&tape.backward(loss));
        assert_eq!(g.len(), 2);
        assert_eq!(g[w].to_vec(), vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        assert_eq!(g[b].to_vec(), vec![1.0, 1.0]);
        assert_eq!(format!("{g:?}"), "[[3, 2], [2]]");
    }

    #[test]
    fn bind_on_an_inference_tape() {
        let (s, w, b) = store();
        let tape = Tape::inference();
        let p = s.bind(&tape);
        assert!(!p[w].requires_grad());
        let y = tape.input(Tensor::ones([1, 3])).matmul(p[w]) + p[b];
        let expect: Vec<f64> = (0..2)
            .map(|j| (0..3).map(|i| s[w][[i, j]]).sum::<f64>() + 0.5)
            .collect();
        assert_eq!(y.value().to_vec(), expect);
    }

    #[test]
    fn grads_from_elsewhere_are_refused() {
        let (s, _, _) = store();
        let mut tape = Tape::new();
        let other = Tape::new();
        let p = s.bind(&tape);
        let q = s.bind(&other);
        let ids: Vec<ParamId> = s.ids().collect();
        let g_other = other.backward(q[ids[1]].sum());
        let e = p.try_grads(&g_other).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "Bound::grads: the gradients have no entry for parameter 0 (Var(%0 = param [3, 2])): they come from another tape"
            ),
            "{e}"
        );
        // A backward that ran before a second bind does not cover the second bind's leaves.
        let g = tape.backward(p[ids[0]].sum());
        let p2 = s.bind(&tape);
        assert!(p.try_grads(&g).is_ok());
        assert!(p2.try_grads(&g).is_err());
        // After a clear, old gradients belong to an old recording.
        tape.clear();
        let p3 = s.bind(&tape);
        assert!(p3.try_grads(&g).is_err());
    }

    #[test]
    fn clear_before_step_lets_the_update_write_in_place() {
        let (mut s, w, _) = store();
        let mut tape = Tape::new();
        let p = s.bind(&tape);
        let grads = p.grads(&tape.backward(p[w].sum()));
        // The tape still holds the parameter's buffer: a write now would copy it.
        assert!(p[w].value().shares_buffer(&s[w]));
        tape.clear();
        let before = s[w].data().as_ptr();
        s[w].data_mut()[0] -= grads[w].data()[0];
        assert_eq!(
            s[w].data().as_ptr(),
            before,
            "after clear the update is in place"
        );
    }

    #[test]
    fn clip_norm_as_pytorch() {
        let mut g = ParamGrads::from_tensors(vec![
            Tensor::<f64>::from_vec(vec![3.0, 0.0], [2]),
            Tensor::from_vec(vec![4.0], [1]),
        ]);
        assert_eq!(g.norm(), 5.0);
        // Below the limit: untouched.
        assert_eq!(g.clip_norm(10.0), 5.0);
        let first = ParamStore::<f64>::new().insert("a", Tensor::zeros([2]));
        assert_eq!(g[first].to_vec(), vec![3.0, 0.0]);
        assert_eq!(g.clip_norm(2.5), 5.0);
        let c = 2.5 / (5.0 + 1e-6);
        assert_eq!(g[first].to_vec(), vec![3.0 * c, 0.0]);
        assert_eq!(g.into_tensors()[1].to_vec(), vec![4.0 * c]);
    }
}
