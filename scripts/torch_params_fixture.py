#!/usr/bin/env python3
"""Writes tests/fixtures/torch_params.safetensors with safetensors.torch.save_file: a few
float32 and float64 parameters whose values follow simple formulas, so that the test
`loads_a_file_written_by_pytorch` in src/nn/io.rs can recompute them exactly.

Run: python3 scripts/torch_params_fixture.py
"""
import os
import torch
from safetensors.torch import save_file

f32, f64 = torch.float32, torch.float64
params = {
    # A conv weight [O, I, kh, kw]: i * 0.1 - 0.9, each operation rounded in float32.
    "conv1.weight": (torch.arange(18, dtype=f32) * 0.1 - 0.9).reshape(2, 1, 3, 3),
    "conv1.bias": torch.tensor([0.5, -0.25], dtype=f32),
    # A linear weight in float64: i / 3.
    "fc.weight": (torch.arange(6, dtype=f64) / 3).reshape(3, 2),
    "fc.bias": torch.tensor([0.1, -0.2], dtype=f64),
    # A rank-0 tensor.
    "scale": torch.tensor(2.5, dtype=f32),
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "torch_params.safetensors")
save_file(params, path)
print(path, os.path.getsize(path), "bytes")
