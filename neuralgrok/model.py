"""The base model: a small decoder-only causal transformer that reads an equation and predicts its answer.

Two architectures share embeddings, blocks of attention and a 4x GELU MLP, a final
LayerNorm and a linear head:

- ``reference`` (default): the decoder of the Grokfast and NeuralGrok public codes, the one
  their published numbers came from. Its block replaces the residual stream by its
  layer-normed value before attention, ``x = LN1(x); x = x + Attn(x); x = x + MLP(LN2(x))``;
  attention is parameterised and initialised as ``torch.nn.MultiheadAttention`` (one
  ``in_proj`` of shape (3C, C), Xavier-uniform, zero biases); the position table has a row
  for the answer position too; the head has no bias.
- ``prenorm``: the usual pre-norm residual block, ``x = x + Attn(LN1(x))``, default
  ``nn.Linear`` initialisation and a head with bias (this project's first model).

Attention runs through ``F.scaled_dot_product_attention``; ``attention`` picks its kernel: ``auto`` leaves the pick
to PyTorch (on CPU its flash kernel), ``math`` forces the composite one. They compute the same function with
different rounding. On CPU in bf16 the flash kernel's backward is slow at 12 input tokens, not at 10: a training step
of (a*a+a*b+b*b) mod 97 takes 2.25x as long as with ``math`` (``experiments/results/bench/attention/``).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

ARCHS = ("reference", "prenorm")
ATTENTION_KERNELS = ("auto", "math")


@dataclass
class ModelConfig:
    vocab_size: int
    seq_len: int  # input tokens, up to and including '='
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    dropout: float = 0.0
    arch: str = "reference"
    attention: str = "auto"  # the attention kernel: one of ATTENTION_KERNELS


def _causal_attention(qkv: torch.Tensor, n_heads: int, dropout: float, last_only: bool = False,
                      kernel: str = "auto") -> torch.Tensor:
    """Causal multi-head attention from packed projections (B, T, 3C) -> (B, T, C), heads before projection.

    ``last_only``: only the last position's output, (B, 1, C); its query sees every key, as causally.
    ``kernel``: ``auto`` (PyTorch's pick) or ``math`` (the composite kernel).
    """
    q, k, v = rearrange(qkv, "b t (three h d) -> three b h t d", three=3, h=n_heads)
    if last_only:
        q = q[:, :, -1:]
    with sdpa_kernel(SDPBackend.MATH) if kernel == "math" else nullcontext():
        y = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only, dropout_p=dropout)  # (B, H, T, D)
    return rearrange(y, "b h t d -> b t (h d)")


class SelfAttention(nn.Module):
    """Multi-head causal self-attention with ``nn.Linear`` projections (prenorm model)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.kernel = cfg.n_heads, cfg.attention
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        y = _causal_attention(self.qkv(x), self.n_heads, self.dropout if self.training else 0.0, last_only,
                              self.kernel)
        return self.proj(y)


class ReferenceAttention(nn.Module):
    """Causal self-attention with ``nn.MultiheadAttention``'s parameters, names and initialisation.

    ``in_proj_weight`` (3C, C) is Xavier-uniform and ``in_proj_bias`` zero; ``out_proj`` is
    a default ``nn.Linear`` whose bias is then zeroed, as ``MultiheadAttention`` does.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.d_model
        self.n_heads, self.dropout, self.kernel = cfg.n_heads, cfg.dropout, cfg.attention
        self.in_proj_weight = nn.Parameter(torch.empty(3 * c, c))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * c))
        self.out_proj = nn.Linear(c, c)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3C)
        return self.out_proj(_causal_attention(qkv, self.n_heads, self.dropout if self.training else 0.0, last_only,
                                               self.kernel))


def _mlp(cfg: ModelConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(),
                         nn.Linear(4 * cfg.d_model, cfg.d_model), nn.Dropout(cfg.dropout))


class Block(nn.Module):
    """Pre-norm transformer block: attention then a 4x-wide MLP, each residual."""

    attention = SelfAttention

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = self.attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = _mlp(cfg)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), or with ``last_only`` the last position's output alone, (B, 1, C)."""
        x = _last(x, last_only) + self.attn(self.ln1(x), last_only)
        return x + self.mlp(self.ln2(x))


class ReferenceBlock(Block):
    """The published codes' block: the stream is replaced by LN1(x) before the attention residual."""

    attention = ReferenceAttention

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        x = self.ln1(x)
        x = _last(x, last_only) + self.attn(x, last_only)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Token and position embeddings, ``n_layers`` blocks, final norm and an untied head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"width {cfg.d_model} is not divisible by {cfg.n_heads} heads")
        if cfg.arch not in ARCHS:
            raise ValueError(f"unknown architecture {cfg.arch!r}: choose from {', '.join(ARCHS)}")
        if cfg.attention not in ATTENTION_KERNELS:
            raise ValueError(f"unknown attention kernel {cfg.attention!r}: choose from {', '.join(ATTENTION_KERNELS)}")
        self.cfg = cfg
        reference = cfg.arch == "reference"
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # The published codes size the position table for the whole equation, answer included.
        self.pos = nn.Embedding(cfg.seq_len + reference, cfg.d_model)
        block = ReferenceBlock if reference else Block
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=not reference)

    def forward(self, idx: torch.Tensor, answer_only: bool = False) -> torch.Tensor:
        """Token ids (B, T) -> next-token logits (B, T, V).

        ``answer_only``: the logits at the last position alone, (B, V). The last block then
        computes that position only (its query against every key, its MLP, the head), the
        same function with a cheaper step: 1.2-1.4x on this project's tasks (experiments/bench_forward.py).
        """
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, last_only=answer_only and i == len(self.blocks) - 1)
        logits = self.head(self.ln_f(x))
        return logits[:, -1] if answer_only else logits


def _last(x: torch.Tensor, last_only: bool) -> torch.Tensor:
    return x[:, -1:] if last_only else x


def answer_logits(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    """Logits (B, V) for the answer, predicted at the last input position ('=')."""
    return model(idx, answer_only=True)
