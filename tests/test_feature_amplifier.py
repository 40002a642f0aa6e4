"""The feature amplifier against a tensor-by-tensor formula, gradient normalisation at the start, its slow average."""
import json
import math

import pytest
import torch

from baselines import Context, GradNorm
from neuralgrok.cli import main
from neuralgrok.config import ConfigError, build
from neuralgrok.bilevel import NeuralGrok
from neuralgrok.feature_amplifier import (EMBED_DIM, FEATURES, CoefficientAmplifier, FeatureAmplifierMLP,
                                          amplify_features, tensor_rms)
from neuralgrok.forms import FeatureForm
from neuralgrok.build import build_model, task_data

from conftest import TINY


def _tensors(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (6,)]
    return [[torch.randn(s, generator=gen, dtype=torch.float64) * scale for s in shapes] for scale in (1e-3, 1e-2, 1.0)]


def _by_hand(mlp, grads, params, slow, step, c):
    """The module docstring's formula, one tensor at a time, with the network as explicit matrix products."""
    out = []
    for t, (g, s, th) in enumerate(zip(grads, slow, params)):
        rms = lambda v: v.reshape(-1).pow(2).mean().sqrt()  # noqa: E731
        cols = {"g": g.reshape(-1) / rms(g), "slow": s.reshape(-1) / rms(s), "theta": th.reshape(-1) / rms(th),
                "step": torch.full((g.numel(),), math.log1p(step) / math.log1p(1e4), dtype=g.dtype)}
        x = torch.stack([cols[f] for f in mlp.features if f != "tensor"], dim=1)
        if "tensor" in mlp.features:
            x = torch.cat([x, mlp.embed.weight[t].expand(g.numel(), EMBED_DIM)], dim=1)
        for i, layer in enumerate(mlp.layers):
            x = x @ layer.weight.T + layer.bias
            x = x.clamp_min(0) if i < len(mlp.layers) - 1 else x
        u = torch.exp(x[:, 0].clamp(-20, 20)) * cols["g"]
        k = 1
        for name in ("slow", "theta"):
            if name in mlp.features:
                u = u + x[:, k] * cols[name]
                k += 1
        out.append((c * u / u.norm()).reshape(g.shape))
    return out


@pytest.mark.parametrize("features", [("g",), ("g", "slow"), ("g", "theta", "step"), FEATURES])
def test_output_matches_the_formula_tensor_by_tensor(features):
    torch.manual_seed(1)
    grads, slow, params = _tensors()
    mlp = FeatureAmplifierMLP(features, (8, 8)).double()
    torch.nn.init.normal_(mlp.layers[-1].weight, std=0.5)
    torch.nn.init.normal_(mlp.layers[-1].bias, std=0.5)
    new, stats = amplify_features(mlp, grads, params, slow, step=123, c=0.7, return_stats=True)
    for a, b in zip(new, _by_hand(mlp, grads, params, slow, 123, 0.7)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert stats["amp_dev"] > 0.01 and stats["amp_gain_std"] > 0
    assert ("amp_slow" in stats) == ("slow" in features) and ("amp_decay" in stats) == ("theta" in features)


def test_untrained_amplifier_is_per_tensor_gradient_normalisation():
    grads, slow, params = _tensors()
    mlp = FeatureAmplifierMLP(FEATURES, (8, 8)).double()
    new, stats = amplify_features(mlp, grads, params, slow, step=5, c=1.0, return_stats=True)
    for a, b in zip(new, GradNorm(c=1.0, scope="tensor")(grads)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    assert stats["amp_dev"] < 1e-12 and stats["amp_slow"] == 0 and stats["amp_decay"] == 0


def test_slow_average_is_grokfast_ema_and_advances_only_when_committed():
    ng = NeuralGrok(FeatureForm(features=("g", "slow"), hidden=(4,), slow_alpha=0.9))
    ng.mlp.double()
    seq = [_tensors(seed)[0] for seed in range(4)]
    params = _tensors()[2]
    expected = [g.clone() for g in seq[0]]  # Grokfast-EMA's buffer: the first gradient, then an average
    ng(seq[0], Context(step=0, params=params))
    for step, grads in enumerate(seq[1:], start=1):
        expected = [0.9 * e + 0.1 * g for e, g in zip(expected, grads)]
        ng(grads, Context(step=step, params=params))
        for a, b in zip(ng.form.slow, expected):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
    ng.update(seq[0], Context(step=4, params=params))  # not committed: a skipped step
    for a, b in zip(ng.form.slow, expected):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)


def test_bad_feature_lists_are_config_errors():
    for bad in ("slow", "g,g", "g,momentum"):
        with pytest.raises(ConfigError, match="--amp-features"):
            build({"method": "neuralgrok", "amp_features": bad})
    for bad in ("g", "g,slow,step", "g,theta,tensor"):  # nothing to learn, or inputs the coefficients cannot read
        with pytest.raises(ConfigError, match="--amp-form coefficients learns the slow and weight terms"):
            build({"method": "neuralgrok", "amp_features": bad, "amp_form": "coefficients"})
    with pytest.raises(ConfigError, match="--amp-form"):
        build({"method": "neuralgrok", "amp_features": "g,slow", "amp_form": "linear"})


@pytest.mark.parametrize("features", [("g", "slow"), ("g", "theta"), ("g", "slow", "theta")])
def test_coefficient_form_adds_each_tensors_terms_in_its_own_proportions(features):
    grads, slow, params = _tensors()
    amp = CoefficientAmplifier(features).double()
    assert amp.coef.abs().max() == 0  # untrained: per-tensor gradient normalisation
    for a, b in zip(amplify_features(amp, grads, params, slow, step=9, c=0.7), GradNorm(c=0.7, scope="tensor")(grads)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    torch.manual_seed(2)
    torch.nn.init.normal_(amp.coef)
    new, stats = amplify_features(amp, grads, params, slow, step=9, c=0.7, return_stats=True)
    terms = [name for name in ("slow", "theta") if name in features]
    for t, (g, s, th) in enumerate(zip(grads, slow, params)):
        u = g / g.norm()  # ĝ + Σ coef · (term / rms); the rms factors √n cancel in the rescaling
        for k, name in enumerate(terms):
            term = s if name == "slow" else th
            u = u + amp.coef[t, k] * term / term.norm()
        torch.testing.assert_close(new[t], 0.7 * u / u.norm(), rtol=1e-12, atol=1e-15)
    assert stats["amp_gain_std"] == 0 and stats["amp_dev"] > 0.01


def test_weight_term_against_the_first_updates_scale_fades_with_the_weights():
    grads, slow, params = _tensors()
    params[3].zero_()  # an all-zero tensor (a bias at init) is divided by 1
    ng = NeuralGrok(FeatureForm(features=("g", "slow", "theta"), form="coefficients", theta_ref="init"), frozen=True)
    ng.mlp.double()
    torch.manual_seed(3)
    torch.nn.init.normal_(ng.mlp.coef)
    ng(grads, Context(step=0, params=params))
    rms0 = [th.pow(2).mean().sqrt().item() or 1.0 for th in params]
    torch.testing.assert_close(ng.form.theta_rms, torch.tensor(rms0, dtype=torch.float64), rtol=1e-6, atol=0)
    later = [3.0 * th + 0.1 for th in params]  # the weights grow; the scale stays the first update's, so the term grows
    new = ng(grads, Context(step=1, params=later))
    for t, (g, s, th) in enumerate(zip(grads, ng.form.slow, later)):  # ng.form.slow: this step's average, now committed
        u = (g / g.pow(2).mean().sqrt() + ng.mlp.coef[t, 0] * s / s.pow(2).mean().sqrt()
             + ng.mlp.coef[t, 1] * th / rms0[t])
        torch.testing.assert_close(new[t], u / u.norm(), rtol=1e-10, atol=1e-14)
    resumed = NeuralGrok(FeatureForm(features=("g", "slow", "theta"), form="coefficients", theta_ref="init"),
                         frozen=True)
    resumed.load_state_dict(ng.state_dict())
    torch.testing.assert_close(resumed.form.theta_rms, ng.form.theta_rms)
    assert torch.equal(tensor_rms([torch.zeros(3), torch.full((4,), 2.0)]), torch.tensor([1.0, 2.0]))


def test_an_amplifier_learnt_with_one_weight_scale_is_refused_by_the_other(tmp_path, capsys):
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,theta", "--amp-form", "coefficients",
            "--max-steps", "4", "--meta-every", "2", "--meta-lr", "1e-2", "--amp-theta-ref", "init"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    assert json.loads((tmp_path / "a" / "amplifier.json").read_text())["theta_ref"] == "init"
    frozen = ["--amplifier", str(tmp_path / "a"), "--freeze-amplifier"]
    assert main(["train", "--out", str(tmp_path / "b"), *args[:-2], *frozen]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("learnt with --amp-theta-ref init; this run uses rms")
    assert main(["train", "--out", str(tmp_path / "c"), *args, *frozen]) == 0
    with pytest.raises(ConfigError, match="--amp-theta-ref"):
        build({"method": "neuralgrok", "amp_theta_ref": "final"})
    with pytest.raises(ConfigError, match="--amp-theta-ref init scales the weight term: it needs theta"):
        build({"method": "neuralgrok", "amp_features": "g,slow", "amp_theta_ref": "init"})


def test_trains_and_records_its_features(tmp_path):
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-hidden", "8", "--max-steps", "60",
            "--meta-every", "2", "--meta-lr", "1e-2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert {"amp_dev", "amp_gain_std", "amp_slow", "amp_decay", "outer_loss"} <= set(rows[-1])
    assert rows[-1]["amp_dev"] > 0  # the meta steps moved it away from gradient normalisation
    info = json.loads((tmp_path / "a" / "amplifier.json").read_text())
    assert info["features"] == ["g", "slow", "theta"] and info["meta_steps"] == 30
    assert main(["train", "--out", str(tmp_path / "b"), *args, "--amplifier", str(tmp_path / "a"),
                 "--freeze-amplifier"]) == 0
    assert (tmp_path / "b" / "amplifier.safetensors").read_bytes() == \
        (tmp_path / "a" / "amplifier.safetensors").read_bytes()


def test_coefficient_form_trains_saves_and_loads(tmp_path):
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
            "--max-steps", "40", "--meta-every", "2", "--meta-lr", "1e-2", "--meta-horizon", "2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    info = json.loads((tmp_path / "a" / "amplifier.json").read_text())
    assert info["form"] == "coefficients" and info["hidden"] == [] and info["meta_steps"] == 20
    row = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["amp_gain_std"] == 0 and row["amp_dev"] > 0 and row["amp_slow"] != 0 and row["amp_decay"] != 0
    assert main(["train", "--out", str(tmp_path / "b"), *args, "--amplifier", str(tmp_path / "a"),
                 "--freeze-amplifier"]) == 0
    assert (tmp_path / "b" / "amplifier.safetensors").read_bytes() == \
        (tmp_path / "a" / "amplifier.safetensors").read_bytes()


def test_a_per_tensor_amplifier_refuses_a_model_with_other_tensors(tmp_path, capsys):
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
            "--max-steps", "4", "--meta-every", "2", "--meta-lr", "1e-2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    layers = {n: build({"task": "a+b", "p": 23, "d_model": 64, "n_layers": n}) for n in (1, 2)}
    count = {n: len(list(build_model(cfg, task_data(cfg)).parameters())) for n, cfg in layers.items()}
    record = json.loads((tmp_path / "a" / "amplifier.json").read_text())
    names = [n for n, _ in build_model(layers[1], task_data(layers[1])).named_parameters()]
    assert record["tensors"] == count[1] and record["tensor_names"] == names
    assert main(["train", "--out", str(tmp_path / "b"), *args, "--n-layers", "2", "--amplifier", str(tmp_path / "a"),
                 "--freeze-amplifier"]) == 2
    err = capsys.readouterr().err.strip()
    first = next(i for i, n in enumerate(names) if not n.startswith(("tok", "pos", "blocks.0.")))  # 1 layer's head
    assert "\n" not in err and err.endswith(f"reads parameters by position and was learnt on another model: its "
                                             f"parameter {first} is {names[first]}, this model's is blocks.1.ln1.weight")
    assert not (tmp_path / "b" / "metrics.jsonl").exists()  # refused before the first step
    del record["tensor_names"]  # an amplifier recorded before names were: the count still refuses the other model
    (tmp_path / "a" / "amplifier.json").write_text(json.dumps(record))
    assert main(["train", "--out", str(tmp_path / "b2"), *args, "--n-layers", "2", "--amplifier", str(tmp_path / "a"),
                 "--freeze-amplifier"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"learnt on a model with {count[1]} parameter tensors and reads "
                                                     f"them by position; this model has {count[2]}")
    assert main(["train", "--out", str(tmp_path / "c"), *args, "--amplifier", str(tmp_path / "a"),
                 "--freeze-amplifier"]) == 0


def test_meta_steps_begin_at_the_first_evaluation_that_fits_well_enough(tmp_path):
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,theta", "--amp-form", "coefficients", "--run-on",
            "--max-steps", "200", "--eval-every", "10", "--meta-every", "3", "--meta-lr", "1e-2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args, "--meta-start-acc", "0.5"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    start = next(r["step"] for r in rows if r["train_acc"] >= 0.5)  # the inner steps run on from here
    assert 0 < start < 190
    expected = sum(1 for s in range(start, 200) if s % 3 == 0)  # a meta step at every third step from then on
    assert json.loads((tmp_path / "a" / "amplifier.json").read_text())["meta_steps"] == expected
    assert all(r["outer_loss"] is None for r in rows if r["step"] <= start)
    assert all(r["amp_dev"] == 0 for r in rows if r["step"] <= start)  # untouched: gradient normalisation
    assert rows[-1]["amp_dev"] > 0
    with pytest.raises(ConfigError, match="--meta-start-acc must be in"):
        build({"method": "neuralgrok", "meta_start_acc": 1.5})


def test_averaged_control_holds_each_terms_mean_over_the_models_tensors(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import load_file
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
            "--max-steps", "6", "--meta-every", "2", "--meta-lr", "1e-2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    script = Path(__file__).parents[1] / "experiments" / "average_coefficients.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "a"), str(tmp_path / "avg")], check=True,
                   capture_output=True)
    n = json.loads((tmp_path / "a" / "amplifier.json").read_text())["tensors"]
    learnt, avg = (load_file(tmp_path / d / "amplifier.safetensors")["coef"] for d in ("a", "avg"))
    assert learnt[:n].std(dim=0).min() > 0  # the meta steps gave the tensors different coefficients
    for k in range(learnt.shape[1]):
        assert torch.allclose(avg[:n, k], torch.full((n,), sum(learnt[:n, k].tolist()) / n))
    assert torch.equal(avg[n:], learnt[n:])
    assert main(["train", "--out", str(tmp_path / "b"), *args, "--amplifier", str(tmp_path / "avg"),
                 "--freeze-amplifier"]) == 0


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_non_negative_decay_is_the_meta_step_projected_onto_d_at_least_0(direction):
    """One meta step from the same state: the bounded coefficients are the unbounded ones with d clamped at 0."""
    grads, params, _ = _tensors(3)
    lr = 0.1
    # an outer loss that rewards growing the weights (direction -1: the learnt decay goes negative) or shrinking them
    ctx = Context(step=0, params=params, lookahead=lambda g, _rule: [p - lr * u for p, u in zip(params, g)],
                  loss=lambda _name, ahead: direction * sum((a * a).sum() for a in ahead))
    coefs = []
    for nonneg in (False, True):
        ng = NeuralGrok(FeatureForm(features=("g", "slow", "theta"), form="coefficients", decay_nonneg=nonneg),
                        meta_lr=1e-2, meta_every=1)
        ng.update(grads, ctx).commit()
        coefs.append(ng.mlp.per_tensor(len(grads)))
    free, bounded = coefs
    n_negative = sum(d < 0 for d in free["decay"])
    assert n_negative == (len(grads) if direction < 0 else 0)  # the oracle moves where the loss says
    assert bounded["decay"] == [max(d, 0.0) for d in free["decay"]]
    assert bounded["slow"] == free["slow"]  # the slow term is not bounded


def test_non_negative_decay_needs_the_coefficient_forms_weight_term():
    for bad in ({"amp_features": "g,slow", "amp_form": "coefficients"}, {"amp_features": "g,theta"}):
        with pytest.raises(ConfigError, match="--amp-decay-nonneg"):
            build({"method": "neuralgrok", "amp_decay_nonneg": True, **bad})


def _map_script():
    from conftest import experiment_script
    return experiment_script("map_coefficients")


def test_depth_map_reads_each_block_from_the_source_block_holding_its_centre():
    depth_map = _map_script().depth_map
    names = lambda n: ["tok.weight", *(f"blocks.{k}.{t}" for k in range(n) for t in ("w", "b")), "head.weight"]  # noqa: E731
    by_hand = {1: [1], 2: [0, 1], 3: [0, 1, 1], 4: [0, 0, 1, 1]}  # 2 source blocks, centre of k at (k + 1/2) / n
    for n, blocks in by_hand.items():
        expected = [0, *(1 + 2 * j + t for j in blocks for t in (0, 1)), 5]
        assert depth_map(names(2), names(n)) == expected
    assert depth_map(names(4), names(2)) == [0, 3, 4, 7, 8, 9]  # 4 → 2 blocks: source blocks 1 and 3
    with pytest.raises(ValueError, match=r"^blocks\.0\.extra has no counterpart \(blocks\.1\.extra\)"):
        depth_map(names(2), ["tok.weight", "blocks.0.extra"])


def test_a_mapped_amplifier_loads_onto_a_deeper_model_with_each_tensors_coefficients(tmp_path):
    import subprocess
    import sys

    from safetensors.torch import load_file
    args = [*TINY, "--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form", "coefficients",
            "--max-steps", "6", "--meta-every", "2", "--meta-lr", "1e-2", "--n-layers", "2"]
    assert main(["train", "--out", str(tmp_path / "a"), *args]) == 0
    subprocess.run([sys.executable, _map_script().__file__, str(tmp_path / "a"), str(tmp_path / "deep"),
                    "--n-layers", "3"], check=True, capture_output=True)
    cfgs = {n: build({"task": "a+b", "p": 23, "d_model": 64, "n_layers": n}) for n in (2, 3)}
    names = {n: [name for name, _ in build_model(c, task_data(c)).named_parameters()] for n, c in cfgs.items()}
    learnt, mapped = (load_file(tmp_path / d / "amplifier.safetensors")["coef"] for d in ("a", "deep"))
    assert learnt[:len(names[2])].std(dim=0).min() > 0  # the tensors learnt different coefficients
    for i, name in enumerate(names[3]):  # block 2 of 3 has its centre in the second half: source block 1
        source = name.replace("blocks.2.", "blocks.1.")
        assert torch.equal(mapped[i], learnt[names[2].index(source)]), name
    assert json.loads((tmp_path / "deep" / "amplifier.json").read_text())["tensors"] == len(names[3])
    frozen = ["--amplifier", str(tmp_path / "deep"), "--freeze-amplifier"]
    assert main(["train", "--out", str(tmp_path / "b"), *args[:-1], "3", *frozen]) == 0
    assert main(["train", "--out", str(tmp_path / "c"), *args, *frozen]) == 2  # still read by position: not onto 2
