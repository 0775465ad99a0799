#!/usr/bin/env python3
"""The second-order examples (examples/pinn.rs, examples/gradient_penalty.rs) in PyTorch,
for comparing figures one to one. Run by hand (needs torch and numpy):

    python3 scripts/torch_higher_order.py --recipe pinn [--steps 3000] [--threads 2]
    python3 scripts/torch_higher_order.py --recipe wgan-gp [--steps 300] [--threads 2]
        [--data /usr/share/datasets/fashion-mnist] [--limit 60000]

- pinn: -u'' = pi^2 sin(pi x) on (0, 1), u(0) = u(1) = 0; MLP 1-32-32-1 tanh, Glorot
  normal weights, zero biases; 64 cell-centre collocation points; loss = mean residual^2 +
  u(0)^2 + u(1)^2, u'' by torch.autograd.grad(create_graph=True) twice; Adam lr 1e-3,
  float32. Prints `result: max_error=.. rel_l2=.. loss=.. steps=.. seconds=..
  ms_per_step=..` as the example does (errors over 201 points of [0, 1]).
- wgan-gp: the example's critic (conv 16@5x5 pad 2, relu, max-pool 2, conv 32@5x5 pad 2,
  relu, max-pool 2, linear 1568-1; He normal convs, Glorot normal linear, zero biases) and
  generator (MLP 32-256-784, relu, tanh); images scaled to [-1, 1]; 5 critic steps per
  generator step, lambda 10, Adam lr 1e-4 betas (0.5, 0.9), batch 64. Prints the
  example's `result:` line, timing each critic and generator step the same way (the
  critic step from generating its fake batch to the optimiser step).

Weights come from torch's generator, so runs agree in distribution, not bit for bit.
"""

import argparse
import gzip
import math
import os
import time

import numpy as np
import torch
from torch import nn


def glorot_normal(w):
    nn.init.xavier_normal_(w)


def pinn(a):
    torch.manual_seed(a.seed)
    width = 32
    layers = [nn.Linear(1, width), nn.Linear(width, width), nn.Linear(width, 1)]
    for l in layers:
        glorot_normal(l.weight)
        nn.init.zeros_(l.bias)
    params = [p for l in layers for p in l.parameters()]

    def u(x):
        h = torch.tanh(layers[0](x))
        h = torch.tanh(layers[1](h))
        return layers[2](h)

    n = 64
    x0 = ((torch.arange(n, dtype=torch.float64) + 0.5) / n).float().reshape(n, 1)
    rhs = (math.pi ** 2 * torch.sin(math.pi * x0.double())).float()
    ends = torch.tensor([[0.0], [1.0]])

    def loss_fn():
        x = x0.clone().requires_grad_(True)
        y = u(x)
        ux, = torch.autograd.grad(y.sum(), x, create_graph=True)
        uxx, = torch.autograd.grad(ux.sum(), x, create_graph=True)
        return ((uxx + rhs) ** 2).mean() + (u(ends) ** 2).sum()

    opt = torch.optim.Adam(params, lr=1e-3)
    start = time.perf_counter()
    for step in range(a.steps):
        loss = loss_fn()
        if step % 500 == 0:
            print(f"step {step:>5}: loss {loss.item():.4e}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    final = loss_fn().item()
    with torch.no_grad():
        xs = torch.arange(201, dtype=torch.float64) / 200.0
        pred = u(xs.float().reshape(201, 1)).double().reshape(201)
        exact = torch.sin(math.pi * xs)
        err = pred - exact
        max_error = err.abs().max().item()
        rel_l2 = (err.norm() / exact.norm()).item()
    print(f"result: max_error={max_error:.3e} rel_l2={rel_l2:.3e} loss={final:.3e} "
          f"steps={a.steps} seconds={seconds:.2f} ms_per_step={1e3 * seconds / a.steps:.3f}")


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, 1, h, w)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 7 * 7, 1)
        for c in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(c.weight, nonlinearity="relu")
            nn.init.zeros_(c.bias)
        glorot_normal(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        h = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(1))


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 256)
        self.fc2 = nn.Linear(256, 784)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        glorot_normal(self.fc2.weight)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, z):
        h = torch.relu(self.fc1(z))
        return torch.tanh(self.fc2(h)).reshape(-1, 1, 28, 28)


def wgan_gp(a):
    torch.manual_seed(a.seed)
    raw = read_idx_images(os.path.join(a.data, "train-images-idx3-ubyte.gz"))[: a.limit]
    images = torch.from_numpy((raw.astype(np.float32) / np.float32(255.0)) * 2 - 1)
    n, b = images.shape[0], a.batch
    critic, gen = Critic(), Generator()
    opt_c = torch.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-4, betas=(0.5, 0.9))
    order, nxt = None, n
    w_hist, norm_hist = [], []
    critic_time = gen_time = 0.0
    start = time.perf_counter()
    for step in range(a.steps):
        for _ in range(5):
            if nxt + b > n:
                order, nxt = torch.randperm(n), 0
            real = images[order[nxt:nxt + b]]
            nxt += b
            z = torch.randn(b, 32)
            eps = torch.rand(b, 1, 1, 1)
            t0 = time.perf_counter()
            with torch.no_grad():
                fake = gen(z)
            d_real = critic(real).mean()
            d_fake = critic(fake).mean()
            xh = (eps * real + (1 - eps) * fake).requires_grad_(True)
            gx, = torch.autograd.grad(critic(xh).sum(), xh, create_graph=True)
            norm = (gx.square().reshape(b, 784).sum(1) + 1e-12).sqrt()
            loss = d_fake - d_real + 10.0 * ((norm - 1) ** 2).mean()
            opt_c.zero_grad(set_to_none=True)
            loss.backward()
            opt_c.step()
            critic_time += time.perf_counter() - t0
            w_hist.append((d_real - d_fake).item())
            norm_hist.append(norm.mean().item())
        t0 = time.perf_counter()
        z = torch.randn(b, 32)
        loss = -critic(gen(z)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        gen_time += time.perf_counter() - t0
        if (step + 1) % 50 == 0 or step + 1 == a.steps:
            print(f"generator step {step + 1:>4}: W estimate {np.mean(w_hist[-50:]):.4f}, "
                  f"gradient norm {np.mean(norm_hist[-50:]):.3f}")
    seconds = time.perf_counter() - start
    cs = len(w_hist)
    print(f"result: generator_steps={a.steps} critic_steps={cs} "
          f"w_distance={np.mean(w_hist[-50:]):.4f} grad_norm={np.mean(norm_hist[-50:]):.3f} "
          f"ms_per_critic_step={1e3 * critic_time / cs:.2f} "
          f"ms_per_generator_step={1e3 * gen_time / a.steps:.2f} seconds={seconds:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", choices=["pinn", "wgan-gp"], required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--limit", type=int, default=60000)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"recipe {a.recipe}, torch {torch.__version__}, threads {a.threads}")
    if a.recipe == "pinn":
        a.steps = a.steps or 3000
        pinn(a)
    else:
        a.steps = a.steps or 300
        wgan_gp(a)


if __name__ == "__main__":
    main()
