"""Where FP4Linear's W4A16 decode kernel (M = 1, K = N = 8192) spends its time: the kernel as
built, then two variants that each drop one side, timed the same way (CUDA graph, 4 weight
copies cycled so the weights come from HBM):

* "compute only": no TMA copies and no mbarrier waits (the warps decode whatever the shared
  memory holds, the results are garbage): the decode and mma issue alone, the compute bound;
* "no decode": the loop streams and waits for every stage but computes nothing: the data
  movement bound (the TMA ring, its barriers and the activation loads).

    python3 bench/w4a16_bounds.py [--m 1]      (each variant runs in its own process)

A measurement tool (the variants are made by patching the lowering in this process only).
"""

import argparse

import torch

import tilec as ct
from tilec.backends.ptx import lower_w4a16, lower_w4a16_tma
from tilec.nn import FP4Linear
from tilec.nn import linear as L

from timing import graphed

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--m", type=int, default=1)
ap.add_argument("--copies", type=int, default=4)
ap.add_argument("--stages", type=int, default=0, help="override the stage count (0: FP4Linear's)")
ap.add_argument("--variants", default="as built,compute only,no decode")
ap.add_argument("--bn", type=int, default=0, help="weight rows per CTA (0: FP4Linear's)")
ap.add_argument("--bk", type=int, default=0, help="K per chunk (0: FP4Linear's)")
ap.add_argument("--warps", type=int, default=0)
ap.add_argument("--k", type=int, default=8192)
ap.add_argument("--pdl", action="store_true", help="launch_pdl=True (as FP4Linear's steady state)")
ap.add_argument("--variant", default="", help="(internal) one variant in this process")
a = ap.parse_args()
if not a.variant:
    import subprocess
    import sys

    for v in a.variants.split(","):
        subprocess.run([sys.executable, __file__, "--m", str(a.m), "--copies", str(a.copies), "--stages",
                        str(a.stages), "--bn", str(a.bn), "--bk", str(a.bk), "--warps", str(a.warps), "--variant", v] + ["--k", str(a.k)] + (["--pdl"] if a.pdl else []))
    sys.exit(0)
k, n = a.k, 8192
torch.manual_seed(0)
layers = [FP4Linear.from_float(torch.nn.Linear(k, n, bias=False, device="cuda", dtype=torch.float16), "mx")
          for _ in range(a.copies)]
xs = [torch.randn(a.m, k, dtype=torch.float16, device="cuda") for _ in range(a.copies)]
bm, _ = L.plan(a.m, n, k)
y = torch.empty(a.m, n, dtype=torch.float16, device="cuda")
state = {"i": 0}


def call():
    i = state["i"] = (state["i"] + 1) % a.copies
    lay = layers[i]
    L.w4a16_kernel[(1, n // BN)](xs[i], ct.fp4_tensor(lay.weight_packed, (n, k)), lay.weight_scale, y, y, 1.0,
                                 bm, BN, BK, 32, False, **opts)


opts = dict(L.launch_options(a.m))
if a.stages:
    opts["num_stages"] = a.stages
if a.warps:
    opts["num_warps"] = a.warps
BN, BK = a.bn or L.BN, a.bk or L.BK


def measure(name):
    L.w4a16_kernel._cache.clear()
    L.w4a16_kernel._plans.clear()
    t = graphed(call, reps=10, inner=2 * a.copies)
    print(f"{name:<34} {t * 1e6:7.1f} us")


if a.pdl:
    opts["launch_pdl"] = True
if a.variant == "compute only":
    from tilec.backends.ptx.emitter import KernelEmitter

    real_ins = KernelEmitter.ins

    def ins(self, text):
        if not text.startswith(("cp.async.bulk.tensor", "mbarrier.arrive.expect_tx")):
            real_ins(self, text)
    KernelEmitter.ins = ins
    lower_w4a16_tma.wait_parity = lambda em, bar, parity, hint="mbar_wait": None
elif a.variant == "no decode":
    lower_w4a16._compute = lambda *args, **kw: None
measure(f"M = {a.m}, K = {k}, BN {BN} BK {BK} {opts['num_warps']} warps {opts['num_stages']} stages, {a.copies} copies: "
        f"{a.variant}{', PDL' if a.pdl else ''}")
