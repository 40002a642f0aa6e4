"""The baseline gradient transforms (Grokfast EMA/MA, GradNorm, Chain) against independent oracles."""
import copy
import io
import math

import pytest
import torch

from baselines import Chain, GradientTransform, GradNorm, GrokfastEMA, GrokfastMA, Identity

SHAPES = [(4, 3), (5,), (2, 3, 2)]


def _sequence(steps, seed=0, dtype=torch.float64, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes] for _ in range(steps)]


def _clone(grads):
    return [g.clone() for g in grads]


# ---------------------------------------------------------------- oracles (float64, plain Python)


def ema_oracle(seq, alpha, lamb):
    hs, outs = None, []
    for grads in seq:
        grads = [g.double() for g in grads]
        if hs is None:
            hs = [g.clone() for g in grads]
        else:
            hs = [alpha * h + (1 - alpha) * g for h, g in zip(hs, grads)]
        outs.append([g + lamb * h for g, h in zip(grads, hs)])
    return outs


def ma_oracle(seq, window, lamb, reduce, warmup):
    windows, outs = [[] for _ in seq[0]], []
    for grads in seq:
        step_out = []
        for i, g in enumerate(grads):
            g = g.double()
            windows[i].append(g)
            if len(windows[i]) > window:
                windows[i].pop(0)
            if warmup and len(windows[i]) < window:
                step_out.append(g.clone())
                continue
            total = torch.zeros_like(g)
            for old in windows[i]:
                total = total + old
            avg = total / len(windows[i]) if reduce == "mean" else total
            step_out.append(g + lamb * avg)
        outs.append(step_out)
    return outs


def l2(tensors):
    return math.sqrt(sum(float(x) ** 2 for t in tensors for x in t.flatten().tolist()))


def gradnorm_oracle(grads, c, scope, eps=0.0):
    if scope == "global":
        norms = [l2(grads)] * len(grads)
    else:
        norms = [l2([g]) for g in grads]
    return [torch.zeros_like(g) if n == 0 else g.double() * (c / (n + eps)) for g, n in zip(grads, norms)]


def _run(transform, seq):
    return [transform(grads) for grads in seq]


def _assert_steps_close(got, want, **tol):
    assert len(got) == len(want)
    for step, (gs, ws) in enumerate(zip(got, want)):
        assert len(gs) == len(ws)
        for g, w in zip(gs, ws):
            torch.testing.assert_close(g, w.to(g.dtype), msg=lambda m, s=step: f"step {s}: {m}", **tol)


# ---------------------------------------------------------------- formulas, every step


@pytest.mark.parametrize("alpha,lamb", [(0.98, 2.0), (0.5, 0.7), (0.0, 3.0)])
def test_ema_matches_formula_every_step(alpha, lamb):
    seq = _sequence(250)
    _assert_steps_close(_run(GrokfastEMA(alpha, lamb), seq), ema_oracle(seq, alpha, lamb))


def test_ema_first_output_is_g_plus_lamb_g():
    (grads,) = _sequence(1)
    out = GrokfastEMA(alpha=0.9, lamb=2.0)(grads)
    for o, g in zip(out, grads):
        torch.testing.assert_close(o, 3.0 * g)


@pytest.mark.parametrize("window", [1, 7, 100])
@pytest.mark.parametrize("reduce", ["mean", "sum"])
@pytest.mark.parametrize("warmup", [True, False])
def test_ma_matches_formula_every_step(window, reduce, warmup):
    seq = _sequence(250, seed=1)
    got = _run(GrokfastMA(window=window, lamb=5.0, reduce=reduce, warmup=warmup), seq)
    _assert_steps_close(got, ma_oracle(seq, window, 5.0, reduce, warmup))


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_ma_warmup_passes_gradients_until_window_full(reduce):
    window, lamb = 5, 2.0
    seq = _sequence(12, seed=2)
    ma = GrokfastMA(window=window, lamb=lamb, reduce=reduce, warmup=True)
    for step, grads in enumerate(seq):
        out = ma(grads)
        if step < window - 1:
            assert all(torch.equal(o, g) for o, g in zip(out, grads)), step
        else:
            assert not any(torch.equal(o, g) for o, g in zip(out, grads)), step
            recent = seq[step - window + 1 : step + 1]
            for i, o in enumerate(out):
                total = sum(r[i] for r in recent)
                torch.testing.assert_close(o, seq[step][i] + lamb * (total / window if reduce == "mean" else total))


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_ma_without_warmup_filters_from_first_step(reduce):
    lamb = 2.0
    seq = _sequence(3, seed=3)
    ma = GrokfastMA(window=10, lamb=lamb, reduce=reduce, warmup=False)
    outs = _run(ma, seq)
    for i in range(len(SHAPES)):
        g0, g1, g2 = (s[i] for s in seq)
        div = (1.0, 2.0, 3.0) if reduce == "mean" else (1.0, 1.0, 1.0)
        torch.testing.assert_close(outs[0][i], g0 + lamb * g0 / div[0])
        torch.testing.assert_close(outs[1][i], g1 + lamb * (g0 + g1) / div[1])
        torch.testing.assert_close(outs[2][i], g2 + lamb * (g0 + g1 + g2) / div[2])


@pytest.mark.parametrize("reduce", ["mean", "sum"])
def test_ma_running_sum_stays_exact_in_float32(reduce):
    # Large spikes early on leave rounding error in an incrementally updated float32 sum;
    # the periodic exact re-sum must remove it, so the late outputs match a float64 oracle.
    window, steps = 7, 1000
    seq = _sequence(steps, seed=4, dtype=torch.float32)
    for step in (50, 120, 121, 300):
        seq[step] = [g * 1e5 for g in seq[step]]
    got = _run(GrokfastMA(window=window, lamb=5.0, reduce=reduce), seq)
    want = ma_oracle(seq, window, 5.0, reduce, True)
    _assert_steps_close(got[500:], want[500:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_gradnorm_matches_formula(c, scope):
    for grads in _sequence(5, seed=5):
        out = GradNorm(c=c, scope=scope)(grads)
        _assert_steps_close([out], [gradnorm_oracle(grads, c, scope)])
        norms = [l2([o]) for o in out]
        if scope == "tensor":
            assert norms == pytest.approx([c] * len(out))
        else:
            assert l2(out) == pytest.approx(c)


@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_gradnorm_eps(scope):
    (grads,) = _sequence(1, seed=6)
    grads = [g * 1e-3 for g in grads]
    _assert_steps_close([GradNorm(c=1.0, scope=scope, eps=1e-2)(grads)], [gradnorm_oracle(grads, 1.0, scope, 1e-2)])


def test_gradnorm_zero_gradient_stays_zero():
    (grads,) = _sequence(1, seed=7, dtype=torch.float32)
    grads[1] = torch.zeros(SHAPES[1])
    out = GradNorm(c=1.0, scope="tensor")(grads)
    assert torch.equal(out[1], torch.zeros(SHAPES[1]))
    assert l2([out[0]]) == pytest.approx(1.0) and l2([out[2]]) == pytest.approx(1.0)
    zeros = [torch.zeros(s) for s in SHAPES]
    for scope in ("tensor", "global"):
        for eps in (0.0, 1e-8):
            out = GradNorm(c=2.0, scope=scope, eps=eps)(zeros)
            assert all(torch.equal(o, z) for o, z in zip(out, zeros)), (scope, eps)


# ---------------------------------------------------------------- state round trip


def _factories():
    return {
        "ema": lambda: GrokfastEMA(alpha=0.9, lamb=2.0),
        "ma": lambda: GrokfastMA(window=10, lamb=5.0),
        "ma-sum-nowarmup": lambda: GrokfastMA(window=6, lamb=0.5, reduce="sum", warmup=False),
        "chain": lambda: Chain(GrokfastEMA(alpha=0.8, lamb=1.0), GrokfastMA(window=9, lamb=3.0), GradNorm(c=1.0)),
    }


@pytest.mark.parametrize("name", list(_factories()))
@pytest.mark.parametrize("split", [0, 4, 137])
@pytest.mark.parametrize("through_file", [False, True])
def test_state_round_trip_continues_identically(name, split, through_file):
    make = _factories()[name]
    seq = _sequence(200, seed=8, dtype=torch.float32)
    reference = _run(make(), seq)

    first = make()
    _run(first, seq[:split])
    state = first.state_dict()
    if through_file:
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
    resumed = make()
    resumed.load_state_dict(state)
    rest = _run(resumed, seq[split:])
    for step, (got, want) in enumerate(zip(rest, reference[split:]), start=split):
        assert all(torch.equal(g, w) for g, w in zip(got, want)), f"step {step}"


@pytest.mark.parametrize("name", list(_factories()))
def test_state_dict_is_a_snapshot(name):
    t = _factories()[name]()
    seq = _sequence(30, seed=9)
    _run(t, seq[:15])
    state = t.state_dict()
    saved = copy.deepcopy(state)
    _run(t, seq[15:])
    # later steps must not write into an earlier snapshot
    assert _equal_nested(state, saved)
    # loading must not alias the given tensors either
    fresh = _factories()[name]()
    fresh.load_state_dict(state)
    _run(fresh, seq[15:])
    assert _equal_nested(state, saved)


def _equal_nested(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal_nested(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal_nested(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_state_dict_values_are_tensors_and_plain_python():
    for name, make in _factories().items():
        t = make()
        _run(t, _sequence(3, seed=10))

        def check(v, where):
            if isinstance(v, dict):
                for k, x in v.items():
                    assert isinstance(k, str), where
                    check(x, f"{where}.{k}")
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    check(x, f"{where}[{i}]")
            else:
                assert isinstance(v, (torch.Tensor, int, float, bool, str)), (where, type(v))

        check(t.state_dict(), name)


def test_load_state_dict_rejects_mismatches():
    seq = _sequence(12, seed=11)
    ma = GrokfastMA(window=10)
    _run(ma, seq)
    state = ma.state_dict()
    with pytest.raises(ValueError, match="window"):
        GrokfastMA(window=11).load_state_dict(state)
    with pytest.raises(ValueError, match="keys"):
        GrokfastMA(window=10).load_state_dict({k: v for k, v in state.items() if k != "sums"})
    with pytest.raises(ValueError, match="keys"):
        GrokfastMA(window=10).load_state_dict({**state, "extra": 1})
    bad = {**state, "sums": state["sums"][:2]}
    with pytest.raises(ValueError, match="buffers"):
        GrokfastMA(window=10).load_state_dict(bad)
    bad = {**state, "buffers": [b[:5] for b in state["buffers"]]}
    with pytest.raises(ValueError, match="window"):
        GrokfastMA(window=10).load_state_dict(bad)
    with pytest.raises(ValueError, match="pos"):
        GrokfastMA(window=10).load_state_dict({**state, "pos": 10})

    ema = GrokfastEMA()
    _run(ema, seq[:2])
    with pytest.raises(ValueError, match="keys"):
        GrokfastEMA().load_state_dict({"hh": ema.state_dict()["h"]})
    with pytest.raises(ValueError, match="GradNorm"):
        GradNorm().load_state_dict({"h": []})


@pytest.mark.parametrize("make", [lambda: GrokfastEMA(), lambda: GrokfastMA(window=4)], ids=["ema", "ma"])
def test_state_for_other_tensors_is_rejected_on_call(make):
    seq = _sequence(3, seed=12)
    t = make()
    _run(t, seq)
    fresh = make()
    fresh.load_state_dict(t.state_dict())
    with pytest.raises(ValueError, match="3 tensors"):
        fresh(seq[0][:2])
    with pytest.raises(ValueError, match="shape"):
        fresh([seq[0][0], seq[0][1], torch.zeros(7)])


# ---------------------------------------------------------------- Chain, inputs untouched


def test_chain_equals_manual_composition():
    def parts():
        return GrokfastEMA(alpha=0.9, lamb=2.0), GrokfastMA(window=5, lamb=3.0), GradNorm(c=0.5, scope="global")

    a, b, c = parts()
    chain = Chain(*parts())
    for step, grads in enumerate(_sequence(40, seed=13)):
        got = chain(grads)
        want = c(b(a(grads)))
        assert all(torch.equal(x, y) for x, y in zip(got, want)), step
    # order matters: the reverse composition gives different results
    rev, (a2, _, c2) = Chain(GradNorm(c=0.5, scope="global"), GrokfastEMA(alpha=0.9, lamb=2.0)), parts()
    grads = _sequence(1, seed=14)[0]
    assert not torch.equal(rev(grads)[0], c2(a2(grads))[0])


def _all_transforms():
    return [
        Identity(),
        GrokfastEMA(alpha=0.9, lamb=2.0),
        GrokfastMA(window=3, lamb=5.0),
        GrokfastMA(window=3, lamb=5.0, reduce="sum", warmup=False),
        GradNorm(c=1.0, scope="tensor"),
        GradNorm(c=2.0, scope="global"),
        Chain(GrokfastEMA(), GradNorm()),
    ]


@pytest.mark.parametrize("index", range(len(_all_transforms())))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inputs_untouched_outputs_same_shape_and_dtype(index, dtype):
    t = _all_transforms()[index]
    stateful = not isinstance(t, (Identity, GradNorm))
    for grads in _sequence(6, seed=15, dtype=dtype):
        before = _clone(grads)
        out = t(grads)
        assert all(torch.equal(g, b) for g, b in zip(grads, before))
        assert [o.shape for o in out] == [g.shape for g in grads]
        assert all(o.dtype == dtype for o in out)
        if stateful:  # outputs are new tensors: writing to them must not disturb input or state
            assert all(o.data_ptr() != g.data_ptr() for o, g in zip(out, grads))
            for o in out:
                o.fill_(float("nan"))
    assert all(torch.isfinite(x).all() for x in t(_sequence(1, seed=16, dtype=dtype)[0]))


def test_base_transform_interface():
    assert isinstance(GrokfastEMA(), GradientTransform) and isinstance(GradNorm(), GradientTransform)
    with pytest.raises(NotImplementedError):
        GradientTransform()([torch.zeros(1)])


# ---------------------------------------------------------------- hyperparameter validation


@pytest.mark.parametrize(
    "make,param",
    [
        (lambda: GrokfastEMA(alpha=1.0), "alpha"),
        (lambda: GrokfastEMA(alpha=1.5), "alpha"),
        (lambda: GrokfastEMA(alpha=-0.1), "alpha"),
        (lambda: GrokfastEMA(alpha=float("nan")), "alpha"),
        (lambda: GrokfastEMA(lamb=-1.0), "lamb"),
        (lambda: GrokfastEMA(lamb=float("inf")), "lamb"),
        (lambda: GrokfastMA(window=0), "window"),
        (lambda: GrokfastMA(window=-3), "window"),
        (lambda: GrokfastMA(window=2.5), "window"),
        (lambda: GrokfastMA(window=True), "window"),
        (lambda: GrokfastMA(lamb=-0.5), "lamb"),
        (lambda: GrokfastMA(lamb=float("nan")), "lamb"),
        (lambda: GrokfastMA(reduce="median"), "reduce"),
        (lambda: GrokfastMA(warmup="yes"), "warmup"),
        (lambda: GradNorm(c=0.0), "c"),
        (lambda: GradNorm(c=-1.0), "c"),
        (lambda: GradNorm(c=float("inf")), "c"),
        (lambda: GradNorm(scope="layer"), "scope"),
        (lambda: GradNorm(eps=-1e-8), "eps"),
    ],
)
def test_bad_hyperparameters_raise(make, param):
    with pytest.raises(ValueError, match=rf"^{param}\b.*got"):
        make()


def test_alpha_message_names_value():
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\), got 1.5"):
        GrokfastEMA(alpha=1.5)
