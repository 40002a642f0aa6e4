"""NeuralGrok as a gradient transform: the amplifier, its meta step, and saving and loading it.

The inner step sees ``g' = G_φ(g)``.  Every T steps the trainer also calls
``meta_step``: with the inner gradient g held constant it forms the look-ahead
``θ' = θ − η·U(G_φ(g))`` (U given by the trainer's ``lookahead``), takes the loss of
θ' on the outer slice, and steps φ on ∂L(θ')/∂φ.  Only first-order derivatives
through the base model are needed.  The meta step returns the transformed gradient
it computed, so the inner step reuses it instead of evaluating the amplifier again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from baselines import GradientTransform

from .amplifier import AmplifierMLP, amplify

AMPLIFIER_FILE = "amplifier.safetensors"
AMPLIFIER_META = "amplifier.json"


class AmplifierFileError(ValueError):
    """A missing, corrupt or mismatched amplifier file."""


class NeuralGrok(GradientTransform):
    """Transforms gradients with a learnt amplifier and meta-trains it on the outer slice."""

    def __init__(self, hidden=(128, 128), c: float = 1.0, mode: str = "piecewise", meta_lr: float = 1e-4,
                 betas=(0.9, 0.98), frozen: bool = False):
        self.hidden, self.c, self.mode, self.frozen = tuple(hidden), float(c), mode, frozen
        self.mlp = AmplifierMLP(self.hidden)
        self.opt = torch.optim.Adam(self.mlp.parameters(), lr=meta_lr, betas=tuple(betas))
        self.last_outer_loss: float | None = None
        self.meta_steps = 0

    @classmethod
    def from_config(cls, cfg) -> "NeuralGrok":
        ng = cls(cfg.amp_hidden, cfg.amp_c, cfg.amp_eval, cfg.meta_lr, (cfg.meta_beta1, cfg.meta_beta2),
                 cfg.freeze_amplifier)
        if cfg.amplifier:
            ng.load_amplifier(cfg.amplifier)
        return ng

    # -- the transform ------------------------------------------------------------
    def __call__(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.apply(grads)[0]

    def apply(self, grads, with_stats: bool = False) -> tuple[list[torch.Tensor], dict]:
        """The transformed gradients and, with ``with_stats``, monitoring figures."""
        with torch.no_grad():
            new, stats = amplify(self.mlp, grads, self.c, self.mode, return_stats=True)
        return new, self._stats(stats) if with_stats else {}

    def _stats(self, stats: dict) -> dict:
        return {"outer_loss": self.last_outer_loss, "amp_pn_std": stats["pn_std"], "amp_pn_max": stats["pn_max"],
                "norm_ratio": stats["norm_ratio"]}

    # -- the meta step -------------------------------------------------------------
    def meta_step(self, grads: list[torch.Tensor], lookahead: Callable, outer_loss: Callable,
                  reduce: Callable | None = None, with_stats: bool = False) -> tuple[list[torch.Tensor], dict]:
        """One amplifier update; returns the transformed ``grads`` (before the update) for the inner step.

        ``lookahead(g')`` gives the parameters after one step with g' (differentiable in
        g'); ``outer_loss(params)`` is the loss on the outer slice with those parameters;
        ``outer_loss`` returns this process's share of the loss and ``reduce(t)`` sums a
        tensor over processes (data parallelism), giving the whole outer batch's mean.
        """
        raw = [g.detach() for g in grads]
        new, stats = amplify(self.mlp, raw, self.c, self.mode, return_stats=True)
        loss = outer_loss(lookahead(new))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if reduce is not None:
            for p in self.mlp.parameters():
                p.grad = reduce(p.grad)
            loss = reduce(loss.detach())
        self.opt.step()
        self.meta_steps += 1
        self.last_outer_loss = loss.item()
        return [g.detach() for g in new], self._stats(stats) if with_stats else {}

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"mlp": {k: v.clone() for k, v in self.mlp.state_dict().items()}, "opt": self.opt.state_dict(),
                "last_outer_loss": self.last_outer_loss, "meta_steps": self.meta_steps}

    def load_state_dict(self, state: dict) -> None:
        self.mlp.load_state_dict(state["mlp"])
        self.opt.load_state_dict(state["opt"])
        self.last_outer_loss, self.meta_steps = state["last_outer_loss"], state["meta_steps"]

    def save(self, folder: str | Path) -> None:
        """Writes ``amplifier.safetensors`` and ``amplifier.json`` (its shape and c) into ``folder``."""
        from safetensors.torch import save
        from .runfolder import write_atomic, write_json
        folder = Path(folder)
        tensors = {k: v.detach().contiguous() for k, v in self.mlp.state_dict().items()}
        write_atomic(folder / AMPLIFIER_FILE, save(tensors, metadata={"hidden": ",".join(map(str, self.hidden))}))
        write_json(folder / AMPLIFIER_META, {"hidden": list(self.hidden), "c": self.c, "meta_steps": self.meta_steps})

    def load_amplifier(self, path: str | Path) -> None:
        """Loads learnt amplifier weights from a file or a run folder; checks they fit this amplifier."""
        from safetensors import SafetensorError
        from safetensors.torch import load
        path = Path(path)
        if path.is_dir():
            path = path / AMPLIFIER_FILE
        if not path.is_file():
            raise AmplifierFileError(f"no amplifier file at {path}")
        try:
            tensors = load(path.read_bytes())
        except (SafetensorError, ValueError, RuntimeError) as e:
            raise AmplifierFileError(f"amplifier file {path} is corrupt: {str(e).splitlines()[0]}") from None
        expected = {k: tuple(v.shape) for k, v in self.mlp.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in tensors.items()}
        if expected != found:
            hidden = _hidden_from_shapes(found)
            raise AmplifierFileError(f"amplifier file {path} holds hidden sizes {hidden}, but this run uses "
                                     f"--amp-hidden {','.join(map(str, self.hidden))}")
        self.mlp.load_state_dict(tensors)


def _hidden_from_shapes(shapes: dict[str, tuple]) -> str:
    weights = [s for k, s in sorted(shapes.items()) if k.endswith("weight") and len(s) == 2]
    return ",".join(str(s[0]) for s in weights[:-1]) or "unknown"


def read_amplifier_info(folder: str | Path) -> dict:
    return json.loads((Path(folder) / AMPLIFIER_META).read_text())
