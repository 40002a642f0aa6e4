"""The gradient-transform interface shared by every method, and chaining of transforms."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

Grads = list[torch.Tensor]


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class Stream:
    """A stream of training examples that a transform asks its loop for (:meth:`GradientTransform.streams`).

    - ``rows``: ``"held_out"``, a slice of the training split that the loop then keeps out of the
      steps (its size is the loop's; NeuralGrok's outer slice), or ``"train"``, the rows the steps use;
    - ``batch``: examples per batch; ``None`` for the loop's batch size, 0 for all the rows each time;
    - ``seed``: added to the run's seed for this stream's shuffling (streams never disturb the steps').
    """

    rows: str
    batch: int | None = None
    seed: int = 1


ROWS = ("held_out", "train")


@dataclass
class Context:
    """What a transform may read at a step; a training loop fills in what it has.

    - ``step``: steps taken before this one (0 on the first);
    - ``params``: the live parameters, in the order of the gradients;
    - ``lookahead(grads, rule)``: the parameters after one optimizer step with ``grads``
      (differentiable in them), by the optimizer's own rule or ``'sgd'``;
    - ``unroll(first, later, k, rule)``: the parameters after k optimizer steps, the first with
      ``first`` and each later one with ``later(params)`` (differentiable);
    - ``loss(name, params)``: this process's share of the mean loss at ``params`` on the next batch
      of the transform's stream ``name`` (summed over processes it is the batch's mean);
    - ``batch_grads(params)``: the gradient of this step's own training batch at ``params``, as the
      step's gradient is taken (averaged over processes; the parameters enter as constants);
    - ``reduce(t)``: ``t`` summed over processes (identity on one process);
    - ``log``: whether monitoring statistics are wanted at this step.
    """

    step: int = 0
    params: Grads | None = None
    lookahead: Callable[[Grads, str], Grads] | None = None
    unroll: Callable[[Grads, Callable[[Grads], Grads], int, str], Grads] | None = None
    loss: Callable[[str, Grads], torch.Tensor] | None = None
    batch_grads: Callable[[Grads], Grads] | None = None
    reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    log: bool = False


@dataclass
class Update:
    """A transform's answer for one step: the new gradients, statistics, and the state change, not yet made.

    ``commit()`` applies the state change (filter buffers, a learnt amplifier's step).
    A loop calls it only when it takes the step, so a step skipped for a non-finite
    value leaves the transform as it was. ``ok`` is False when the transform itself met
    a non-finite value (a meta loss, say): the step must then be skipped.
    """

    grads: Grads
    stats: dict[str, Any] = field(default_factory=dict)
    commit: Callable[[], None] = _nothing
    ok: bool = True


class GradientTransform:
    """Maps the list of a model's gradients to a new list, keeping explicit state.

    The one method to implement is :meth:`update`, which must not change the transform's
    state itself but return it as ``Update.commit``. In a loop of one's own, between
    ``backward()`` and ``step()``::

        grads = [p.grad for p in params]
        for p, g in zip(params, transform(grads)):   # update + commit
            p.grad = g

    A transform never modifies its input tensors and returns tensors of the same shapes
    and dtypes. Everything it remembers between calls lives in ``state_dict()`` so that a
    run can be checkpointed and resumed exactly.
    """

    def update(self, grads: Grads, ctx: Context) -> Update:
        raise NotImplementedError

    # -- what a loop offers a transform that asks (all optional) ---------------------------------
    def streams(self) -> dict[str, Stream]:
        """The example streams this transform reads through ``Context.loss`` (none by default)."""
        return {}

    @property
    def uses_outer_slice(self) -> bool:
        """True when a stream reads held-out rows: the loop then steps on the rest of the training split only."""
        return any(s.rows == "held_out" for s in self.streams().values())

    def attach(self, processes: int, names: tuple[str, ...] = ()) -> None:
        """Called once before the first step with the number of processes and the parameters' names (in the
        gradients' order); raises when it cannot run so."""

    def observe(self, row: dict[str, Any]) -> None:
        """Called after each evaluation with its metrics row (a transform may start something on it)."""

    def after_step(self, ctx: Context) -> Update:
        """A state change to make after the optimizer has stepped with this step's update (``ctx.params`` then
        hold the new parameters), as :meth:`update` returns one: nothing by default. A loop calls it only after a
        step it took, and commits the result when it is ``ok``. (NeuralGrok's public codes take their meta step
        here, at θ_{t+1}.) Its ``grads`` are not used."""
        return Update([])

    def __call__(self, grads: Grads, ctx: Context | None = None) -> Grads:
        """The transformed gradients, with the state change committed at once."""
        u = self.update(list(grads), ctx or Context())
        u.commit()
        return u.grads

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")

    def save(self, folder) -> None:
        """Writes whatever a run folder should keep of this transform (a learnt amplifier, say); nothing by default."""


class Identity(GradientTransform):
    """Returns the gradients unchanged (standard training)."""

    def update(self, grads: Grads, ctx: Context) -> Update:
        return Update(list(grads))


class Chain(GradientTransform):
    """Applies transforms left to right: ``Chain(a, b)(g) == b(a(g))``; commits all or none."""

    def __init__(self, *transforms: GradientTransform):
        self.transforms = list(transforms)
        self.streams()  # raises when two members ask for one stream name differently

    def streams(self) -> dict[str, Stream]:
        merged: dict[str, Stream] = {}
        for t in self.transforms:
            for name, stream in t.streams().items():
                if merged.setdefault(name, stream) != stream:
                    raise ValueError(f"chained transforms ask for stream {name!r} as {merged[name]} and {stream}")
        return merged

    def attach(self, processes: int, names: tuple[str, ...] = ()) -> None:
        for t in self.transforms:
            t.attach(processes, names)

    def observe(self, row: dict[str, Any]) -> None:
        for t in self.transforms:
            t.observe(row)

    def update(self, grads: Grads, ctx: Context) -> Update:
        updates = []
        for t in self.transforms:
            updates.append(t.update(grads, ctx))
            grads = updates[-1].grads
        return _all_or_none(grads, updates)

    def after_step(self, ctx: Context) -> Update:
        return _all_or_none([], [t.after_step(ctx) for t in self.transforms])

    def state_dict(self) -> dict[str, Any]:
        return {str(i): t.state_dict() for i, t in enumerate(self.transforms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if sorted(state) != sorted(str(i) for i in range(len(self.transforms))):
            raise ValueError(f"Chain of {len(self.transforms)} transforms cannot load state with keys {sorted(state)}")
        for i, t in enumerate(self.transforms):
            t.load_state_dict(state[str(i)])

    def save(self, folder) -> None:
        for t in self.transforms:
            t.save(folder)


def _all_or_none(grads: Grads, updates: list[Update]) -> Update:
    """One update from several: their statistics merged, committed together, ok only when every one is."""
    stats = {k: v for u in updates for k, v in u.stats.items()}

    def commit() -> None:
        for u in updates:
            u.commit()
    return Update(grads, stats, commit, all(u.ok for u in updates))
