#!/usr/bin/env python3
"""Prints the learning rates torch.optim.lr_scheduler gives at steps 0..N of each schedule
(the value in the optimiser before each optimiser step, i.e. after `t` scheduler steps),
as a Rust table. src/nn/schedule.rs hard-codes the output in its test `matches_pytorch`.

Run: python3 scripts/schedule_fixture.py
"""
import warnings
import torch
from torch.optim import lr_scheduler as S

warnings.filterwarnings("ignore")
N = 14
CONFIGS = [
    ("step", 0.1, lambda o: S.StepLR(o, step_size=3, gamma=0.5)),
    ("multistep", 0.1, lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3)),
    ("exponential", 0.1, lambda o: S.ExponentialLR(o, gamma=0.9)),
    ("cosine", 0.1, lambda o: S.CosineAnnealingLR(o, T_max=N, eta_min=0.001)),
    ("linear", 0.1, lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4)),
    ("onecycle", 0.1, lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=N + 1, cycle_momentum=False)),
    ("onecycle_three", 0.1, lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=N + 1, pct_start=0.25,
                                                    three_phase=True, div_factor=10, final_div_factor=100,
                                                    cycle_momentum=False)),
    ("onecycle_linear", 0.1, lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=N + 1, anneal_strategy="linear",
                                                     cycle_momentum=False)),
    ("warmup_cosine", 0.1, lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=3),
                                                        S.CosineAnnealingLR(o, T_max=N - 3)], milestones=[3])),
]
for name, lr, make in CONFIGS:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    sched = make(opt)
    lrs = []
    for t in range(N + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    print(f'    ("{name}", [{", ".join(repr(v) for v in lrs)}]),')
