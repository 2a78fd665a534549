"""FP4Linear (MX) decode calls for a profiler to catch: K = N = 8192, M = 1 (`--m`), three calls
(the first compiles; profile with --launch-skip 2 --launch-count 1).  See bench/ncu_top_stalls.py."""

import argparse

import torch

from tilec.nn import FP4Linear

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--m", type=int, default=1)
ap.add_argument("--k", type=int, default=8192)
ap.add_argument("--n", type=int, default=8192)
a = ap.parse_args()
torch.manual_seed(0)
lin = torch.nn.Linear(a.k, a.n, bias=False, device="cuda", dtype=torch.float16)
layer = FP4Linear.from_float(lin, "mx")
x = torch.randn(a.m, a.k, dtype=torch.float16, device="cuda")
for _ in range(3):
    layer(x)
torch.cuda.synchronize()
