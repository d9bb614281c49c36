"""PyTorch's fused attention on the step's shape, for comparison with attn_fwd_pipe / attn_bwd_fused
(reference figures only; PyTorch is never a dependency): q, k, v [256, 12, 197, 64] bf16, forward
alone and forward + backward, per SDPA backend. The engine's backward carries two gradient signals
in one launch; here each backward carries one, so 'bwd x2' is the comparable figure.
  python3 sdpa_bench.py"""
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, H, N, Dh = 256, 12, 197, 64
torch.manual_seed(0)
q, k, v = (torch.randn(B, H, N, Dh, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
g = torch.randn(B, H, N, Dh, device="cuda", dtype=torch.bfloat16)


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


for name, backend in [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]:
    try:
        with sdpa_kernel(backend):
            with torch.no_grad():
                fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v))
            o = F.scaled_dot_product_attention(q, k, v)
            bwd = timed(lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
        print(json.dumps({"sdpa": name, "fwd_ms": round(fwd, 4), "bwd_ms": round(bwd, 4), "bwd_x2_ms": round(2 * bwd, 4)}))
    except Exception as e:  # a backend this build or GPU lacks
        print(json.dumps({"sdpa": name, "error": str(e)[:200]}))
