#!/usr/bin/env python3
"""By-hand check (not in CI): an independent float64 NumPy implementation of docs/unet.md, written
from the document, fed with the initializers of an exported U-Net and compared against ONNX
Runtime on random inputs at two sizes. It checks that the document states what the graph computes
(the contract a training backend implements).

    python3 -m venv /tmp/v && /tmp/v/bin/pip install onnx onnxruntime numpy
    /tmp/v/bin/python export/tools/unet_spec_check.py MODEL.onnx [MAX_REL_ERR]

MODEL.onnx: any model written by `bridge_export::unet_graph` (e.g. the ones
`cargo test -p bridge-export --test onnx_runtime` leaves in the target dir's `tmp/`).
"""
import sys, json, numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper
path = sys.argv[1]
bound = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
m = onnx.load(path)
P = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
cfg = json.loads({p.key: p.value for p in m.metadata_props}["unet.config"])
C, G, heads = cfg["channels"], cfg["groups"], cfg["heads"]
L, R = len(cfg["channel_mult"]), cfg["num_res_blocks"]

def conv(x, p, stride=1):
    w, b = P[p + ".weight"], P[p + ".bias"]
    k = w.shape[2]; pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    N, _, H, W = x.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((N, w.shape[0], Ho, Wo))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out + b[None, :, None, None]
def lin(x, p): return x @ P[p + ".weight"].T + P[p + ".bias"]
def gn(x, p):
    N, Cc, H, W = x.shape
    g = x.reshape(N, G, -1); mu = g.mean(-1, keepdims=True); var = ((g - mu) ** 2).mean(-1, keepdims=True)
    y = ((g - mu) / np.sqrt(var + 1e-5)).reshape(x.shape)
    return y * P[p + ".weight"][None, :, None, None] + P[p + ".bias"][None, :, None, None]
silu = lambda x: x / (1 + np.exp(-x))
def res(x, e, p):
    h = conv(silu(gn(x, p + ".norm1")), p + ".conv1")
    h = h + lin(e, p + ".emb")[:, :, None, None]
    h = conv(silu(gn(h, p + ".norm2")), p + ".conv2")
    return (conv(x, p + ".skip") if (p + ".skip.weight") in P else x) + h
def attn(x, p):
    N, c, H, W = x.shape; d = c // heads
    g = gn(x, p + ".norm")
    q, k, v = (conv(g, p + s).reshape(N, heads, d, H * W) for s in (".q", ".k", ".v"))
    s = np.einsum("nhdi,nhdj->nhij", q, k) / np.sqrt(d)
    a = np.exp(s - s.max(-1, keepdims=True)); a /= a.sum(-1, keepdims=True)
    o = np.einsum("nhij,nhdj->nhdi", a, v).reshape(N, c, H, W)
    return x + conv(o, p + ".proj")
def unet(x, cond, t):
    h = np.concatenate([x, cond], 1) if cond is not None else x
    half = C // 2
    f = (cfg["time_scale"] * np.exp(-np.log(10000.0) * np.arange(half) / half)).astype(np.float32).astype(np.float64)
    a = t.reshape(-1, 1) * f
    e = np.concatenate([np.sin(a), np.cos(a)], 1)
    e = silu(lin(silu(lin(e, "time.lin1")), "time.lin2"))
    h = conv(h, "conv_in"); skips = []
    for i in range(L):
        for j in range(R):
            h = res(h, e, f"down.{i}.res.{j}")
            if i in cfg["attention_levels"]: h = attn(h, f"down.{i}.attn.{j}")
            skips.append(h)
        if i < L - 1: h = conv(h, f"down.{i}.down", 2)
    h = res(h, e, "mid.res.0")
    if cfg["mid_attention"]: h = attn(h, "mid.attn")
    h = res(h, e, "mid.res.1")
    for i in reversed(range(L)):
        for j in range(R):
            h = res(np.concatenate([h, skips.pop()], 1), e, f"up.{i}.res.{j}")
            if i in cfg["attention_levels"]: h = attn(h, f"up.{i}.attn.{j}")
        if i > 0: h = conv(h.repeat(2, 2).repeat(2, 3), f"up.{i}.up")
    return conv(silu(gn(h, "out.norm")), "out.conv")

rng = np.random.default_rng(0)
s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
names = [i.name for i in s.get_inputs()]
sm = 2 ** (L - 1)
for (N, H, W) in [(2, 2 * sm, 3 * sm), (1, 4 * sm, 2 * sm)]:
    x = rng.uniform(-1, 1, (N, cfg["in_channels"], H, W)).astype(np.float32)
    c = rng.uniform(-1, 1, (N, cfg["cond_channels"], H, W)).astype(np.float32) if "cond" in names else None
    # Times whose embedding arguments t·time_scale reach ~1000 (large sin/cos arguments).
    t = (rng.uniform(0, 1000, (N,)) / cfg["time_scale"]).astype(np.float32)
    feed = {"x": x, "t": t, **({"cond": c} if c is not None else {})}
    got = s.run(["out"], feed)[0].astype(np.float64)
    want = unet(x.astype(np.float64), None if c is None else c.astype(np.float64), t.astype(np.float64))
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    relmax = np.abs(got - want).max() / np.abs(want).max()
    print(f"{path}: {N}x{H}x{W}: rel L2 {rel:.2e}, rel max {relmax:.2e} (max |out| {np.abs(want).max():.3g})")
    if not (rel <= bound and relmax <= bound):
        sys.exit(f"FAIL: ONNX Runtime and the documented network differ by more than {bound}")
print("OK")
