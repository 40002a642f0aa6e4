"""The transformer: shapes, parameter count, and causal masking."""
import torch

from neuralgrok.model import ModelConfig, Transformer, answer_logits


def test_shapes_and_paper_size():
    model = Transformer(ModelConfig(vocab_size=104, seq_len=4))
    x = torch.randint(0, 104, (8, 4))
    assert model(x).shape == (8, 4, 104)
    assert answer_logits(model, x).shape == (8, 104)
    n = sum(p.numel() for p in model.parameters())
    assert 410_000 < n < 430_000  # the paper's ~423k-parameter model


def test_later_tokens_never_change_earlier_logits():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=20, seq_len=6, n_layers=2, d_model=32, n_heads=4)).eval()
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
