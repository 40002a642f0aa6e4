"""The amplifier forms NeuralGrok is given: the learnt network and what it reads, each a part with explicit state.

A form holds the learnt parameters (``net``) and whatever it remembers between steps.  Per step,
``prepare(grads, ctx)`` computes that step's inputs without changing anything, ``apply`` maps the
gradients through the network with them, and ``commit(prepared)`` advances the form's state
when the step is taken (the transform's commit contract).

- :class:`ScalarForm`: the paper's amplifier, a scalar MLP on every gradient entry with a softmax
  per tensor (``amplifier.py``); it remembers nothing.
- :class:`FeatureForm`: an amplifier that also reads a slow gradient, the weights, the step or a
  tensor embedding, as a network or as per-tensor coefficients (``feature_amplifier.py``); it
  remembers the slow average, each tensor's step-0 rms and the model's tensor count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .amplifier import MODES, SOFTMAX_AXES, AmplifierMLP, amplify
from .errors import AmplifierFileError
from .feature_amplifier import (FORMS, THETA_REFS, CoefficientAmplifier, FeatureAmplifierMLP, amplify_features,
                                parse_features, tensor_rms)


class ScalarForm:
    """``c·(p⊙g)/‖p⊙g‖`` per tensor with ``p = softmax(MLP(g))``: the published amplifier."""

    features, form, by_position = ("g",), "mlp", False

    def __init__(self, hidden=(128, 128), mode: str = "piecewise", softmax: str = "tensor"):
        if mode not in MODES:
            raise ValueError(f"amplifier mode must be one of {', '.join(MODES)}, got {mode!r}")
        if softmax not in SOFTMAX_AXES:
            raise ValueError(f"amplifier softmax axis must be one of {', '.join(SOFTMAX_AXES)}, got {softmax!r}")
        self.hidden, self.mode, self.softmax = tuple(hidden), mode, softmax
        self.net = AmplifierMLP(self.hidden)

    def prepare(self, grads, ctx) -> None:
        return None

    def apply(self, grads, params, prepared, c: float, with_stats: bool, through_input: bool = False):
        """(new gradients, statistics or None): statistics only when asked (they cost a pass)."""
        if with_stats:
            new, raw = amplify(self.net, grads, c, self.mode, return_stats=True, through_input=through_input,
                               softmax=self.softmax)
            return new, {"amp_pn_std": raw["pn_std"], "amp_pn_max": raw["pn_max"], "norm_ratio": raw["norm_ratio"]}
        return amplify(self.net, grads, c, self.mode, through_input=through_input, softmax=self.softmax), None

    def commit(self, prepared) -> None:
        pass

    def after_meta_step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def meta_info(self) -> dict:
        return {"hidden": list(self.hidden)}

    def check_record(self, meta: dict, path) -> None:
        """Nothing beyond the weights' shapes, which the transform checks."""

    def attach(self, names: tuple[str, ...]) -> None:
        """The model's parameter names: the scalar amplifier reads no tensor by position."""


@dataclass
class FeatureStep:
    """A step's inputs to the feature form, computed before the step is committed."""

    slow: list[torch.Tensor] | None
    theta_rms: torch.Tensor | None
    step: int
    n_tensors: int


class FeatureForm:
    """An amplifier of per-entry features (``feature_amplifier.py``): a network, or per-tensor coefficients."""

    def __init__(self, features=("g", "slow", "theta"), hidden=(32, 32), slow_alpha: float = 0.98,
                 form: str = "mlp", theta_ref: str = "rms", decay_nonneg: bool = False, init: dict | None = None):
        if form not in FORMS:
            raise ValueError(f"amplifier form must be one of {', '.join(FORMS)}, got {form!r}")
        if theta_ref not in THETA_REFS:
            raise ValueError(f"amplifier theta reference must be one of {', '.join(THETA_REFS)}, got {theta_ref!r}")
        if decay_nonneg and (form != "coefficients" or "theta" not in features):
            raise ValueError("a non-negative decay needs the coefficient form with the theta feature")
        self.features, self.form = parse_features(",".join(features), form), form
        self.slow_alpha, self.theta_ref, self.decay_nonneg = float(slow_alpha), theta_ref, decay_nonneg
        self.hidden = () if form == "coefficients" else tuple(int(h) for h in hidden)
        self.net = CoefficientAmplifier(self.features) if form == "coefficients" else FeatureAmplifierMLP(
            self.features, self.hidden)
        if form == "coefficients" and init:  # every tensor's starting coefficient of a term: {"slow": b, "theta": d}
            with torch.no_grad():
                for k, term in enumerate(self.net.terms):
                    self.net.coef[:, k] = float(init.get(term, 0.0))
        # coefficients and the tensor embedding are learnt per tensor position, so they fit only a model with as
        # many parameter tensors (amplifier.json records the count)
        self.by_position = form == "coefficients" or "tensor" in self.features
        self.slow: list[torch.Tensor] | None = None
        self.theta_rms: torch.Tensor | None = None  # with theta_ref init: each tensor's rms at the first update
        self.n_tensors: int | None = None  # the model's, from the first update or from a loaded amplifier.json
        self.names: tuple[str, ...] = ()  # the model's parameter names (attach), recorded beside what is learnt
        self._learnt_on: tuple[str, ...] = ()  # a loaded amplifier's recorded names

    def prepare(self, grads, ctx) -> FeatureStep:
        """This step's slow average, weight scale and step, from the state and ``grads``; nothing changes."""
        if self.by_position and self.n_tensors is not None and self.n_tensors != len(grads):
            raise AmplifierFileError(f"the loaded amplifier was learnt on a model with {self.n_tensors} parameter "
                                     f"tensors and reads them by position; this model has {len(grads)}")
        theta_rms = self.theta_rms
        if self.theta_ref == "init" and theta_rms is None and "theta" in self.features and ctx.params is not None:
            theta_rms = tensor_rms(ctx.params)
        return FeatureStep(self._next_slow(grads), theta_rms, ctx.step, len(grads))

    @torch.no_grad()
    def _next_slow(self, grads) -> list[torch.Tensor] | None:
        if "slow" not in self.features:
            return None
        if self.slow is None:
            return [g.detach().clone() for g in grads]
        return [torch.lerp(s, g.detach(), 1 - self.slow_alpha) for s, g in zip(self.slow, grads)]

    def apply(self, grads, params, prepared: FeatureStep, c: float, with_stats: bool, through_input: bool = False):
        if params is None:
            raise ValueError("the feature amplifier needs the parameters (Context.params)")
        out = amplify_features(self.net, grads, params, prepared.slow, prepared.step, c, with_stats, through_input,
                               prepared.theta_rms)
        return out if with_stats else (out, None)

    def commit(self, prepared: FeatureStep) -> None:
        self.slow, self.theta_rms = prepared.slow, prepared.theta_rms
        if self.by_position:
            self.n_tensors = prepared.n_tensors

    def after_meta_step(self) -> None:
        if self.decay_nonneg:
            self.net.clamp_decay_()

    def state_dict(self) -> dict:
        return {"slow": None if self.slow is None else [s.clone() for s in self.slow],
                "theta_rms": None if self.theta_rms is None else self.theta_rms.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.slow = state["slow"]
        self.theta_rms = state.get("theta_rms")  # absent from checkpoints that predate --amp-theta-ref

    def meta_info(self) -> dict:
        info = {"hidden": list(self.hidden), "features": list(self.features), "slow_alpha": self.slow_alpha,
                "form": self.form, **({"theta_ref": self.theta_ref} if "theta" in self.features else {})}
        if not (self.by_position and self.n_tensors):
            return info
        return {**info, "tensors": self.n_tensors, **({"tensor_names": list(self.names)} if self.names else {})}

    def check_record(self, meta: dict, path) -> None:
        """A loaded amplifier's record must match this form's weight scale; it gives the tensor count."""
        learnt_ref = meta.get("theta_ref", "rms")  # files that predate the option were learnt with rms
        if "theta" in self.features and meta and learnt_ref != self.theta_ref:
            raise AmplifierFileError(f"the loaded amplifier was learnt with --amp-theta-ref {learnt_ref}; this run "
                                     f"uses {self.theta_ref}")
        if self.by_position:
            self.n_tensors = meta.get("tensors")
            self._learnt_on = tuple(meta.get("tensor_names", ()))

    def attach(self, names: tuple[str, ...]) -> None:
        """The model's parameter names; a loaded per-position amplifier whose record names others is refused."""
        if self.by_position and self._learnt_on and names and self._learnt_on != names:
            learnt, here = (list(n) + ["(none)"] * (len(names) + len(self._learnt_on)) for n in (self._learnt_on, names))
            i = next(i for i, (a, b) in enumerate(zip(learnt, here)) if a != b)
            raise AmplifierFileError(f"the loaded amplifier reads parameters by position and was learnt on another "
                                     f"model: its parameter {i} is {learnt[i]}, this model's is {here[i]}")
        self.names = names
