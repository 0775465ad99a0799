#!/usr/bin/env python3
"""Prints the parameters after 3 steps of torch.optim.SGD, Adam, AdamW and RMSprop on a fixed
tiny problem (fixed initial parameters, fixed gradients per step), in float64, as a Rust
table. src/nn/optim.rs hard-codes the output in its test `matches_pytorch`.

Run: python3 scripts/optim_fixture.py
"""
import torch

D = torch.float64
P0 = [
    [[0.5, -1.0, 2.0], [0.25, 0.0, -0.75]],  # "w", [2, 3]
    [1.0, -2.0],  # "b", [2]
]
# One gradient per parameter per step; the zeros check Adam's eps path and a momentum
# buffer that starts at 0.
GRADS = [
    [[[0.1, -0.2, 0.0], [1.5, -0.5, 0.3]], [0.0, 2.0]],
    [[[0.3, 0.1, -0.4], [-1.0, 0.0, 0.2]], [0.5, -1.0]],
    [[[-0.2, 0.4, 0.6], [0.7, 0.25, -0.1]], [-0.3, 0.8]],
]
CONFIGS = [
    ("sgd", lambda ps: torch.optim.SGD(ps, lr=0.1)),
    ("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
    ("sgd_nesterov", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    ("sgd_weight_decay", lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=0.1)),
    ("sgd_all", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.2)),
    ("sgd_nesterov_wd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.05)),
    ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01)),
    ("adam_all", lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("adam_amsgrad", lambda ps: torch.optim.Adam(ps, lr=0.1, amsgrad=True)),
    ("adamw", lambda ps: torch.optim.AdamW(ps, lr=0.1)),
    ("adamw_all", lambda ps: torch.optim.AdamW(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.3, amsgrad=True)),
    ("rmsprop", lambda ps: torch.optim.RMSprop(ps, lr=0.01)),
    ("rmsprop_all", lambda ps: torch.optim.RMSprop(ps, lr=0.05, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True)),
    ("rmsprop_momentum", lambda ps: torch.optim.RMSprop(ps, lr=0.02, momentum=0.9)),
]

for name, make in CONFIGS:
    ps = [torch.tensor(p, dtype=D, requires_grad=True) for p in P0]
    opt = make(ps)
    for step in GRADS:
        for p, g in zip(ps, step):
            p.grad = torch.tensor(g, dtype=D)
        opt.step()
    flat = [v for p in ps for v in p.detach().flatten().tolist()]
    print(f'    ("{name}", [{", ".join(repr(v) for v in flat)}]),')
