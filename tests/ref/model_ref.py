#!/usr/bin/python3
"""PyTorch reference for steps/model (tests/unit/test_model.c).

Builds tiny random decoders as Hugging Face folders (config.json +
model.safetensors, written by hand) and, for a fixed batch, dumps what
sluice must reproduce: logits, loss, every parameter's gradient, the losses
of 10 AdamW steps and the parameters after them, and a greedy continuation.
The models are written here from the papers' and transformers' equations
(no transformers import): GPT-2 (learned positions, LayerNorm, GELU tanh,
Conv1D weights stored (in, out), tied head) and Llama (RMSNorm, RoPE with
rotate_half, optional llama3 rope_scaling, SwiGLU, grouped-query attention,
q/k/v biases as Qwen2 has, tied or untied head).

    model_ref.py OUTDIR [CASE...]   one folder per case (all by default),
                                    each with ref.safetensors
    model_ref.py OUTDIR gpt2_f16|llama_f16|llama_bf16
                                    a model stored in half precision (see
                                    HALF), with ref.safetensors holding the
                                    logits computed in F32 from the rounded
                                    weights
    model_ref.py --bench DIR B T STEPS THREADS
                                    bench/bench_train's peer: seconds of the
                                    fastest training step on folder DIR
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

B, T = 3, 10
STEPS = 10
# llm.c's test_gpt2: AdamW(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
LR, BETAS, EPS, WD = 1e-4, (0.9, 0.999), 1e-8, 0.01

CASES = {
    "gpt2": dict(model_type="gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=16,
                 vocab_size=64, layer_norm_epsilon=1e-5),
    "llama": dict(model_type="llama", hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  max_position_embeddings=16, vocab_size=64, rms_norm_eps=1e-5,
                  rope_theta=10000.0, tie_word_embeddings=True),
    "gqa": dict(model_type="llama", hidden_size=32, intermediate_size=48,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=16, vocab_size=64, rms_norm_eps=1e-6,
                rope_theta=500.0, tie_word_embeddings=False),
    "qwen2": dict(model_type="qwen2", hidden_size=32, intermediate_size=64,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=16, max_position_embeddings=16, vocab_size=64, rms_norm_eps=1e-6,
                  rope_theta=1000000.0, tie_word_embeddings=False),
    "llama_bias": dict(model_type="llama", hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=16, vocab_size=64, rms_norm_eps=1e-5,
                       rope_theta=10000.0, tie_word_embeddings=False, attention_bias=True),
    "llama3": dict(model_type="llama", hidden_size=32, intermediate_size=64,
                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                   max_position_embeddings=16, vocab_size=64, rms_norm_eps=1e-5,
                   rope_theta=10000.0, tie_word_embeddings=True,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=64)),
}


# Half-precision cases: (base case, the dtype of the matrices and embeddings,
# of the 1-D tensors (norms, biases), config.json's torch_dtype). gpt2_f16's
# config names bfloat16 while the tensors are F16: as transformers does,
# each tensor's own dtype in the file is what counts. llama_f16 keeps its
# norms in F32 beside F16 matrices, as some exports do.
HALF = {"gpt2_f16": ("gpt2", torch.float16, torch.float16, "bfloat16"),
        "llama_f16": ("gqa", torch.float16, torch.float32, "float16"),
        "llama_bf16": ("llama", torch.bfloat16, torch.bfloat16, "bfloat16")}
ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors, dtypes=None):
    """tensors by name, each written as F32 or, when dtypes names it, in that
    torch dtype (the value rounded to it)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        dt = (dtypes or {}).get(name, torch.float32)
        t = t.detach() if torch.is_tensor(t) else torch.from_numpy(np.asarray(t, np.float32))
        t = t.to(dt).contiguous()
        # numpy has no bfloat16: the bytes go out as 16-bit integers
        a = t.view(torch.int16).numpy() if dt == torch.bfloat16 else t.numpy()
        b = a.tobytes()
        header[name] = {"dtype": ST_DTYPE[dt], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """The F32 tensors of a safetensors file, by name (what model_save writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        assert h["dtype"] == "F32", name
        a, b = h["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32)
                                     .reshape(h["shape"]).copy())
    return out


def gpt2_params(c, g):
    C, L, V, P = c["n_embd"], c["n_layer"], c["vocab_size"], c["n_positions"]
    p = {"wte.weight": torch.randn(V, C, generator=g) * 0.3,
         "wpe.weight": torch.randn(P, C, generator=g) * 0.1}
    for i in range(L):
        h = f"h.{i}."
        p[h + "ln_1.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_1.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "attn.c_attn.weight"] = torch.randn(C, 3 * C, generator=g) * 0.2
        p[h + "attn.c_attn.bias"] = 0.1 * torch.randn(3 * C, generator=g)
        p[h + "attn.c_proj.weight"] = torch.randn(C, C, generator=g) * 0.1
        p[h + "attn.c_proj.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "ln_2.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "ln_2.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.c_fc.weight"] = torch.randn(C, 4 * C, generator=g) * 0.2
        p[h + "mlp.c_fc.bias"] = 0.1 * torch.randn(4 * C, generator=g)
        p[h + "mlp.c_proj.weight"] = torch.randn(4 * C, C, generator=g) * 0.1
        p[h + "mlp.c_proj.bias"] = 0.1 * torch.randn(C, generator=g)
    p["ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    p["ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    return p


def attention(q, k, v):
    # q: (B, H, T, hd); k, v: (B, H, T, hd)
    T_ = q.shape[2]
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    mask = torch.triu(torch.ones(T_, T_, dtype=torch.bool), 1)
    s = s.masked_fill(mask, float("-inf"))
    return F.softmax(s, dim=-1) @ v


def gpt2_forward(c, p, tok):
    C, H = c["n_embd"], c["n_head"]
    Bn, Tn = tok.shape
    eps = c["layer_norm_epsilon"]
    x = p["wte.weight"][tok] + p["wpe.weight"][:Tn]
    for i in range(c["n_layer"]):
        h = f"h.{i}."
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(Bn, Tn, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, C)
        x = x + y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        a = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        f = F.gelu(a @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + f @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].T


def llama_dims(c):
    H = c["num_attention_heads"]
    KV = c.get("num_key_value_heads", H)
    hd = c.get("head_dim", c["hidden_size"] // H)
    return c["hidden_size"], H, KV, hd, c["intermediate_size"]


def llama_params(c, g):
    C, H, KV, hd, Fd = llama_dims(c)
    V, L = c["vocab_size"], c["num_hidden_layers"]
    bias = c["model_type"] == "qwen2" or c.get("attention_bias", False)
    p = {"model.embed_tokens.weight": torch.randn(V, C, generator=g) * 0.3}
    for i in range(L):
        h = f"model.layers.{i}."
        p[h + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        for name, out in (("q_proj", H * hd), ("k_proj", KV * hd), ("v_proj", KV * hd)):
            p[h + f"self_attn.{name}.weight"] = torch.randn(out, C, generator=g) * 0.2
            if bias:
                p[h + f"self_attn.{name}.bias"] = 0.1 * torch.randn(out, generator=g)
        p[h + "self_attn.o_proj.weight"] = torch.randn(C, H * hd, generator=g) * 0.1
        if c.get("attention_bias", False):  # llama's: o_proj too (qwen2's: q, k, v only)
            p[h + "self_attn.o_proj.bias"] = 0.1 * torch.randn(C, generator=g)
        p[h + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        p[h + "mlp.gate_proj.weight"] = torch.randn(Fd, C, generator=g) * 0.2
        p[h + "mlp.up_proj.weight"] = torch.randn(Fd, C, generator=g) * 0.2
        p[h + "mlp.down_proj.weight"] = torch.randn(C, Fd, generator=g) * 0.1
    p["model.norm.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    if not c.get("tie_word_embeddings", False):
        p["lm_head.weight"] = torch.randn(V, C, generator=g) * 0.2
    return p


def rope_inv_freq(c, hd):
    # transformers' _compute_default_rope_parameters / _compute_llama3_parameters
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = c.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        inv_l = torch.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wl < hi_wl) * ~(wl > lo_wl)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama_forward(c, p, tok):
    C, H, KV, hd, Fd = llama_dims(c)
    Bn, Tn = tok.shape
    eps = c["rms_norm_eps"]
    inv = rope_inv_freq(c, hd)
    freqs = torch.arange(Tn, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    x = p["model.embed_tokens.weight"][tok]
    for i in range(c["num_hidden_layers"]):
        h = f"model.layers.{i}."
        a = rms_norm(x, p[h + "input_layernorm.weight"], eps)

        def proj(name):
            y = a @ p[h + f"self_attn.{name}.weight"].T
            if h + f"self_attn.{name}.bias" in p:
                y = y + p[h + f"self_attn.{name}.bias"]
            return y

        q = proj("q_proj").view(Bn, Tn, H, hd).transpose(1, 2)
        k = proj("k_proj").view(Bn, Tn, KV, hd).transpose(1, 2)
        v = proj("v_proj").view(Bn, Tn, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        y = attention(q, k, v).transpose(1, 2).reshape(Bn, Tn, H * hd)
        x = x + y @ p[h + "self_attn.o_proj.weight"].T
        if h + "self_attn.o_proj.bias" in p:
            x = x + p[h + "self_attn.o_proj.bias"]
        a = rms_norm(x, p[h + "post_attention_layernorm.weight"], eps)
        f = F.silu(a @ p[h + "mlp.gate_proj.weight"].T) * (a @ p[h + "mlp.up_proj.weight"].T)
        x = x + f @ p[h + "mlp.down_proj.weight"].T
    x = rms_norm(x, p["model.norm.weight"], eps)
    head = p.get("lm_head.weight", p["model.embed_tokens.weight"])
    return x @ head.T


def adamw(params):
    decay = [v for v in params.values() if v.dim() == 2]
    no_decay = [v for v in params.values() if v.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=LR, betas=BETAS, eps=EPS)


def make_case(outdir, name, c, seed):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    gpt2 = c["model_type"] == "gpt2"
    p = gpt2_params(c, g) if gpt2 else llama_params(c, g)
    forward = gpt2_forward if gpt2 else llama_forward
    V = c["vocab_size"]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    write_safetensors(os.path.join(d, "model.safetensors"), p)

    tok = torch.randint(0, V, (B, T + 1), generator=g)
    tokens, targets = tok[:, :-1].contiguous(), tok[:, 1:].clone()
    targets[0, :3] = -1  # a prompt whose loss is ignored, as in SFT
    mask = torch.ones(B, T)
    mask[1, 5:] = 0
    masked = targets.clone()
    masked[mask == 0] = -1

    params = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    logits = forward(c, params, tokens)
    loss = F.cross_entropy(logits.reshape(-1, V), masked.reshape(-1), ignore_index=-1)
    loss.backward()
    out = {"tokens": tokens.float(), "targets": targets.float(), "mask": mask,
           "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    for k, v in params.items():
        out["grad." + k] = v.grad

    # 10 AdamW steps, the 2D tensors decayed (model.h's grouping)
    params = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    opt = adamw(params)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        l = F.cross_entropy(forward(c, params, tokens).reshape(-1, V), masked.reshape(-1),
                            ignore_index=-1)
        l.backward()
        opt.step()
        losses.append(l.item())
    out["losses"] = torch.tensor(losses)
    for k, v in params.items():
        out["final." + k] = v.detach()

    # greedy continuation of the first row's first 4 tokens, full forward each step
    with torch.no_grad():
        seq = tokens[0, :4].tolist()
        limit = c.get("n_positions", c.get("max_position_embeddings"))
        while len(seq) < limit:
            z = forward(c, p, torch.tensor([seq]))
            seq.append(int(z[0, -1].argmax()))
    out["greedy"] = torch.tensor(seq, dtype=torch.float32)
    write_safetensors(os.path.join(d, "ref.safetensors"), out)


def make_half_case(outdir, name, seed):
    """A model whose weights are stored as HALF[name] says, and the logits
    and loss of a batch computed in F32 from those rounded weights."""
    base, mat_dt, vec_dt, torch_dtype = HALF[name]
    c = dict(CASES[base], torch_dtype=torch_dtype)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    gpt2 = c["model_type"] == "gpt2"
    p = gpt2_params(c, g) if gpt2 else llama_params(c, g)
    dtypes = {k: mat_dt if v.dim() == 2 else vec_dt for k, v in p.items()}
    p = {k: v.to(dtypes[k]).float() for k, v in p.items()}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    write_safetensors(os.path.join(d, "model.safetensors"), p, dtypes)
    V = c["vocab_size"]
    tok = torch.randint(0, V, (B, T + 1), generator=g)
    tokens, targets = tok[:, :-1].contiguous(), tok[:, 1:].contiguous()
    logits = (gpt2_forward if gpt2 else llama_forward)(c, p, tokens)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    write_safetensors(os.path.join(d, "ref.safetensors"),
                      {"tokens": tokens.float(), "targets": targets.float(),
                       "logits": logits.detach(), "loss": loss.detach().reshape(1)})


def bench(d, Bn, Tn, steps, threads):
    """The peer of bench/bench_train: seconds of the fastest of steps training
    steps (forward, backward, clipping, AdamW) on the model folder d."""
    import time
    torch.set_num_threads(threads)
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    params = {k: v.requires_grad_(True)
              for k, v in read_safetensors(os.path.join(d, "model.safetensors")).items()}
    forward = gpt2_forward if c["model_type"] == "gpt2" else llama_forward
    V = c["vocab_size"]
    g = torch.Generator().manual_seed(0)
    tok = torch.randint(0, V, (Bn, Tn + 1), generator=g)
    opt = adamw(params)
    best = float("inf")
    for s in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(forward(c, params, tok[:, :-1]).reshape(-1, V),
                               tok[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        if s > 0:  # the first step allocates
            best = min(best, time.perf_counter() - t0)
    print(best)


def main():
    if sys.argv[1] == "--bench":
        d, Bn, Tn, steps, threads = sys.argv[2], *map(int, sys.argv[3:7])
        bench(d, Bn, Tn, steps, threads)
        return
    torch.set_num_threads(1)
    outdir, only = sys.argv[1], sys.argv[2:]
    for i, (name, c) in enumerate(CASES.items()):
        if not only or name in only:
            make_case(outdir, name, c, 1234 + i)
    for i, name in enumerate(HALF):
        if not only or name in only:
            make_half_case(outdir, name, 4321 + i)


if __name__ == "__main__":
    main()
