"""Baseline gradient transforms (Grokfast EMA/MA, gradient normalisation, ⊥Grad), depending on torch only.

Each transform maps the list of a model's gradients to a new list and is called once per
step, between ``backward()`` and ``optimizer.step()``::

    from baselines import Chain, GradNorm, GrokfastEMA

    transform = Chain(GrokfastEMA(alpha=0.98, lamb=2.0), GradNorm(c=1.0, scope="global"))
    params = [p for p in model.parameters() if p.requires_grad]
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        for p, g in zip(params, transform([p.grad for p in params])):
            p.grad = g
        optimizer.step()

    torch.save(transform.state_dict(), "transform.pt")  # resume with load_state_dict
"""
from .gradnorm import GradNorm
from .grokfast import GrokfastEMA, GrokfastMA
from .orthograd import OrthoGrad
from .transform import Chain, Context, GradientTransform, Identity, Stream, Update

__all__ = ["GradientTransform", "Context", "Update", "Stream", "Identity", "Chain", "GrokfastEMA", "GrokfastMA", "GradNorm",
           "OrthoGrad"]
