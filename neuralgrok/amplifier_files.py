"""Amplifier files: what ``--amplifier`` names (a file, a run folder, an export, ``builtin:NAME``) and reading it.

A learnt amplifier is ``amplifier.safetensors`` (its weights) beside ``amplifier.json`` (what it
was learnt as: hidden sizes or form, features, the tensor count it reads by position).  The
amplifiers that the project's studies found useful ship with the package under
``neuralgrok/amplifiers/NAME/`` with a ``provenance.json`` (the run it came from, what it was
learnt on, the model it fits, the study that measured it); ``neuralgrok amplifiers`` lists them
and ``--amplifier builtin:NAME`` loads one through the same path as any other file.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import AmplifierFileError

AMPLIFIER_FILE = "amplifier.safetensors"
AMPLIFIER_META = "amplifier.json"
PROVENANCE = "provenance.json"
BUILTIN = "builtin:"
BUILTIN_DIR = Path(__file__).parent / "amplifiers"


def builtin_names() -> list[str]:
    """The names of the shipped amplifiers."""
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / AMPLIFIER_FILE).is_file()) if BUILTIN_DIR.is_dir() else []


def amplifier_file(spec: str | Path) -> Path:
    """The weights file that ``spec`` names; AmplifierFileError (one line) when there is none."""
    text = str(spec)
    if text.startswith(BUILTIN):
        name = text[len(BUILTIN):]
        if name not in builtin_names():
            raise AmplifierFileError(f"no built-in amplifier {name!r}; `neuralgrok amplifiers` lists "
                                     f"{', '.join(builtin_names()) or 'none'}")
        return BUILTIN_DIR / name / AMPLIFIER_FILE
    path = Path(spec)
    if path.is_dir():  # a run folder, or a folder written by save_pretrained (neuralgrok export)
        exported = not (path / AMPLIFIER_FILE).exists() and (path / "model.safetensors").exists()
        path = path / ("model.safetensors" if exported else AMPLIFIER_FILE)
    if not path.is_file():
        raise AmplifierFileError(f"no amplifier file at {path}")
    return path


def read_amplifier(spec: str | Path) -> tuple[dict, dict, Path]:
    """(tensors, amplifier.json's record or {}, the weights file) of the amplifier ``spec`` names."""
    from safetensors import SafetensorError
    from safetensors.torch import load
    path = amplifier_file(spec)
    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise AmplifierFileError(f"amplifier file {path} is corrupt: {str(e).splitlines()[0]}") from None
    meta_path = path.parent / AMPLIFIER_META
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except ValueError as e:
        raise AmplifierFileError(f"{meta_path} is corrupt: {str(e).splitlines()[0]}") from None
    return tensors, meta, path


def flags_for(meta: dict) -> str:
    """The run options an amplifier file was learnt with (a feature amplifier's form, features and weight scale)."""
    features = meta.get("features", ["g"])
    if features == ["g"]:
        return f"--amp-hidden {','.join(map(str, meta.get('hidden', [])))}"
    words = [f"--amp-features {','.join(features)}", f"--amp-form {meta.get('form', 'mlp')}"]
    if "theta" in features:
        words.append(f"--amp-theta-ref {meta.get('theta_ref', 'rms')}")
    if meta.get("form", "mlp") == "mlp":
        words.append(f"--amp-hidden {','.join(map(str, meta.get('hidden', [])))}")
    return " ".join(words)


def describe_builtins() -> str:
    """The shipped amplifiers with their provenance and the options that use them, as text."""
    lines = []
    for name in builtin_names():
        folder = BUILTIN_DIR / name
        prov = json.loads((folder / PROVENANCE).read_text())
        meta = json.loads((folder / AMPLIFIER_META).read_text())
        lines += [f"builtin:{name}", f"  {prov['summary']}",
                  f"  learnt on: {prov['learnt_on']}", f"  from run:  {prov['run']}",
                  f"  fits:      {prov['fits']} ({meta.get('tensors', '?')} parameter tensors, read by position)",
                  f"  measured:  {prov['measured']}",
                  f"  use:       --method neuralgrok {flags_for(meta)} --amplifier builtin:{name} --freeze-amplifier",
                  ""]
    return "\n".join(lines) if lines else "no built-in amplifiers"
