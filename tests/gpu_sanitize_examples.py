"""Run every example once on small CUDA tensors (the program compute-sanitizer watches).

    compute-sanitizer --tool memcheck --error-exitcode 9 python tests/gpu_sanitize_examples.py
    compute-sanitizer --tool racecheck --error-exitcode 9 python tests/gpu_sanitize_examples.py

tests/test_gpu_sanitizer.py runs both and asserts a clean report.
"""

import importlib.util
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    rnd = lambda *s, dtype=torch.float16: torch.randn(*s, device="cuda", generator=g).to(dtype)  # noqa: E731
    x32 = rnd(3000, dtype=torch.float32)
    example("vector_add").add(x32, x32, torch.empty_like(x32))
    x = rnd(70, 130)
    example("fused_elementwise").launch(x, rnd(130), torch.empty_like(x), 0.5)
    a, b = rnd(100, 72), rnd(72, 90)
    example("matmul").matmul(a, b, torch.empty(100, 90, device="cuda"))
    example("matmul_relu_dropout").launch(a, b, torch.empty(100, 90, device="cuda"), 0.5, 0.25, 7)
    s = rnd(37, 300)
    example("softmax").softmax(s, torch.empty_like(s))
    ln = rnd(21, 90, dtype=torch.float32)
    example("layernorm").layernorm(ln, rnd(90, dtype=torch.float32), rnd(90, dtype=torch.float32),
                                   torch.empty_like(ln))
    q, k, v = (rnd(1, 2, 100, 32) for _ in range(3))
    for causal in (False, True):
        example("flash_attention").attention(q, k, v, torch.empty_like(q), causal)
    torch.cuda.synchronize()
    print("all examples ran", file=sys.stderr)


if __name__ == "__main__":
    main()
