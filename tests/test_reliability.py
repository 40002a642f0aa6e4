"""Kill-and-resume gives the uninterrupted run's metrics; damaged checkpoints, changed configs and NaNs are handled."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from neuralgrok import checkpoint
from neuralgrok.clock import RunClock, untimed
from neuralgrok.cli import main, parser, resolve_train_args
from neuralgrok.trainer import NonFiniteError, Trainer

from conftest import TINY

RUN = [*TINY, "--run-on", "--max-steps", "400", "--checkpoint-every", "7", "--keep-checkpoints", "3"]
METHODS = {"standard": [], "grokfast_ma": ["--method", "grokfast_ma", "--ma-window", "5"],
           "orthograd": ["--method", "orthograd", "--weight-norm", "30", "--loss", "stablemax"],
           "mlp": ["--arch", "mlp", "--d-model", "128", "--n-layers", "2", "--mlp-hidden", "32,32", "--loss", "softmax64"],
           "neuralgrok": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "2"],
           # the public codes' setup: the meta step after the model's, decay on the amplifier's Adam
           "neuralgrok_after": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "3", "--meta-order",
                                "after", "--meta-weight-decay", "1e-3", "--layout", "postfix"],
           "neuralgrok_k3": ["--method", "neuralgrok", "--amp-hidden", "8,8", "--meta-every", "3", "--meta-horizon", "3",
                             "--lookahead", "inner"],
           "neuralgrok_features": ["--method", "neuralgrok", "--amp-features", "g,slow,theta,step,tensor",
                                   "--amp-hidden", "8", "--meta-every", "2"],
           "neuralgrok_gated": ["--method", "neuralgrok", "--amp-features", "g,slow,theta", "--amp-form",
                                "coefficients", "--meta-every", "2", "--meta-start-acc", "0.5",
                                "--amp-theta-ref", "init"]}  # its weight scale, taken at step 0, is restored


def metrics(folder):
    """The metrics lines without the clock fields, which no two runs share."""
    return [untimed(json.loads(line)) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Uninterrupted runs, one per method."""
    root = tmp_path_factory.mktemp("reference")
    for name, extra in METHODS.items():
        assert main(["train", "--out", str(root / name), *RUN, *extra]) == 0
    return root


def start(out, extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "neuralgrok", "train", "--out", str(out), *RUN, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_checkpoints(proc, out, n=1, timeout=120):
    """Waits until ``n`` complete checkpoints (manifests) exist while the run is still going."""
    deadline = time.time() + timeout
    while len(list((out / "checkpoints").glob("step-*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.01)


def assert_same_run(out, ref):
    assert metrics(out) == metrics(ref)
    a, b = json.loads((out / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
    assert {k: v for k, v in a.items() if "second" not in k} == {k: v for k, v in b.items() if "second" not in k}
    if (ref / "amplifier.safetensors").exists():
        assert (out / "amplifier.safetensors").read_bytes() == (ref / "amplifier.safetensors").read_bytes()


@pytest.mark.parametrize("method", list(METHODS))
def test_sigkill_then_same_command_resumes_exactly(method, reference, tmp_path):
    out = tmp_path / "run"
    proc = start(out, METHODS[method])
    wait_for_checkpoints(proc, out)
    time.sleep(random.Random(method).uniform(0.0, 0.8))  # an arbitrary moment, mid-step or mid-write
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "summary.json").exists()
    assert main(["train", "--out", str(out), *RUN, *METHODS[method]]) == 0  # the same command again
    assert_same_run(out, reference / method)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2])  # a kill; a scheduler's time-limit warning
def test_stop_signal_checkpoints_and_resume_flag_continues(signum, reference, tmp_path):
    out = tmp_path / "run"
    proc = start(out, [])
    wait_for_checkpoints(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum and "--resume" in err, err
    step = int(err.split("at step ")[1].split(";")[0])
    assert step in checkpoint.steps(out)  # written at the moment of the signal
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_same_run(out, reference / "standard")


def test_damaged_newest_checkpoint_falls_back(reference, tmp_path, capsys):
    out = tmp_path / "run"
    proc = start(out, [])
    wait_for_checkpoints(proc, out, 3)
    proc.kill()
    proc.wait()
    newest = checkpoint.steps(out)[-1]
    pt = out / "checkpoints" / f"step-{newest:08d}.pt"
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])  # truncated
    assert main(["train", "--out", str(out), *RUN]) == 0
    err = capsys.readouterr().err
    assert f"step-{newest:08d}.pt does not match its checksum" in err
    assert_same_run(out, reference / "standard")


def test_changed_config_refused_naming_keys(reference, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--max-steps", "14"]) == 0
    before = (out / "metrics.jsonl").read_bytes()
    assert main(["train", "--out", str(out), *RUN, "--max-steps", "14", "--lr", "0.02", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lr" in err and "--seed" in err and "--max-steps" not in err
    assert (out / "metrics.jsonl").read_bytes() == before
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2


def test_longer_max_steps_continues_a_finished_run(reference, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--max-steps", "200"]) == 0
    assert main(["train", "--resume", str(out), "--max-steps", "400", "--quiet"]) == 0
    assert_same_run(out, reference / "standard")


def test_a_checkpoint_records_its_thread_count_and_host_and_a_resume_on_others_warns(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *RUN, "--max-steps", "14", "--quiet"]) == 0
    step, state = checkpoint.load_latest(out)
    assert state["threads"] == torch.get_num_threads()
    assert state["host"]["torch"] == torch.__version__ and state["host"]["cpu"]
    assert main(["train", "--resume", str(out), "--max-steps", "21", "--quiet"]) == 0
    assert "neuralgrok:" not in capsys.readouterr().err  # the same count and host: nothing to say
    step, state = checkpoint.load_latest(out)
    other_host = {**state["host"], "cpu": "Some Other CPU 9000"}  # as written on another machine
    checkpoint.save(out, step, {**state, "threads": torch.get_num_threads() + 1, "host": other_host})
    assert main(["train", "--resume", str(out), "--max-steps", "28", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert (f"checkpoint was written on {torch.get_num_threads() + 1} threads and this process has "
            f"{torch.get_num_threads()}: the continuation is not the bits one run would give") in err
    assert (f"checkpoint was written on another host (cpu Some Other CPU 9000 (here {state['host']['cpu']})): "
            "the continuation is a genuine run but not the bits one host would give") in err
    assert json.loads((out / "summary.json").read_text())["host"] == state["host"]  # the host that finished it


def test_same_seed_same_metrics(reference, tmp_path):
    assert main(["train", "--out", str(tmp_path / "again"), *RUN, *METHODS["neuralgrok"]]) == 0
    assert metrics(tmp_path / "again") == metrics(reference / "neuralgrok")


def test_run_folder_config_json_reruns_the_run(reference, tmp_path):
    saved = reference / "grokfast_ma" / "config.json"
    assert main(["train", "--config", str(saved), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    assert_same_run(tmp_path / "again", reference / "grokfast_ma")


def _trainer(tmp_path, *extra):
    cfg = resolve_train_args(parser().parse_args(["train", *TINY, "--max-steps", "40", "--run-on", *extra]))
    return Trainer(cfg, tmp_path / "run", quiet=True)


def test_non_finite_steps_are_skipped_and_counted(tmp_path):
    trainer = _trainer(tmp_path)
    poisoned = {5, 6, 20}
    trainer.params[0].register_hook(lambda g: g * float("nan") if trainer.step in poisoned else g)
    before = {}

    def snapshot(step):
        before[step] = [p.detach().clone() for p in trainer.params]

    for step in range(40):
        snapshot(step)
        trainer.train_step(log=False)
        if step in poisoned:  # nothing moved on a skipped step
            assert all(torch.equal(a, b) for a, b in zip(before[step], trainer.params))
    assert trainer.skipped_steps == 3 and trainer.bad_steps == 0
    assert trainer.eval_row({}, RunClock())["skipped_steps"] == 3  # logged in metrics.jsonl


def test_persistent_nan_stops_with_message_and_keeps_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, "--max-bad-steps", "3", "--checkpoint-every", "10")
    trainer.params[0].register_hook(lambda g: g * float("nan") if trainer.step >= 25 else g)
    with pytest.raises(NonFiniteError, match="3 consecutive steps"):
        trainer.run()
    assert checkpoint.steps(tmp_path / "run") == [10, 20]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped"] == "non_finite" and summary["skipped_steps"] == 3 and summary["steps"] == 28
