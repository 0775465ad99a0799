#!/usr/bin/env python3
"""Peak resident memory of PyTorch's side of one case of the kernel benchmark, printed the
way `bench_ops` prints it: the process's peak RSS, its RSS before the case's tensors
existed (after `import torch`), and the difference.

  python3 scripts/bench/peak_memory.py [--only "train step"] [--threads 2] [--reps 50]
"""
import argparse, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch_conv  # noqa: E402


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
    return None


ap = argparse.ArgumentParser()
ap.add_argument("--only", default="train step")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=50)
a = ap.parse_args()
torch.set_num_threads(a.threads)
before = status_kib("VmRSS")
cases = torch_conv.make_cases(a.only)
for cid, _, fn in cases:
    for _ in range(a.reps):
        fn()
peak = status_kib("VmHWM")
print(f"# {', '.join(c[0] for c in cases)}: peak RSS {peak / 1024:.1f} MiB, "
      f"before the cases {before / 1024:.1f} MiB, difference {(peak - before) / 1024:.1f} MiB")
