#!/usr/bin/env python3
"""Writes tests/fixtures/torch_layers.safetensors: the state_dict of a small PyTorch model
built from every layer of `tapegrad::nn::layers` (saved with safetensors.torch, so
num_batches_tracked is int64), plus, under `fixture.`, an input, the model's output in
evaluation and in training mode, the gradients of a training-mode loss, and the running
statistics after that training forward. tests/layers.rs builds the same model, loads the
file by name and compares.

Run: python3 scripts/torch_layers_fixture.py
"""
import os
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, (3, 1), padding=(1, 0), groups=2, bias=False)
        self.gn = nn.GroupNorm(4, 8)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)
        self.ln = nn.LayerNorm(8)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))  # [N, 8, 4, 4]
        h = F.gelu(self.gn(self.conv2(h)))  # [N, 8, 4, 4]
        h = self.ln(self.up(h))  # [N, 4, 8, 8], normalised over the last axis
        return self.fc(h.mean((2, 3)))  # [N, 5]


net = Net()
# Affine parameters away from their ones and zeros, running statistics away from theirs.
with torch.no_grad():
    for m in (net.bn1, net.gn, net.ln):
        m.weight.normal_(1.0, 0.3)
        m.bias.normal_(0.0, 0.3)
    for _ in range(3):
        net(torch.randn(4, 3, 8, 8) * 2 + 0.5)

state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
x = torch.randn(2, 3, 8, 8)
r = torch.randn(2, 5)
net.eval()
with torch.no_grad():
    out_eval = net(x)
net.train()
out_train = net(x)
(out_train * r).sum().backward()

fixture = dict(state)
fixture["fixture.input"] = x
fixture["fixture.r"] = r
fixture["fixture.out_eval"] = out_eval.detach()
fixture["fixture.out_train"] = out_train.detach()
for name, p in net.named_parameters():
    fixture[f"fixture.grad.{name}"] = p.grad.detach().clone()
for name, b in net.named_buffers():
    fixture[f"fixture.after.{name}"] = b.detach().clone()
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "torch_layers.safetensors")
save_file(fixture, path)
print(path, os.path.getsize(path), "bytes", sorted(state))
