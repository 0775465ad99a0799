//! Arbitrary shapes and options through the `try_` forms of conv2d, the pools, matmul, the
//! broadcasting binary ops and the shape ops: each returns Ok or Err, never panics, and an
//! Ok result also runs backward. Tensors stay small (at most 4096 elements each) so that
//! an input runs in microseconds; option values reach the extremes (`usize::MAX`).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tapegrad::ops::max_pool2d::PoolOptions;
use tapegrad::prelude::*;

/// A tensor dimension: 0 to 7.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Dim(u8);

impl Dim {
    fn get(self) -> usize {
        usize::from(self.0 % 8)
    }
}

/// An option value: mostly small, sometimes at the edges of usize.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Size(u8);

impl Size {
    fn get(self) -> usize {
        match self.0 {
            255 => usize::MAX,
            254 => usize::MAX / 2,
            253 => usize::MAX / 2 + 1,
            252 => 1 << 32,
            251 => (1 << 32) - 1,
            250 => 1 << 16,
            v => usize::from(v % 10),
        }
    }
}

fn pair(p: (Size, Size)) -> (usize, usize) {
    (p.0.get(), p.1.get())
}

#[derive(Arbitrary, Debug)]
enum Case {
    ConvOptions {
        x: Vec<Dim>,
        w: Vec<Dim>,
        bias: Option<Dim>,
        stride: (Size, Size),
        padding: (Size, Size),
        dilation: (Size, Size),
        groups: Size,
    },
    Pool {
        max: bool,
        x: Vec<Dim>,
        kernel: (Size, Size),
        stride: (Size, Size),
        padding: (Size, Size),
        dilation: (Size, Size),
        ceil: bool,
        include_pad: bool,
    },
    Matmul {
        a: Vec<Dim>,
        b: Vec<Dim>,
    },
    Binary {
        op: u8,
        a: Vec<Dim>,
        b: Vec<Dim>,
    },
    Reshape {
        x: Vec<Dim>,
        to: Vec<Size>,
    },
    Permute {
        x: Vec<Dim>,
        perm: Vec<Size>,
    },
    Transpose {
        x: Vec<Dim>,
        a: Size,
        b: Size,
    },
    Narrow {
        x: Vec<Dim>,
        axis: Size,
        start: Size,
        len: Size,
    },
    Concat {
        xs: Vec<Vec<Dim>>,
        axis: Size,
    },
    BroadcastTo {
        x: Vec<Dim>,
        to: Vec<Size>,
    },
    FlattenRange {
        x: Vec<Dim>,
        start: Size,
        end: Size,
    },
    FromVec {
        len: u16,
        shape: Vec<Size>,
    },
}

const MAX_RANK: usize = 6;
const MAX_NUMEL: usize = 4096;

/// The dims as a shape, or None when too large to be worth building.
fn shape(dims: &[Dim]) -> Option<Vec<usize>> {
    if dims.len() > MAX_RANK {
        return None;
    }
    let s: Vec<usize> = dims.iter().map(|d| d.get()).collect();
    (s.iter().product::<usize>() <= MAX_NUMEL).then_some(s)
}

fn sizes(v: &[Size]) -> Option<Vec<usize>> {
    (v.len() <= MAX_RANK).then(|| v.iter().map(|s| s.get()).collect())
}

/// Values in [0.5, 1.5]: away from zero (division) and varied (max pooling's argmax).
fn tensor(shape: &[usize], salt: usize) -> Tensor<f32> {
    Tensor::from_fn(shape, |i| 0.5 + ((i * 37 + salt * 11) % 101) as f32 / 100.0)
}

/// Runs backward through an Ok result that is small enough; the gradient must be finite.
fn finish<'t>(tape: &'t Tape<f32>, r: Result<Var<'t, f32>, Error>, inputs: &[Var<'t, f32>]) {
    let Ok(y) = r else { return };
    if y.value().numel() > 16 * MAX_NUMEL {
        return;
    }
    let g = tape.backward(y.sum());
    for &x in inputs {
        if let Some(gx) = g.get(x) {
            assert_eq!(gx.shape(), &x.shape());
        }
    }
}

fuzz_target!(|case: Case| {
    let tape = Tape::<f32>::new();
    let param = |s: &[usize], salt: usize| tape.param(tensor(s, salt));
    match case {
        Case::ConvOptions {
            x,
            w,
            bias,
            stride,
            padding,
            dilation,
            groups,
        } => {
            let (Some(xs), Some(ws)) = (shape(&x), shape(&w)) else {
                return;
            };
            // A large padding with a small kernel makes a huge output: keep it small here
            // (the op's own limits are exercised in the normal test suite).
            let (ph, pw) = pair(padding);
            if ph.max(pw) > 64 && ph.max(pw) < usize::MAX / 4 {
                return;
            }
            let opts = ConvOptions::new()
                .stride(pair(stride))
                .padding((ph, pw))
                .dilation(pair(dilation))
                .groups(groups.get());
            let (xv, wv) = (param(&xs, 0), param(&ws, 1));
            match bias {
                Some(b) => {
                    let bv = param(&[b.get()], 2);
                    finish(&tape, xv.try_conv2d_bias(wv, bv, opts), &[xv, wv, bv]);
                }
                None => finish(&tape, xv.try_conv2d(wv, opts), &[xv, wv]),
            }
        }
        Case::Pool {
            max,
            x,
            kernel,
            stride,
            padding,
            dilation,
            ceil,
            include_pad,
        } => {
            let Some(xs) = shape(&x) else { return };
            let opts = PoolOptions::new(pair(kernel))
                .stride(pair(stride))
                .padding(pair(padding))
                .dilation(pair(dilation))
                .ceil_mode(ceil)
                .count_include_pad(include_pad);
            let xv = param(&xs, 0);
            let r = if max {
                xv.try_max_pool2d(opts)
            } else {
                xv.try_avg_pool2d(opts)
            };
            finish(&tape, r, &[xv]);
        }
        Case::Matmul { a, b } => {
            let (Some(sa), Some(sb)) = (shape(&a), shape(&b)) else {
                return;
            };
            let (av, bv) = (param(&sa, 0), param(&sb, 1));
            finish(&tape, av.try_matmul(bv), &[av, bv]);
        }
        Case::Binary { op, a, b } => {
            let (Some(sa), Some(sb)) = (shape(&a), shape(&b)) else {
                return;
            };
            let (av, bv) = (param(&sa, 0), param(&sb, 1));
            let r = match op % 6 {
                0 => av.try_add(bv),
                1 => av.try_sub(bv),
                2 => av.try_mul(bv),
                3 => av.try_div(bv),
                4 => av.try_maximum(bv),
                _ => av.try_minimum(bv),
            };
            finish(&tape, r, &[av, bv]);
        }
        Case::Reshape { x, to } => {
            let (Some(xs), Some(to)) = (shape(&x), sizes(&to)) else {
                return;
            };
            let xv = param(&xs, 0);
            finish(&tape, xv.try_reshape(to.as_slice()), &[xv]);
        }
        Case::Permute { x, perm } => {
            let (Some(xs), Some(perm)) = (shape(&x), sizes(&perm)) else {
                return;
            };
            let xv = param(&xs, 0);
            finish(&tape, xv.try_permute(&perm), &[xv]);
        }
        Case::Transpose { x, a, b } => {
            let Some(xs) = shape(&x) else { return };
            let xv = param(&xs, 0);
            finish(&tape, xv.try_transpose(a.get(), b.get()), &[xv]);
        }
        Case::Narrow {
            x,
            axis,
            start,
            len,
        } => {
            let Some(xs) = shape(&x) else { return };
            let xv = param(&xs, 0);
            finish(
                &tape,
                xv.try_narrow(axis.get(), start.get(), len.get()),
                &[xv],
            );
            // Backward consumed the first tape: the slice form gets its own.
            let (s, l) = (start.get(), len.get());
            if let Some(end) = s.checked_add(l) {
                let tape = Tape::<f32>::new();
                let xv = tape.param(tensor(&xs, 0));
                finish(&tape, xv.try_slice(axis.get(), s..end), &[xv]);
            }
        }
        Case::Concat { xs, axis } => {
            if xs.len() > 5 {
                return;
            }
            let Some(shapes) = xs.iter().map(|x| shape(x)).collect::<Option<Vec<_>>>() else {
                return;
            };
            let vars: Vec<_> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| param(s, i))
                .collect();
            finish(&tape, Var::try_concat(&vars, axis.get()), &vars);
        }
        Case::BroadcastTo { x, to } => {
            let (Some(xs), Some(to)) = (shape(&x), sizes(&to)) else {
                return;
            };
            // A target that can be addressed but not allocated (2^48 elements) would abort on
            // allocation; one past addressable memory must be refused and is kept.
            let n = to.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if n.is_some_and(|n| n > 16 * MAX_NUMEL && n <= isize::MAX as usize / 8) {
                return;
            }
            let xv = param(&xs, 0);
            finish(&tape, xv.try_broadcast_to(to.as_slice()), &[xv]);
        }
        Case::FlattenRange { x, start, end } => {
            let Some(xs) = shape(&x) else { return };
            let xv = param(&xs, 0);
            finish(&tape, xv.try_flatten_range(start.get(), end.get()), &[xv]);
        }
        Case::FromVec { len, shape } => {
            let Some(shape) = sizes(&shape) else { return };
            let len = usize::from(len % 4097);
            if let Ok(t) = Tensor::<f32>::try_from_vec(vec![0.0; len], shape.as_slice()) {
                assert_eq!(t.numel(), len);
                assert_eq!(t.shape().dims(), shape.as_slice());
            }
        }
    }
});
