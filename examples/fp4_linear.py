"""FP4Linear: an nn.Linear with FP4 (e2m1) weights and block scales, W4A16.

`FP4Linear.from_float(linear, scale="mx" | "nv")` quantizes the weight with the tilec kernel
`tilec.nn.quantize_fp4` (e2m1 codes two per byte, one e8m0 scale per 32 weights, or one
e4m3 scale per 16 plus a per-tensor float32 scale).  The forward pass is a tilec kernel
whose K loop dequantizes the weight tile and multiplies: on sm_90a / sm_80 the tile-w4a16
pass runs it as a cp.async ring + register decode + mma.sync, on the CPU backend as numpy.

The output is checked against numpy float64 with the weights decoded independently
(`tilec.fp4.dequantize`, ml_dtypes); the FP4 error against the unquantized layer is printed.

    python examples/fp4_linear.py          # CPU; on a GPU machine also runs on the GPU
"""

import numpy as np
import torch

from tilec.nn import FP4Linear


def main(m: int = 4, k: int = 512, n: int = 256, scale: str = "mx", device: str = "cpu") -> float:
    torch.manual_seed(0)
    lin = torch.nn.Linear(k, n).to(device)
    layer = FP4Linear.from_float(lin, scale)
    x = torch.randn(m, k, device=device, dtype=torch.float16)
    y = layer(x)
    ref = x.double().cpu().numpy() @ layer.dequantized_weight().T + layer.bias.double().cpu().numpy()
    err = float(np.max(np.abs(y.double().cpu().numpy() - ref)) / np.max(np.abs(ref)))
    exact = lin(x.float()).double().detach().cpu().numpy()
    quant = float(np.linalg.norm(y.double().cpu().numpy() - exact) / np.linalg.norm(exact))
    print(f"FP4Linear {scale.upper()} [{m} x {k}] @ [{k} x {n}] on {device}: max relative error vs float64 "
          f"= {err:.3g} (FP4 quantization error vs the fp32 layer: {quant:.3g})")
    assert err < 2e-3
    return err


if __name__ == "__main__":
    for s in ("mx", "nv"):
        main(scale=s)
    if torch.cuda.is_available():
        for s in ("mx", "nv"):
            main(scale=s, device="cuda")
