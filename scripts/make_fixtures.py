#!/usr/bin/env python3
"""Writes tests/fixtures/parity.safetensors: PyTorch's outputs and gradients of every op on
random data, several configurations each. Run by hand (pip install torch safetensors);
tests/parity.rs compares tapegrad with it in f64 and f32.

Format: one safetensors file, all tensors float64 except `*/cfg` and `*/target_idx` (int64).
For a case named `<op>/<k>`:
  <op>/<k>/in<i>      the i-th differentiable input
  <op>/<k>/cfg        the op's integer options (layout per op, documented in parity.rs)
  <op>/<k>/target     a constant target tensor (losses), or target_idx (class indices)
  <op>/<k>/out        the forward output
  <op>/<k>/gout       the upstream gradient given to backward
  <op>/<k>/grad<i>    the gradient of <out, gout> with respect to in<i>
"""
import os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(20261123)
D = torch.float64
out = {}


def randn(*s):
    return torch.randn(s, dtype=D)


def distinct(*s):
    # Values 0.1 apart in random order: no near-ties for max and max-pool.
    n = 1
    for d in s:
        n *= d
    return (torch.randperm(n).to(D) * 0.1 - n * 0.05).reshape(*s)


def case(op, k, inputs, fn, cfg=(), target=None, target_idx=None):
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    gout = randn(*y.shape)
    grads = torch.autograd.grad(y, xs, gout)
    p = f"{op}/{k}"
    for i, x in enumerate(inputs):
        out[f"{p}/in{i}"] = x.contiguous()
    for i, g in enumerate(grads):
        out[f"{p}/grad{i}"] = g.contiguous()
    out[f"{p}/out"] = y.detach().contiguous()
    out[f"{p}/gout"] = gout
    out[f"{p}/cfg"] = torch.tensor(list(cfg) if cfg else [0], dtype=torch.int64)
    if target is not None:
        out[f"{p}/target"] = target.contiguous()
    if target_idx is not None:
        out[f"{p}/target_idx"] = target_idx.to(torch.int64)


pairs = [((3, 4), (4,)), ((4,), (3, 4)), ((2, 1, 3), (4, 1)), ((), (2, 3)), ((2, 3), (2, 3))]
for k, (sa, sb) in enumerate(pairs):
    case("add", k, [randn(*sa), randn(*sb)], lambda a, b: a + b)
    case("sub", k, [randn(*sa), randn(*sb)], lambda a, b: a - b)
    case("mul", k, [randn(*sa), randn(*sb)], lambda a, b: a * b)
    case("div", k, [randn(*sa), randn(*sb).abs() + 0.5], lambda a, b: a / b)
    case("maximum", k, [randn(*sa), randn(*sb)], torch.maximum)
    case("minimum", k, [randn(*sa), randn(*sb)], torch.minimum)

for k, s in enumerate([(7,), (2, 3, 4)]):
    case("neg", k, [randn(*s)], lambda x: -x)
    case("relu", k, [randn(*s)], torch.relu)
    case("sigmoid", k, [randn(*s) * 3], torch.sigmoid)
    case("tanh", k, [randn(*s) * 2], torch.tanh)
    case("exp", k, [randn(*s)], torch.exp)
    case("log", k, [randn(*s).abs() + 0.1], torch.log)
    case("log1p", k, [randn(*s).abs() * 1e-3], torch.log1p)
    case("sqrt", k, [randn(*s).abs() + 0.1], torch.sqrt)
    case("abs", k, [randn(*s)], torch.abs)
    case("square", k, [randn(*s)], torch.square)
    case("powf", k, [randn(*s).abs() + 0.2], lambda x: x.pow(2.5), cfg=[25])  # p = cfg/10

for k, (sa, sb) in enumerate([((3, 5), (5, 2)), ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 6)),
                              ((3, 4), (2, 4, 5)), ((1, 3, 4), (3, 4, 2))]):
    case("matmul", k, [randn(*sa), randn(*sb)], torch.matmul)

# conv2d cfg: [sh, sw, ph, pw, dh, dw, groups, has_bias]
convs = [
    # (N, C, H, W), (O, kh, kw), stride, pad, dil, groups, bias
    ((2, 1, 5, 5), (1, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    ((1, 3, 7, 5), (4, 3, 2), (2, 1), (1, 0), (1, 1), 1, True),
    ((2, 2, 8, 9), (3, 3, 3), (3, 2), (2, 1), (2, 1), 1, False),
    ((3, 4, 6, 6), (4, 1, 1), (1, 1), (0, 0), (1, 1), 2, True),
    ((1, 4, 9, 7), (4, 3, 3), (2, 2), (1, 1), (1, 2), 4, False),
    ((2, 3, 10, 10), (5, 5, 5), (1, 1), (2, 2), (1, 1), 1, True),
    # Big enough for the thread pool: a batch split across threads, one item whose
    # products are split, and a pointwise conv.
    ((8, 8, 12, 12), (16, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    ((1, 16, 16, 16), (16, 3, 3), (1, 1), (1, 1), (1, 1), 1, True),
    ((6, 32, 10, 10), (32, 1, 1), (1, 1), (0, 0), (1, 1), 1, False),
    # 3x3 stride 1 with 16+ channels each side: odd sizes, padding 0 and 2 (the Winograd
    # path), and a layer like S4 on one image (unfolded: Winograd needs two images or more).
    ((2, 16, 9, 11), (20, 3, 3), (1, 1), (0, 2), (1, 1), 1, True),
    ((1, 24, 10, 10), (32, 3, 3), (1, 1), (1, 1), (1, 1), 1, False),
]
for k, ((n, c, h, w), (o, kh, kw), s, p, d, g, bias) in enumerate(convs):
    ins = [randn(n, c, h, w), randn(o, c // g, kh, kw) * 0.5]
    if bias:
        ins.append(randn(o))
    fn = (lambda x, wt, b=None, s=s, p=p, d=d, g=g:
          F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=g))
    case("conv2d", k, ins, fn, cfg=[*s, *p, *d, g, int(bias)])

# pooling cfg: [kh, kw, sh, sw, ph, pw, dh, dw, ceil, count_include_pad]
pools = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False, True),
    ((1, 2, 7, 5), (3, 3), (2, 2), (1, 1), (1, 1), True, True),
    ((2, 1, 9, 8), (3, 2), (1, 2), (1, 0), (1, 1), False, False),
    ((1, 2, 8, 8), (2, 3), (3, 2), (1, 1), (1, 1), True, False),
    ((1, 1, 9, 9), (3, 3), (2, 2), (0, 0), (2, 2), True, True),
    # Windows that tile the input take the one-pass kernels.
    ((2, 3, 9, 10), (3, 3), (3, 3), (0, 0), (1, 1), False, True),
    ((3, 4, 7, 8), (2, 2), (2, 2), (0, 0), (1, 1), False, True),
]
for k, (shape, kk, s, p, d, ceil, cip) in enumerate(pools):
    cfg = [*kk, *s, *p, *d, int(ceil), int(cip)]
    case("max_pool2d", k, [distinct(*shape)],
         lambda x, kk=kk, s=s, p=p, d=d, ceil=ceil:
         F.max_pool2d(x, kk, s, p, dilation=d, ceil_mode=ceil), cfg=cfg)
    if d == (1, 1):
        case("avg_pool2d", k, [randn(*shape)],
             lambda x, kk=kk, s=s, p=p, ceil=ceil, cip=cip:
             F.avg_pool2d(x, kk, s, p, ceil_mode=ceil, count_include_pad=cip), cfg=cfg)

# reductions cfg: [keepdim, axes...]; an empty axis list means all axes
reds = [((3, 4), [1], 0), ((2, 3, 4), [0, 2], 1), ((2, 3, 4), [], 0), ((5,), [0], 1)]
for k, (s, axes, keep) in enumerate(reds):
    dims = axes if axes else list(range(len(s)))
    case("sum", k, [randn(*s)], lambda x, dims=dims, keep=keep: x.sum(dims, keepdim=bool(keep)), cfg=[keep, *axes])
    case("mean", k, [randn(*s)], lambda x, dims=dims, keep=keep: x.mean(dims, keepdim=bool(keep)), cfg=[keep, *axes])
    case("max", k, [distinct(*s)], lambda x, dims=dims, keep=keep: x.amax(dims, keepdim=bool(keep)), cfg=[keep, *axes])

for k, (s, perm) in enumerate([((2, 3), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4, 5), (0, 2, 3, 1))]):
    case("permute", k, [randn(*s)], lambda x, perm=perm: x.permute(*perm), cfg=perm)
for k, (s, t) in enumerate([((3,), (2, 3)), ((2, 1, 4), (2, 3, 4)), ((1, 3, 1), (2, 2, 3, 5))]):
    case("broadcast_to", k, [randn(*s)], lambda x, t=t: x.broadcast_to(t), cfg=t)
for k, (shapes, axis) in enumerate([([(2, 3), (4, 3)], 0), ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], 1), ([(2, 3), (2, 5)], 1)]):
    case("concat", k, [randn(*s) for s in shapes], lambda *xs, axis=axis: torch.cat(xs, axis), cfg=[axis])
for k, (s, axis, start, ln) in enumerate([((5, 3), 0, 1, 3), ((2, 6, 3), 1, 4, 2), ((4, 7), 1, 0, 1)]):
    case("narrow", k, [randn(*s)], lambda x, a=axis, st=start, l=ln: x.narrow(a, st, l), cfg=[axis, start, ln])

for k, (s, axis) in enumerate([((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1)]):
    case("softmax", k, [randn(*s) * 2], lambda x, a=axis: torch.softmax(x, a), cfg=[axis])
    case("log_softmax", k, [randn(*s) * 2], lambda x, a=axis: torch.log_softmax(x, a), cfg=[axis])

for k, (n, c) in enumerate([(1, 2), (5, 7), (4, 10)]):
    t = torch.randint(0, c, (n,))
    case("cross_entropy", k, [randn(n, c) * 2],
         lambda z, t=t: F.cross_entropy(z, t, reduction="none"), target_idx=t)
for k, s in enumerate([(6,), (3, 4)]):
    y = torch.rand(*s, dtype=D)
    if k == 0:
        y = (y > 0.5).to(D)
    case("bce", k, [torch.rand(*s, dtype=D) * 0.9 + 0.05],
         lambda p, y=y: F.binary_cross_entropy(p, y, reduction="none"), target=y)
    case("bce_with_logits", k, [randn(*s) * 3],
         lambda z, y=y: F.binary_cross_entropy_with_logits(z, y, reduction="none"), target=y)
    tgt = randn(*s)
    case("mse_loss", k, [randn(*s)], lambda x, t=tgt: F.mse_loss(x, t, reduction="none"), target=tgt)

# The activations of modern networks (appended: the cases above keep their random data).
# cfg: leaky_relu [slope * 100], elu [alpha * 100].
for k, s in enumerate([(7,), (2, 3, 4)]):
    case("leaky_relu", k, [randn(*s)], lambda x: F.leaky_relu(x, 0.1), cfg=[10])
    case("elu", k, [randn(*s) * 2], lambda x: F.elu(x, 0.7), cfg=[70])
    case("gelu", k, [randn(*s) * 2], F.gelu)
    case("gelu_tanh", k, [randn(*s) * 2], lambda x: F.gelu(x, approximate="tanh"))
    case("silu", k, [randn(*s) * 3], F.silu)
    case("hardswish", k, [randn(*s) * 3], F.hardswish)

# Padding, resizing and adaptive pooling.
# pad cfg: [mode (0 constant, 1 reflect, 2 replicate), value * 100, then (before, after) per
# padded trailing axis in axis order (F.pad takes them from the last axis backwards)].
pads = [((2, 3, 5, 6), [(1, 2), (0, 3)], 0, 0.5), ((1, 2, 4, 4), [(3, 3), (1, 2)], 1, 0.0),
        ((2, 2, 3, 5), [(2, 1), (4, 0)], 2, 0.0), ((2, 3, 7), [(2, 3)], 1, 0.0),
        ((2, 3, 7), [(1, 1)], 2, 0.0), ((3, 4), [(2, 0), (1, 1)], 0, -1.0)]
for k, (shape, pairs, mode, value) in enumerate(pads):
    flat = [v for pair in reversed(pairs) for v in pair]
    name = ["constant", "reflect", "replicate"][mode]
    case("pad", k, [randn(*shape)],
         lambda x, flat=flat, name=name, value=value: F.pad(x, flat, mode=name, value=value) if name == "constant" else F.pad(x, flat, mode=name),
         cfg=[mode, round(value * 100), *[v for pair in pairs for v in pair]])
# interpolate cfg: [mode (0 nearest, 1 bilinear), out_h, out_w]
sizes = [((2, 3, 4, 5), (8, 10)), ((1, 2, 5, 3), (7, 4)), ((2, 1, 6, 6), (3, 4)), ((1, 1, 1, 3), (2, 6))]
for k, (shape, size) in enumerate(sizes):
    for mode, name in enumerate(["nearest", "bilinear"]):
        kw = {} if name == "nearest" else {"align_corners": False}
        case("interpolate", 2 * k + mode, [randn(*shape)],
             lambda x, size=size, name=name, kw=kw: F.interpolate(x, size=size, mode=name, **kw),
             cfg=[mode, *size])
# adaptive_avg_pool2d cfg: [out_h, out_w]
for k, (shape, size) in enumerate([((2, 3, 7, 5), (3, 2)), ((1, 4, 6, 6), (1, 1)), ((2, 2, 5, 7), (4, 3)),
                                   ((1, 1, 3, 3), (5, 4))]):
    case("adaptive_avg_pool2d", k, [randn(*shape)],
         lambda x, size=size: F.adaptive_avg_pool2d(x, size), cfg=list(size))

# Normalisation (eps 1e-5).
# batch_norm cfg: [training, affine, momentum * 100]; target: the running mean and variance
# before the call, concatenated; out: the output, flattened, then both running statistics
# after the call (no gradient flows to them).
bns = [((4, 3), 1, 1, 10), ((2, 3, 5), 1, 0, 10), ((2, 4, 3, 3), 1, 1, 30), ((1, 3, 2, 5), 1, 1, 10),
       ((2, 4, 3, 3), 0, 1, 10), ((3, 2, 4, 4), 0, 0, 10)]
for k, (shape, training, affine, mom) in enumerate(bns):
    c = shape[1]
    running = torch.cat([randn(c), torch.rand(c, dtype=D) + 0.5])
    ins = [randn(*shape) * 2 + 1] + ([randn(c), randn(c)] if affine else [])

    def bn(x, w=None, b=None, c=c, running=running, training=training, mom=mom):
        rm, rv = running[:c].clone(), running[c:].clone()
        y = F.batch_norm(x, rm, rv, w, b, training=bool(training), momentum=mom / 100, eps=1e-5)
        return torch.cat([y.reshape(-1), rm, rv])
    case("batch_norm", k, ins, bn, cfg=[training, affine, mom], target=running)
# layer_norm cfg: [normalised trailing axes, affine]
for k, (shape, axes, affine) in enumerate([((4, 5), 1, 1), ((2, 3, 4), 2, 1), ((2, 3, 4), 1, 0), ((1, 2, 3, 3), 3, 1)]):
    ns = shape[len(shape) - axes:]
    ins = [randn(*shape) * 3 - 1] + ([randn(*ns), randn(*ns)] if affine else [])
    case("layer_norm", k, ins, lambda x, w=None, b=None, ns=ns: F.layer_norm(x, ns, w, b, eps=1e-5),
         cfg=[axes, affine])
# group_norm cfg: [groups, affine]
for k, (shape, groups, affine) in enumerate([((2, 4, 3, 3), 2, 1), ((1, 6, 5), 3, 0), ((2, 4, 2, 3), 1, 1),
                                             ((2, 3, 2, 2), 3, 1)]):
    ins = [randn(*shape) * 2 + 0.5] + ([randn(shape[1]), randn(shape[1])] if affine else [])
    case("group_norm", k, ins, lambda x, w=None, b=None, g=groups: F.group_norm(x, g, w, b, eps=1e-5),
         cfg=[groups, affine])

# conv_transpose2d cfg: [sh, sw, ph, pw, oph, opw, dh, dw, groups, has_bias]
convts = [
    # (N, C, H, W), (C, O/groups, kh, kw), stride, pad, output_pad, dil, groups, bias
    ((2, 3, 4, 4), (3, 2, 3, 3), (1, 1), (0, 0), (0, 0), (1, 1), 1, True),
    ((1, 2, 3, 5), (2, 3, 2, 3), (2, 2), (0, 0), (0, 0), (1, 1), 1, False),
    ((2, 2, 4, 3), (2, 2, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, True),
    ((1, 4, 3, 3), (4, 1, 3, 2), (2, 3), (1, 0), (0, 2), (1, 1), 2, True),
    ((2, 2, 3, 4), (2, 2, 3, 3), (1, 1), (2, 2), (0, 0), (2, 2), 1, False),
    ((1, 2, 3, 3), (2, 1, 3, 3), (1, 1), (0, 0), (1, 1), (2, 2), 1, True),
    # An autoencoder's decoder layer: 16 -> 8 channels, 7x7 -> 14x14.
    ((4, 16, 7, 7), (16, 8, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1, True),
]
for k, ((n, c, h, w), (ci, og, kh, kw), s, p, op, d, g, bias) in enumerate(convts):
    ins = [randn(n, c, h, w), randn(ci, og, kh, kw) * 0.5]
    if bias:
        ins.append(randn(og * g))
    fn = (lambda x, wt, b=None, s=s, p=p, op=op, d=d, g=g:
          F.conv_transpose2d(x, wt, b, stride=s, padding=p, output_padding=op, groups=g, dilation=d))
    case("conv_transpose2d", k, ins, fn, cfg=[*s, *p, *op, *d, g, int(bias)])

# cross_entropy with label smoothing, cfg [smoothing * 100].
for k, (n, c, eps) in enumerate([(1, 2, 10), (5, 7, 30), (4, 10, 100)]):
    t = torch.randint(0, c, (n,))
    case("cross_entropy_smoothed", k, [randn(n, c) * 2],
         lambda z, t=t, e=eps: F.cross_entropy(z, t, reduction="none", label_smoothing=e / 100),
         cfg=[eps], target_idx=t)

here = os.path.dirname(os.path.abspath(__file__))
path = os.path.join(here, "..", "tests", "fixtures", "parity.safetensors")
out = {k: v.detach().clone() for k, v in out.items()}
save_file(out, path, metadata={"generator": "scripts/make_fixtures.py", "torch": torch.__version__})
print(f"wrote {len(out)} tensors to {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")
