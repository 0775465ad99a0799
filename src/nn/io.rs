//! Saving and loading a [`ParamStore`] in the [safetensors] format, the one
//! `safetensors.torch.save_file` and `load_file` read and write.
//!
//! A store is written in its own element type (`F32` for `ParamStore<f32>`, `F64` for
//! `ParamStore<f64>`), one tensor per parameter under its name, with the insertion order kept
//! in the header's `__metadata__` (key `tapegrad.order`) so that loading gives the same
//! [`ParamId`](crate::nn::ParamId)s back. Loading accepts `F32` and `F64` tensors into a store
//! of either type: `F32 → f64` is exact, `F64 → f32` rounds to nearest. `I64` and `I32`
//! tensors (PyTorch's `num_batches_tracked`) load when every value is exact in the store's
//! type. Other dtypes (`F16`, `BF16`, `U8`, ...) are refused with
//! [`IoErrorKind::UnsupportedDtype`].
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::nn::{ParamStore, load_safetensors};
//! let mut store = ParamStore::<f32>::new();
//! store.insert("w", Tensor::from_vec(vec![0.5, -1.5], [2, 1]));
//! let path = std::env::temp_dir().join("tapegrad-doc-io.safetensors");
//! store.save(&path)?;
//! let back: ParamStore<f32> = load_safetensors(&path)?;
//! assert_eq!(back[back.by_name("w").unwrap()].to_vec(), vec![0.5, -1.5]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), tapegrad::nn::IoError>(())
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use crate::float::Float;
use crate::nn::params::ParamStore;
use crate::shape::Shape;
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, Metadata, SafeTensorError, SafeTensors, View};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The `__metadata__` key under which the store's insertion order is saved (names joined by
/// newlines).
pub const ORDER_KEY: &str = "tapegrad.order";

/// Why saving or loading parameters failed: the file, and what was wrong with it. The
/// message names the file, and the tensor when one is at fault.
#[derive(Debug)]
pub struct IoError {
    /// The file read or written.
    pub path: PathBuf,
    /// What was wrong (boxed, so that `Result`s stay small on the success path).
    pub kind: Box<IoErrorKind>,
}

/// What was wrong with a file of parameters.
#[derive(Debug)]
pub enum IoErrorKind {
    /// Reading or writing the file failed: it does not exist, a directory is missing,
    /// permission was denied.
    Io {
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a well-formed safetensors file (too short, a header length or
    /// offsets beyond the end of the file, invalid JSON, overlapping or reversed offsets, a
    /// shape whose size overflows, a byte length that disagrees with dtype and shape; the
    /// message names the tensor at fault).
    NotSafetensors {
        /// What is wrong with it.
        why: String,
    },
    /// A tensor's dtype is neither `F32` nor `F64`.
    UnsupportedDtype {
        /// The tensor's name.
        tensor: String,
        /// The dtype, as the file names it (`"BF16"`, `"I64"`, ...).
        dtype: String,
    },
    /// A tensor's shape in the file differs from that of the parameter it should fill.
    ShapeMismatch {
        /// The tensor's name.
        tensor: String,
        /// The parameter's shape.
        expected: Shape,
        /// The shape in the file.
        found: Shape,
    },
    /// A parameter of the store has no tensor of its name in the file.
    MissingTensor {
        /// The parameter's name.
        tensor: String,
        /// The names the file holds, in offset order.
        available: Vec<String>,
    },
}

impl IoError {
    fn new(path: &Path, kind: IoErrorKind) -> Self {
        IoError {
            path: path.to_path_buf(),
            kind: Box::new(kind),
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &*self.kind {
            IoErrorKind::Io { action, source } => write!(f, "cannot {action} {path}: {source}"),
            IoErrorKind::NotSafetensors { why } => {
                write!(f, "{path} is not a safetensors file: {why}")
            }
            IoErrorKind::UnsupportedDtype { tensor, dtype } => write!(
                f,
                "{path}: tensor {tensor:?} has dtype {dtype}; only F32, F64 and exact I64 and I32 can be loaded"
            ),
            IoErrorKind::ShapeMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "{path}: tensor {tensor:?} has shape {found} in the file but the parameter has shape {expected}"
            ),
            IoErrorKind::MissingTensor { tensor, available } => {
                write!(
                    f,
                    "{path}: no tensor named {tensor:?} in the file; it holds "
                )?;
                const SHOWN: usize = 8;
                for (i, n) in available.iter().take(SHOWN).enumerate() {
                    write!(f, "{}{n:?}", if i > 0 { ", " } else { "" })?;
                }
                match available.len() {
                    0 => write!(f, "no tensor"),
                    n if n > SHOWN => write!(f, " and {} more", n - SHOWN),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.kind {
            IoErrorKind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

// A tensor serialised to little-endian bytes, as the writer wants it.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_raw<T: Float>(t: &Tensor<T>) -> Raw {
    // Float offers no byte view; converting through f64 is exact for both types.
    let bytes = if T::NAME == "f32" {
        t.data()
            .iter()
            .flat_map(|v| (v.to_f64() as f32).to_le_bytes())
            .collect()
    } else {
        t.data()
            .iter()
            .flat_map(|v| v.to_f64().to_le_bytes())
            .collect()
    };
    Raw {
        dtype: if T::NAME == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        },
        shape: t.shape().to_vec(),
        bytes,
    }
}

/// Writes every parameter of `store` to `path` in safetensors format, in the store's element
/// type, replacing the file if it exists (the file is written beside it and renamed, so an
/// interrupted save leaves the old file whole).
///
/// Errors: [`IoErrorKind::Io`] when the file cannot be written.
pub fn save_safetensors<T: Float>(
    store: &ParamStore<T>,
    path: impl AsRef<Path>,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let raws: Vec<(&str, Raw)> = store.iter().map(|(n, t)| (n, to_raw(t))).collect();
    let order = raws.iter().map(|(n, _)| *n).collect::<Vec<_>>().join("\n");
    let meta = HashMap::from([(ORDER_KEY.to_string(), order)]);
    safetensors::serialize_to_file(raws.iter().map(|(n, r)| (*n, r)), Some(meta), path).map_err(
        |e| match e {
            SafeTensorError::IoError(source) => IoError::new(
                path,
                IoErrorKind::Io {
                    action: "write",
                    source: without_temp_path(source),
                },
            ),
            // Names and sizes come from a valid store; only I/O is expected to fail.
            other => IoError::new(
                path,
                IoErrorKind::NotSafetensors {
                    why: other.to_string(),
                },
            ),
        },
    )
}

/// `e` without the name of the temporary file the save writes beside `path`: the tempfile
/// crate wraps its errors as `{error} at path "dir/.tmpXXXX"`, naming a file the user never
/// gave and that no longer exists. Its inner error is not reachable (its `source` skips it),
/// so the suffix is cut from the text; the error kind is kept.
fn without_temp_path(e: std::io::Error) -> std::io::Error {
    let text = e.to_string();
    match (e.get_ref(), text.rfind(" at path \"")) {
        (Some(_), Some(cut)) => std::io::Error::new(e.kind(), &text[..cut]),
        _ => e,
    }
}

/// Reads every tensor of a safetensors file into a new store, in the order it was saved
/// from a store (or, for files written elsewhere, such as by `safetensors.torch.save_file`,
/// in the file's order: by dtype, then by name). `F32` and `F64` tensors convert to `T`.
///
/// The store is new, with a number of its own: the `ParamId`s of the model that saved the
/// file do not index it (they are refused, naming both stores). To restore a model whose
/// ids you hold, call [`ParamStore::load_from`] on its store instead; to use this one,
/// look its parameters up with [`ParamStore::by_name`].
///
/// Errors: the file cannot be read ([`IoErrorKind::Io`]), is not a safetensors file
/// ([`IoErrorKind::NotSafetensors`]), or holds a tensor of another dtype
/// ([`IoErrorKind::UnsupportedDtype`]).
pub fn load_safetensors<T: Float>(path: impl AsRef<Path>) -> Result<ParamStore<T>, IoError> {
    File::read(path.as_ref())?.into_store()
}

/// Reads every tensor of a safetensors file held in memory into a new store: the same
/// checks and conversions as [`load_safetensors`] (which parses through the same code),
/// `name` standing for the file in errors.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{ParamStore, parse_safetensors};
/// // 8-byte header length, the JSON header, then the data.
/// let json = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
/// let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
/// bytes.extend(json.as_bytes());
/// bytes.extend([1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()));
/// let store: ParamStore<f64> = parse_safetensors(&bytes, "mem.safetensors")?;
/// assert_eq!(store[store.by_name("w").unwrap()].to_vec(), vec![1.5, -2.0]);
/// let e = parse_safetensors::<f32>(&bytes[..bytes.len() - 1], "mem.safetensors").unwrap_err();
/// assert_eq!(e.to_string(), "mem.safetensors is not a safetensors file: tensor \"w\": \
///     data_offsets [0, 8] reach beyond the 7 bytes of data after the header");
/// # Ok::<(), tapegrad::nn::IoError>(())
/// ```
pub fn parse_safetensors<T: Float>(
    bytes: &[u8],
    name: impl AsRef<Path>,
) -> Result<ParamStore<T>, IoError> {
    File::parse(name.as_ref(), bytes.to_vec())?.into_store()
}

impl<T: Float> ParamStore<T> {
    /// [`save_safetensors`] as a method: `store.save("model.safetensors")?`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IoError> {
        save_safetensors(self, path)
    }

    /// Fills every parameter of this store with the tensor of the same name in a
    /// safetensors file, checking shapes; tensors of the file that the store does not name
    /// are ignored. `F32` and `F64` tensors convert to `T`. Nothing is changed unless every
    /// parameter can be filled; handles and optimiser state stay valid.
    ///
    /// Errors: those of [`load_safetensors`], [`IoErrorKind::MissingTensor`] for a parameter
    /// the file lacks, and [`IoErrorKind::ShapeMismatch`] naming the tensor and both shapes.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::ParamStore;
    /// let path = std::env::temp_dir().join("tapegrad-doc-load-from.safetensors");
    /// let mut trained = ParamStore::<f64>::new();
    /// trained.insert("w", Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    /// trained.save(&path)?;
    ///
    /// let mut model = ParamStore::<f32>::new();
    /// let w = model.insert("w", Tensor::zeros([3]));
    /// model.load_from(&path)?;
    /// assert_eq!(model[w].to_vec(), vec![1.0, 2.0, 3.0]);
    ///
    /// let mut other = ParamStore::<f32>::new();
    /// other.insert("w", Tensor::zeros([1, 3]));
    /// let e = other.load_from(&path).unwrap_err();
    /// assert!(e.to_string().ends_with(
    ///     "tensor \"w\" has shape [3] in the file but the parameter has shape [1, 3]"));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), tapegrad::nn::IoError>(())
    /// ```
    pub fn load_from(&mut self, path: impl AsRef<Path>) -> Result<(), IoError> {
        let file = File::read(path.as_ref())?;
        let mut loaded = Vec::with_capacity(self.len());
        for (name, current) in self.iter() {
            let Some(info) = file.meta.info(name) else {
                return Err(IoError::new(
                    &file.path,
                    IoErrorKind::MissingTensor {
                        tensor: name.to_string(),
                        available: file.meta.offset_keys(),
                    },
                ));
            };
            if info.shape.as_slice() != current.shape().dims() {
                return Err(IoError::new(
                    &file.path,
                    IoErrorKind::ShapeMismatch {
                        tensor: name.to_string(),
                        expected: current.shape().clone(),
                        found: Shape::new(&info.shape),
                    },
                ));
            }
            loaded.push(file.tensor(name)?);
        }
        for (id, t) in self.ids().zip(loaded) {
            self[id] = t;
        }
        Ok(())
    }
}

// A safetensors file read into memory, its header parsed and checked.
struct File {
    path: PathBuf,
    meta: Metadata,
    bytes: Vec<u8>,
    data_start: usize,
}

impl File {
    fn read(path: &Path) -> Result<File, IoError> {
        let io = |source| {
            IoError::new(
                path,
                IoErrorKind::Io {
                    action: "read",
                    source,
                },
            )
        };
        let not = |why: String| IoError::new(path, IoErrorKind::NotSafetensors { why });
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        // Check the header's length against the file's before reading the whole of it, so
        // that a file of another kind is refused at once.
        let mut head = [0u8; 8];
        if len < 8 {
            return Err(not(format!(
                "the file has {len} bytes, fewer than the 8 of the header length"
            )));
        }
        f.read_exact(&mut head).map_err(io)?;
        let n = u64::from_le_bytes(head);
        if n > len - 8 {
            return Err(not(format!(
                "the header claims {n} bytes but the file has only {} after the length",
                len - 8
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        bytes.extend_from_slice(&head);
        f.read_to_end(&mut bytes).map_err(io)?;
        File::parse(path, bytes)
    }

    // Checks the header of a whole file held in memory: first what the safetensors crate
    // reports without naming the tensor at fault (see `check_header`), then the crate's own
    // checks, which also make the offsets tile the data exactly up to the end of the file,
    // so that no tensor read below can reach beyond it.
    fn parse(path: &Path, bytes: Vec<u8>) -> Result<File, IoError> {
        let not = |why: String| IoError::new(path, IoErrorKind::NotSafetensors { why });
        let len = bytes.len() as u64;
        let Some(head) = bytes.first_chunk::<8>() else {
            return Err(not(format!(
                "the file has {len} bytes, fewer than the 8 of the header length"
            )));
        };
        let n = u64::from_le_bytes(*head);
        if n > len - 8 {
            return Err(not(format!(
                "the header claims {n} bytes but the file has only {} after the length",
                len - 8
            )));
        }
        // n <= len - 8, so this fits in usize.
        let header = &bytes[8..8 + n as usize];
        check_header(header, len - 8 - n).map_err(not)?;
        let (n, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| not(e.to_string()))?;
        Ok(File {
            path: path.to_path_buf(),
            meta,
            bytes,
            data_start: 8 + n,
        })
    }

    // Every tensor, in the order of `names`, into a new store.
    fn into_store<T: Float>(self) -> Result<ParamStore<T>, IoError> {
        let mut store = ParamStore::new();
        for name in self.names() {
            let t = self.tensor(&name)?;
            store
                .try_insert(name, t)
                .map_err(|e| self.not_safetensors(e.kind.to_string()))?;
        }
        Ok(store)
    }

    fn not_safetensors(&self, why: String) -> IoError {
        IoError::new(&self.path, IoErrorKind::NotSafetensors { why })
    }

    // The saved order when the header has a valid one, else the offset order.
    fn names(&self) -> Vec<String> {
        let by_offset = self.meta.offset_keys();
        if let Some(order) = self.meta.metadata().as_ref().and_then(|m| m.get(ORDER_KEY)) {
            let names: Vec<String> = if by_offset.is_empty() {
                Vec::new()
            } else {
                order.split('\n').map(str::to_string).collect()
            };
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            let mut expect = by_offset.clone();
            expect.sort();
            if sorted == expect && names.len() == by_offset.len() {
                return names;
            }
        }
        by_offset
    }

    fn tensor<T: Float>(&self, name: &str) -> Result<Tensor<T>, IoError> {
        let info = self
            .meta
            .info(name)
            .expect("names come from this file's header");
        let (s, e) = info.data_offsets;
        let b = &self.bytes[self.data_start + s..self.data_start + e];
        let data: Vec<T> = match info.dtype {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| T::from_f64(f32::from_le_bytes(c.try_into().unwrap()) as f64))
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            // Integer tensors (a batch norm's num_batches_tracked, saved by PyTorch as I64)
            // load when every value is exact in T.
            Dtype::I64 | Dtype::I32 => {
                let ints: Vec<i64> = if info.dtype == Dtype::I64 {
                    b.chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                } else {
                    b.chunks_exact(4)
                        .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                        .collect()
                };
                let exact = |v: i64| {
                    let t = T::from_f64(v as f64).to_f64();
                    t == v as f64 && t as i64 == v
                };
                if let Some(&v) = ints.iter().find(|&&v| !exact(v)) {
                    return Err(IoError::new(
                        &self.path,
                        IoErrorKind::UnsupportedDtype {
                            tensor: name.to_string(),
                            dtype: format!(
                                "{:?} holding {v}, which {} cannot hold exactly",
                                info.dtype,
                                T::NAME
                            ),
                        },
                    ));
                }
                ints.into_iter().map(|v| T::from_f64(v as f64)).collect()
            }
            other => {
                return Err(IoError::new(
                    &self.path,
                    IoErrorKind::UnsupportedDtype {
                        tensor: name.to_string(),
                        dtype: format!("{other:?}"),
                    },
                ));
            }
        };
        // The header check made the byte length match the shape.
        Tensor::try_from_vec(data, info.shape.as_slice())
            .map_err(|e| self.not_safetensors(format!("tensor {name:?}: {}", e.kind)))
    }
}

// The header checks the safetensors crate makes without naming the tensor at fault (a
// shape whose size overflows, a byte length that disagrees with dtype and shape) and those
// it makes only as "not fully covered" (offsets out of range, overlapping): done here first
// so that the message names the tensor and the field. The header is read as plain JSON
// (serde_json), not as the crate's `Metadata`, so that an entry the crate would refuse can
// still be named; a header that is not JSON, or an entry without readable fields, is left
// to the crate, whose message then stands. The header is at most the file's length, which
// `File::read` checked before reading anything else.
fn check_header(header: &[u8], data_len: u64) -> Result<(), String> {
    let Ok(Value::Object(entries)) = serde_json::from_slice::<Value>(header) else {
        return Ok(());
    };
    // An array of non-negative integers, each fitting in u64.
    let uints =
        |v: &Value| -> Option<Vec<u64>> { v.as_array()?.iter().map(Value::as_u64).collect() };
    // (begin, end, name) of every tensor whose entry could be read.
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for (name, v) in &entries {
        if name == "__metadata__" {
            continue;
        }
        let (Some(dtype), Some(shape), Some(offsets)) = (
            v.get("dtype").and_then(Value::as_str),
            v.get("shape").and_then(uints),
            v.get("data_offsets").and_then(uints),
        ) else {
            continue;
        };
        let &[begin, end] = offsets.as_slice() else {
            return Err(format!(
                "tensor {name:?}: data_offsets {offsets:?} must hold 2 numbers, begin and end"
            ));
        };
        if begin > end {
            return Err(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] end before they begin"
            ));
        }
        if end > data_len {
            return Err(format!(
                "tensor {name:?}: data_offsets [{begin}, {end}] reach beyond the {data_len} \
                 bytes of data after the header"
            ));
        }
        let elements = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let bits = elements.and_then(|n| n.checked_mul(dtype_bits(dtype)?));
        match (elements, bits) {
            (None, _) => {
                return Err(format!(
                    "tensor {name:?}: shape {shape:?} has more elements than 64 bits can count"
                ));
            }
            // An unknown dtype is left to the crate.
            (Some(_), None) if dtype_bits(dtype).is_none() => {}
            (Some(_), None) => {
                return Err(format!(
                    "tensor {name:?}: shape {shape:?} of dtype {dtype} needs more bytes than \
                     64 bits can count"
                ));
            }
            (Some(_), Some(bits)) if bits % 8 != 0 || bits / 8 != end - begin => {
                let need = if bits % 8 == 0 {
                    format!("{} bytes", bits / 8)
                } else {
                    format!("{bits} bits, not a whole number of bytes,")
                };
                return Err(format!(
                    "tensor {name:?}: dtype {dtype} and shape {shape:?} need {need} but \
                     data_offsets [{begin}, {end}] span {}",
                    end - begin
                ));
            }
            (Some(_), Some(_)) => {}
        }
        spans.push((begin, end, name));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((b0, e0, n0), (b1, e1, n1)) = (w[0], w[1]);
        if b1 < e0 {
            return Err(format!(
                "tensors {n0:?} and {n1:?} overlap: data_offsets [{b0}, {e0}] and [{b1}, {e1}]"
            ));
        }
    }
    Ok(())
}

// Bits per element of the dtypes the safetensors format names; None for any other.
fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "F8_E4M3FNUZ"
        | "F8_E5M2FNUZ" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "tapegrad-nn-io-{}-{name}.safetensors",
            std::process::id()
        ))
    }

    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            std::fs::remove_file(&self.0).ok();
        }
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_params.safetensors")
    }

    fn bits<T: Float>(s: &ParamStore<T>) -> Vec<(String, Vec<usize>, Vec<u64>)> {
        s.iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    t.shape().to_vec(),
                    t.data().iter().map(|v| v.to_f64().to_bits()).collect(),
                )
            })
            .collect()
    }

    fn awkward<T: Float>() -> ParamStore<T> {
        // Names out of alphabetical order, a scalar, an empty tensor, and values that test
        // the bytes: negative zero, tiny, huge, and not representable in fewer bits.
        let mut rng = StdRng::seed_from_u64(5);
        let mut s = ParamStore::new();
        s.insert("z.weight", Tensor::randn([4, 3], &mut rng));
        s.insert("a", Tensor::scalar(T::from_f64(1.0 / 3.0)));
        s.insert(
            "m.bias",
            Tensor::from_vec(
                [-0.0, 1e-38, 3e38, 0.1, -7.25].map(T::from_f64).to_vec(),
                [5],
            ),
        );
        s.insert("empty", Tensor::zeros([0, 2]));
        s.insert("conv", Tensor::randn([2, 1, 3, 3], &mut rng));
        s
    }

    #[test]
    fn save_then_load_is_bit_identical_in_order() {
        let p32 = tmp("rt32");
        let p64 = tmp("rt64");
        let _c = (Cleanup(p32.clone()), Cleanup(p64.clone()));
        let s32 = awkward::<f32>();
        save_safetensors(&s32, &p32).unwrap();
        let back32: ParamStore<f32> = load_safetensors(&p32).unwrap();
        assert_eq!(bits(&back32), bits(&s32));
        let s64 = awkward::<f64>();
        s64.save(&p64).unwrap();
        let back64: ParamStore<f64> = load_safetensors(&p64).unwrap();
        assert_eq!(bits(&back64), bits(&s64));
        let names: Vec<&str> = back64.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["z.weight", "a", "m.bias", "empty", "conv"]);

        // Across types: f32 -> f64 exactly, f64 -> f32 rounded to nearest.
        let wide: ParamStore<f64> = load_safetensors(&p32).unwrap();
        let narrow: ParamStore<f32> = load_safetensors(&p64).unwrap();
        // A loaded store is a store of its own: its parameters are compared in order.
        for ((_, w), (_, x)) in wide.iter().zip(s32.iter()) {
            assert_eq!(w.to_vec(), x.cast::<f64>().to_vec());
        }
        for ((_, n), (_, x)) in narrow.iter().zip(s64.iter()) {
            assert_eq!(n.to_vec(), x.cast::<f32>().to_vec());
        }
    }

    #[test]
    fn saving_twice_replaces_the_file() {
        let p = tmp("twice");
        let _c = Cleanup(p.clone());
        let mut s = ParamStore::<f32>::new();
        let w = s.insert("w", Tensor::ones([3]));
        s.save(&p).unwrap();
        s[w] = Tensor::full([3], 2.0);
        s.save(&p).unwrap();
        let back: ParamStore<f32> = load_safetensors(&p).unwrap();
        let back_w = back.by_name("w").unwrap();
        assert_eq!(back[back_w].to_vec(), vec![2.0; 3]);
        let empty = ParamStore::<f32>::new();
        empty.save(&p).unwrap();
        assert!(load_safetensors::<f32>(&p).unwrap().is_empty());
    }

    #[test]
    fn loads_a_file_written_by_pytorch() {
        let s: ParamStore<f64> = load_safetensors(fixture()).unwrap();
        // No saved order: the file's order, F64 tensors first, then by name.
        let names: Vec<&str> = s.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "fc.bias",
                "fc.weight",
                "conv1.bias",
                "conv1.weight",
                "scale"
            ]
        );
        let get = |n: &str| &s[s.by_name(n).unwrap()];
        assert_eq!(get("conv1.weight").shape(), &[2, 1, 3, 3]);
        let conv: Vec<f64> = (0..18)
            .map(|i| (i as f32 * 0.1f32 - 0.9f32) as f64)
            .collect();
        assert_eq!(get("conv1.weight").to_vec(), conv);
        assert_eq!(get("conv1.bias").to_vec(), vec![0.5, -0.25]);
        assert_eq!(get("fc.weight").shape(), &[3, 2]);
        let fc: Vec<f64> = (0..6).map(|i| i as f64 / 3.0).collect();
        assert_eq!(get("fc.weight").to_vec(), fc);
        assert_eq!(get("fc.bias").to_vec(), vec![0.1, -0.2]);
        assert_eq!(get("scale").shape().rank(), 0);
        assert_eq!(get("scale").item(), 2.5);

        // Into a model's store of f32, in the model's own order.
        let mut rng = StdRng::seed_from_u64(0);
        let mut m = ParamStore::<f32>::new();
        let cw = m.add(
            "conv1.weight",
            [2, 1, 3, 3],
            crate::nn::Init::HeNormal,
            &mut rng,
        );
        let fw = m.add(
            "fc.weight",
            [3, 2],
            crate::nn::Init::GlorotUniform,
            &mut rng,
        );
        m.load_from(fixture()).unwrap();
        assert_eq!(
            m[cw].to_vec(),
            (0..18).map(|i| i as f32 * 0.1 - 0.9).collect::<Vec<_>>()
        );
        assert_eq!(
            m[fw].to_vec(),
            fc.iter().map(|&v| v as f32).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_missing_file() {
        let p = Path::new("/nonexistent-dir/model.safetensors");
        let e = load_safetensors::<f32>(p).unwrap_err();
        assert!(matches!(*e.kind, IoErrorKind::Io { .. }));
        assert!(
            e.to_string().starts_with(
                "cannot read /nonexistent-dir/model.safetensors: No such file or directory"
            ),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let mut s = ParamStore::<f32>::new();
        s.insert("w", Tensor::zeros([1]));
        let e = s.load_from(p).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot read /nonexistent-dir/"),
            "{e}"
        );
        // The message names the path given, not the temporary file written beside it.
        let e = s.save(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot write /nonexistent-dir/model.safetensors: No such file or directory (os error 2)"
        );
        let dir = tmp("a-folder");
        std::fs::create_dir_all(&dir).unwrap();
        let e = s.save(&dir).unwrap_err();
        std::fs::remove_dir(&dir).unwrap();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("cannot write {}: ", dir.display())),
            "{shown}"
        );
        assert!(!shown.contains(".tmp"), "{shown}");
    }

    fn write(name: &str, bytes: &[u8]) -> Cleanup {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        Cleanup(p)
    }

    fn with_header(json: &str, data: &[u8]) -> Vec<u8> {
        let mut b = (json.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn files_that_are_not_safetensors() {
        let cases: Vec<(&str, Vec<u8>, String)> = vec![
            (
                "empty",
                vec![],
                "the file has 0 bytes, fewer than the 8 of the header length".into(),
            ),
            (
                "text",
                b"hello, this is not a tensor file at all".to_vec(),
                format!(
                    "the header claims {} bytes but the file has only 31 after the length",
                    u64::from_le_bytes(*b"hello, t")
                ),
            ),
            (
                "json",
                with_header("{not json", &[]),
                "invalid JSON in header".into(),
            ),
            (
                // Offsets far beyond the file: refused from the header, nothing allocated.
                "beyond",
                with_header(
                    r#"{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#,
                    &[0; 8],
                ),
                "tensor \"w\": data_offsets [0, 4000000000] reach beyond the 8 bytes of data \
                 after the header"
                    .into(),
            ),
            (
                "size",
                with_header(
                    r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "tensor \"w\": dtype F32 and shape [3] need 12 bytes but data_offsets [0, 8] \
                 span 8"
                    .into(),
            ),
            (
                "overflow",
                with_header(
                    r#"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "tensor \"w\": shape [4294967296, 4294967296] has more elements than 64 bits \
                 can count"
                    .into(),
            ),
        ];
        for (name, bytes, why) in cases {
            let c = write(name, &bytes);
            let e = load_safetensors::<f32>(&c.0).unwrap_err();
            assert!(
                matches!(*e.kind, IoErrorKind::NotSafetensors { .. }),
                "{name}: {e:?}"
            );
            let want = format!("{} is not a safetensors file: {why}", c.0.display());
            assert!(e.to_string().starts_with(&want), "{name}:\n{e}\n{want}");
            let mut s = ParamStore::<f64>::new();
            s.insert("w", Tensor::zeros([3]));
            assert!(
                s.load_from(&c.0)
                    .unwrap_err()
                    .to_string()
                    .starts_with(&want)
            );
        }
    }

    fn raw(dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Raw {
        Raw {
            dtype,
            shape: shape.to_vec(),
            bytes,
        }
    }

    #[test]
    fn unsupported_dtypes_are_named() {
        let p = tmp("dtype");
        let _c = Cleanup(p.clone());
        let ok = raw(
            Dtype::F32,
            &[2],
            [1.5f32, 2.5].iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
        let steps = raw(Dtype::I64, &[], 7i64.to_le_bytes().to_vec());
        let half = raw(Dtype::BF16, &[2], vec![0; 4]);
        safetensors::serialize_to_file(
            [("w", &ok), ("num_batches_tracked", &steps), ("h", &half)],
            None,
            &p,
        )
        .unwrap();
        let e = load_safetensors::<f32>(&p).unwrap_err();
        assert!(matches!(*e.kind, IoErrorKind::UnsupportedDtype { .. }));
        // I64 loads (7 is exact); the BF16 tensor is the one refused.
        assert_eq!(
            e.to_string(),
            format!(
                "{}: tensor \"h\" has dtype BF16; only F32, F64 and exact I64 and I32 can be loaded",
                p.display()
            )
        );
        let mut s = ParamStore::<f32>::new();
        let n = s.insert("num_batches_tracked", Tensor::zeros([]));
        s.load_from(&p).unwrap();
        assert_eq!(s[n].item(), 7.0);
        // An integer past f32's 24 bits of mantissa is refused by name, in f32 only.
        let big = raw(Dtype::I64, &[1], ((1i64 << 24) + 1).to_le_bytes().to_vec());
        let q = tmp("dtype-big");
        let _c2 = Cleanup(q.clone());
        safetensors::serialize_to_file([("n", &big)], None, &q).unwrap();
        let e = load_safetensors::<f32>(&q).unwrap_err().to_string();
        assert!(
            e.contains("I64 holding 16777217, which f32 cannot hold exactly"),
            "{e}"
        );
        assert_eq!(
            load_safetensors::<f64>(&q)
                .unwrap()
                .iter()
                .next()
                .unwrap()
                .1
                .item(),
            16777217.0
        );
        // load_from reads only what the store names.
        let mut s = ParamStore::<f64>::new();
        let w = s.insert("w", Tensor::zeros([2]));
        s.load_from(&p).unwrap();
        assert_eq!(s[w].to_vec(), vec![1.5, 2.5]);
        let mut s = ParamStore::<f64>::new();
        s.insert("h", Tensor::zeros([2]));
        let e = s.load_from(&p).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "tensor \"h\" has dtype BF16; only F32, F64 and exact I64 and I32 can be loaded"
            ),
            "{e}"
        );
    }

    #[test]
    fn load_from_checks_names_and_shapes_and_changes_nothing_on_error() {
        let p = tmp("load-from");
        let _c = Cleanup(p.clone());
        let mut saved = ParamStore::<f32>::new();
        saved.insert("a", Tensor::ones([2, 3]));
        saved.insert("b", Tensor::ones([3]));
        saved.save(&p).unwrap();

        let mut s = ParamStore::<f32>::new();
        let a = s.insert("a", Tensor::zeros([2, 3]));
        s.insert("b", Tensor::zeros([4]));
        let e = s.load_from(&p).unwrap_err();
        assert!(matches!(*e.kind, IoErrorKind::ShapeMismatch { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: tensor \"b\" has shape [3] in the file but the parameter has shape [4]",
                p.display()
            )
        );
        assert_eq!(
            s[a].to_vec(),
            vec![0.0; 6],
            "nothing loaded when one tensor fails"
        );

        let mut s = ParamStore::<f32>::new();
        s.insert("a", Tensor::zeros([2, 3]));
        s.insert("fc.bias", Tensor::zeros([3]));
        let e = s.load_from(&p).unwrap_err();
        assert!(matches!(*e.kind, IoErrorKind::MissingTensor { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no tensor named \"fc.bias\" in the file; it holds \"a\", \"b\"",
                p.display()
            )
        );
    }

    #[test]
    fn missing_tensor_lists_a_few_names() {
        let p = Path::new("m.safetensors");
        let e = IoError::new(
            p,
            IoErrorKind::MissingTensor {
                tensor: "x".into(),
                available: (0..10).map(|i| format!("t{i}")).collect(),
            },
        );
        assert!(e.to_string().ends_with("\"t7\" and 2 more"), "{e}");
        let e = IoError::new(
            p,
            IoErrorKind::MissingTensor {
                tensor: "x".into(),
                available: vec![],
            },
        );
        assert!(e.to_string().ends_with("it holds no tensor"), "{e}");
    }

    #[test]
    fn a_damaged_order_falls_back_to_offsets() {
        let p = tmp("order");
        let _c = Cleanup(p.clone());
        let one = raw(Dtype::F32, &[1], 1f32.to_le_bytes().to_vec());
        let meta = HashMap::from([(ORDER_KEY.to_string(), "b\nb".to_string())]);
        safetensors::serialize_to_file([("b", &one), ("a", &one)], Some(meta), &p).unwrap();
        let s: ParamStore<f32> = load_safetensors(&p).unwrap();
        let names: Vec<&str> = s.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
