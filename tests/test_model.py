"""The transformer: shapes, parameter count, causal masking, and the reference model against an nn.MultiheadAttention oracle."""
import math
from contextlib import nullcontext

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from neuralgrok.model import ARCHS, ATTENTION_KERNELS, ModelConfig, Transformer, answer_logits


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_paper_size(arch):
    model = Transformer(ModelConfig(vocab_size=104, seq_len=4, arch=arch))
    x = torch.randint(0, 104, (8, 4))
    assert model(x).shape == (8, 4, 104)
    assert answer_logits(model, x).shape == (8, 104)
    n = sum(p.numel() for p in model.parameters())
    assert 410_000 < n < 430_000  # the paper's ~423k-parameter model


@pytest.mark.parametrize("arch", ARCHS)
def test_later_tokens_never_change_earlier_logits(arch):
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=20, seq_len=6, n_layers=2, d_model=32, n_heads=4, arch=arch)).eval()
    x = torch.randint(0, 20, (5, 6))
    base = model(x)
    for t in range(5):
        y = x.clone()
        y[:, t + 1:] = torch.randint(0, 20, y[:, t + 1:].shape)
        assert torch.allclose(model(y)[:, : t + 1], base[:, : t + 1], atol=1e-6)
        # and changing token t does change position t's logits (the check could fail)
        z = x.clone()
        z[:, t] = (z[:, t] + 1) % 20
        assert not torch.allclose(model(z)[:, t], base[:, t])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layers", [1, 3])
def test_answer_only_forward_is_the_last_position_of_the_whole_one(arch, layers):
    """The cheaper forward computes the same function: its logits and every gradient equal the full forward's."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=20, seq_len=6, n_layers=layers, d_model=32, n_heads=4, arch=arch)).double()
    x, y = torch.randint(0, 20, (7, 6)), torch.randint(0, 20, (7,))
    grads = []
    for logits in (model(x)[:, -1], model(x, answer_only=True)):
        assert logits.shape == (7, 20)
        model.zero_grad()
        nn.functional.cross_entropy(logits, y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert torch.allclose(model(x, answer_only=True), model(x)[:, -1], atol=1e-12, rtol=0)
    assert torch.allclose(answer_logits(model, x), model(x)[:, -1], atol=1e-12, rtol=0)
    for (name, _), full, last in zip(model.named_parameters(), *grads):
        assert full.abs().max() > 0, name  # every parameter matters to the answer, in both forwards
        assert torch.allclose(last, full, atol=1e-12, rtol=0), name


class OracleBlock(nn.Module):
    """The published codes' block written with torch's own modules, sequence-first (T, B, C)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        t = len(x)
        mask = torch.triu(torch.full((t, t), -math.inf), diagonal=1)
        x = self.ln_1(x)
        x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Oracle(nn.Module):
    def __init__(self, vocab, seq_len, dim, layers, heads):
        super().__init__()
        self.token_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(seq_len + 1, dim)
        self.layers = nn.ModuleList(OracleBlock(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, x):  # x: (T, B)
        h = self.token_embeddings(x) + self.position_embeddings(torch.arange(len(x))).unsqueeze(1)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.ln_f(h))  # (T, B, V)


ORACLE_NAMES = {"tok": "token_embeddings", "pos": "position_embeddings", "blocks": "layers", "ln1": "ln_1",
                "ln2": "ln_2"}


def _oracle_name(name: str) -> str:
    return ".".join(ORACLE_NAMES.get(part, part) for part in name.split("."))


@pytest.mark.parametrize("kernel", ATTENTION_KERNELS)
@pytest.mark.parametrize("seq_len", [4, 12])
def test_reference_model_matches_multihead_attention_oracle(kernel, seq_len):
    torch.manual_seed(0)
    vocab, dim, layers, heads = 13, 32, 2, 4
    ours = Transformer(ModelConfig(vocab, seq_len, layers, dim, heads, arch="reference", attention=kernel)).double()
    oracle = Oracle(vocab, seq_len, dim, layers, heads).double()
    theirs = dict(oracle.named_parameters())
    assert {_oracle_name(n) for n, _ in ours.named_parameters()} == set(theirs)  # same parameters, by role
    with torch.no_grad():
        for name, p in ours.named_parameters():
            p.mul_(1.0 + 0.1 * torch.randn_like(p))  # LayerNorm and bias values off their init too
            assert theirs[_oracle_name(name)].shape == p.shape
            theirs[_oracle_name(name)].copy_(p)
    x = torch.randint(0, vocab, (6, seq_len))
    out, ref = ours(x), oracle(x.T).transpose(0, 1)
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)
    target = torch.randint(0, vocab, (6,))
    nn.functional.cross_entropy(out[:, -1], target).backward()
    nn.functional.cross_entropy(ref[:, -1], target).backward()
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs[_oracle_name(name)].grad, atol=1e-6, rtol=0), name


def test_reference_initialisation_follows_multihead_attention():
    torch.manual_seed(1)
    dim = 128
    model = Transformer(ModelConfig(99, 4, 2, dim, 4, arch="reference"))
    attn = model.blocks[0].attn
    bound = math.sqrt(6.0 / (dim + 3 * dim))  # Xavier-uniform on the (3C, C) in_proj
    w = attn.in_proj_weight.detach()
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    assert torch.equal(attn.in_proj_bias, torch.zeros(3 * dim)) and torch.equal(attn.out_proj.bias, torch.zeros(dim))
    out_bound = 1 / math.sqrt(dim)  # nn.Linear's default (kaiming-uniform, a=sqrt(5)) for out_proj
    assert attn.out_proj.weight.abs().max() <= out_bound
    assert model.head.bias is None and model.pos.weight.shape == (5, dim)
    assert abs(model.tok.weight.std().item() - 1.0) < 0.05  # nn.Embedding's N(0, 1)
    prenorm = Transformer(ModelConfig(99, 4, 2, dim, 4, arch="prenorm"))
    assert prenorm.head.bias is not None and prenorm.pos.weight.shape == (4, dim)


def _bf16_step(kernel: str, backend: SDPBackend | None) -> list[torch.Tensor]:
    """Logits and gradients of one bf16-autocast step of a 12-token model, with ``backend`` forced around it."""
    torch.manual_seed(0)
    model = Transformer(ModelConfig(13, 12, 2, 32, 4, attention=kernel))
    x, y = torch.randint(0, 13, (64, 12)), torch.randint(0, 13, (64,))
    with torch.autocast("cpu", dtype=torch.bfloat16), sdpa_kernel(backend) if backend else nullcontext():
        logits = answer_logits(model, x)
    nn.functional.cross_entropy(logits.float(), y).backward()
    return [logits.detach()] + [p.grad for p in model.parameters()]


def test_the_attention_option_picks_the_kernel_and_auto_is_pytorchs_own_pick():
    auto, math_ = _bf16_step("auto", None), _bf16_step("math", None)
    assert all(torch.equal(a, b) for a, b in zip(math_, _bf16_step("auto", SDPBackend.MATH)))  # math is the math kernel
    assert all(torch.equal(a, b) for a, b in zip(auto, _bf16_step("auto", SDPBackend.FLASH_ATTENTION)))  # CPU's pick
    assert not all(torch.equal(a, b) for a, b in zip(auto, math_))  # other rounding: the option acts
    assert all(torch.allclose(a.float(), b.float(), atol=0.05, rtol=0.05) for a, b in zip(auto, math_))


def test_an_unknown_attention_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown attention kernel 'fast'"):
        Transformer(ModelConfig(13, 4, 1, 32, 4, attention="fast"))
