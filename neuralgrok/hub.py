"""Self-describing folders for a run's base model and amplifier (``save_pretrained`` / ``from_pretrained``).

Built on huggingface_hub's ``PyTorchModelHubMixin``: weights as ``model.safetensors``, the
constructor's arguments as ``config.json``, and a model card (``README.md``) naming the task, the
method and the run. Local folders work offline; ``push_to_hub`` shares them.
"""

import json
from dataclasses import asdict
from pathlib import Path

from huggingface_hub import PyTorchModelHubMixin

from .amplifier import AmplifierMLP
from .model import ARCHS, ModelConfig, Transformer

TAGS = ["grokking", "modular-arithmetic", "neuralgrok"]
# No `from __future__ import annotations` in this file: the mixin reads the constructors' annotations as
# types, to encode ModelConfig into config.json and back.


class PretrainedTransformer(Transformer, PyTorchModelHubMixin, library_name="neuralgrok", tags=TAGS,
                            coders={ModelConfig: (asdict, lambda d: ModelConfig(**d))}):
    """The base model as a folder: ``PretrainedTransformer.from_pretrained(path)``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)


class PretrainedAmplifier(AmplifierMLP, PyTorchModelHubMixin, library_name="neuralgrok", tags=TAGS):
    """A learnt NeuralGrok amplifier as a folder; ``--amplifier`` accepts it."""

    def __init__(self, hidden: list[int]):
        super().__init__(tuple(hidden))


def _card(kind: str, run_dir: Path, config: dict, summary: dict | None) -> str:
    reached = (summary or {}).get("steps_to_95")
    return "\n".join([
        f"# {kind} from the neuralgrok run `{run_dir.name}`", "",
        f"- task: `({config.get('task')}) mod {config.get('p')}`, layout {config.get('layout')}",
        f"- method: {config.get('label') or config.get('method')}, seed {config.get('seed')}",
        f"- model: {config.get('arch')}, {config.get('n_layers')} layers, width {config.get('d_model')}",
        f"- steps to 95% test accuracy: {reached if reached is not None else 'not reached'}"
        f" (of {(summary or {}).get('steps', '?')} steps)", "",
        "Written by `neuralgrok export`; the run's full configuration is in `run_config.json`.", ""])


def export_run(run_dir: str | Path, out: str | Path) -> list[Path]:
    """Writes ``out/model`` (the final checkpoint's base model) and, for NeuralGrok, ``out/amplifier``.

    Only the paper's scalar amplifier is exported as a ``save_pretrained`` folder; a feature
    amplifier (``--amp-features``) is shared as the run folder's ``amplifier.safetensors``.
    """
    from . import checkpoint
    from .config import ConfigError, from_json
    from .build import build_model, task_data
    from .runfolder import write_atomic
    run_dir, out = Path(run_dir), Path(out)
    found = checkpoint.load_latest(run_dir) if (run_dir / "config.json").is_file() else None
    if found is None:
        raise ConfigError(f"nothing to export in {run_dir}: no config.json or no intact checkpoint")
    cfg = from_json((run_dir / "config.json").read_text())
    if cfg.arch not in ARCHS:
        raise ConfigError(f"export writes transformers; {run_dir}'s {cfg.arch} model is in its checkpoints")
    config = json.loads((run_dir / "config.json").read_text())
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    model = build_model(cfg, task_data(cfg), PretrainedTransformer)
    model.load_state_dict(found[1]["model"])
    written = [(out / "model", model, "Base model")]
    if cfg.method == "neuralgrok" and cfg.amp_features == "g":
        amp = PretrainedAmplifier(list(cfg.amp_hidden))
        amp.load_state_dict(found[1]["transform"]["mlp"])
        written.append((out / "amplifier", amp, "NeuralGrok amplifier"))
    for folder, module, kind in written:
        module.save_pretrained(folder)
        write_atomic(folder / "README.md", _card(kind, run_dir, config, summary))
        write_atomic(folder / "run_config.json", json.dumps(config, indent=2) + "\n")
    return [folder for folder, _, _ in written]
