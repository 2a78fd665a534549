"""When each CTA of FP4Linear's W4A16 kernel (M = 1, K = N = 8192) starts and ends, from
`%globaltimer`: the spread of the start (launch ramp), of the end (tail) and the span of one
call, for a few stage counts, with and without programmatic dependent launch.

    python3 bench/w4a16_timeline.py [--stages 4,8]     (each configuration in its own process)

A measurement tool: in its own process it adds a kernel hook that stamps every CTA's first
and last instant into the output buffer (the output is garbage then), after 8 warm-up calls
cycling 4 weight copies (L2-cold), then reads one call's stamps.
"""

import argparse
import subprocess
import sys

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--stages", default="4,8")
ap.add_argument("--config", default="", help="(internal) 'stages:pdl' in this process")
a = ap.parse_args()
if not a.config:
    for s in a.stages.split(","):
        for pdl in (0, 1):
            subprocess.run([sys.executable, __file__, "--config", f"{s}:{pdl}"])
    sys.exit(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tilec as ct  # noqa: E402
from tilec.backends.ptx import emitter as E  # noqa: E402
from tilec.nn import FP4Linear  # noqa: E402
from tilec.nn import linear as L  # noqa: E402

stages, pdl = (int(v) for v in a.config.split(":"))


def stamp(em):
    """Thread 0 of each CTA writes (start, end, smid) at Bias + ctaid.y * 32 (the kernel's
    fourth tensor, unread without a bias); other kernels (the quantizer) are left alone."""
    if em.func.sym_name.data != "w4a16_kernel":
        return
    t0 = em.new("rd")
    em.ins(f"mov.u64 {t0}, %globaltimer")
    y = list(em.tensors.values())[3]

    def at_exit():
        t1, sm, cta, addr, p = em.new("rd"), em.new("r"), em.new("r"), em.new("rd"), em.new("p")
        em.ins(f"mov.u64 {t1}, %globaltimer")
        em.ins(f"mov.u32 {sm}, %smid")
        em.ins(f"mov.u32 {cta}, %ctaid.y")
        em.ins(f"mul.wide.u32 {addr}, {cta}, 32")
        em.ins(f"add.s64 {addr}, {addr}, {y.ptr}")
        em.ins(f"setp.eq.u32 {p}, {em.tid}, 0")
        em.ins(f"@{p} st.global.u64 [{addr}], {t0}")
        em.ins(f"@{p} st.global.u64 [{addr}+8], {t1}")
        em.ins(f"@{p} st.global.u32 [{addr}+16], {sm}")
    em.at_exit(at_exit)


E.KERNEL_HOOKS.append(stamp)
k = n = 8192
torch.manual_seed(0)
layers = [FP4Linear.from_float(torch.nn.Linear(k, n, bias=False, device="cuda", dtype=torch.float16), "mx")
          for _ in range(4)]
x = torch.randn(1, k, dtype=torch.float16, device="cuda")
ys = [torch.zeros(1, n, dtype=torch.float16, device="cuda") for _ in range(4)]
stamps = [torch.zeros(1, n, dtype=torch.float16, device="cuda") for _ in range(4)]
opts = dict(L.launch_options(1), num_stages=stages, launch_pdl=bool(pdl))


def call(i):
    lay = layers[i % 4]
    L.w4a16_kernel[(1, n // L.BN)](x, ct.fp4_tensor(lay.weight_packed, (n, k)), lay.weight_scale, stamps[i % 4],
                                   ys[i % 4], 1.0, 8, L.BN, L.BK, 32, False, **opts)


for i in range(12):                                         # warm-up (and the fast launch paths)
    call(i)
torch.cuda.synchronize()
g = torch.cuda.CUDAGraph()                                  # 4 calls back to back, as bench/fp4.py times them
with torch.cuda.graph(g):
    for i in range(4):
        call(i)
for _ in range(3):
    g.replay()
torch.cuda.synchronize()
rows = []
for y in stamps:
    raw = y.view(torch.uint8).cpu().numpy()[0, :128 * 32].reshape(128, 32)
    t = raw[:, :16].copy().view(np.uint64).astype(np.int64)   # [cta, (start, end)]
    rows.append(t)
first = min(int(t[:, 0].min()) for t in rows)
print(f"stages {stages}, {'PDL' if pdl else 'plain launches'} (us from the first call's first CTA start):")
for c, t in enumerate(rows):
    s, e = (t[:, 0] - first) / 1e3, (t[:, 1] - first) / 1e3
    print(f"  call {c}: starts {s.min():6.2f} .. {s.max():6.2f}, ends {np.percentile(e, 5):6.2f} (5%) "
          f"{np.median(e):6.2f} (median) {e.max():6.2f} (last); CTA time median {np.median(e - s):5.2f}")
