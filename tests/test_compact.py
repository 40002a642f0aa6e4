"""`neuralgrok compact`: the same metrics bytes back from metrics.jsonl.xz, read by every reader, resumed; figures as palette PNGs."""
import io
import json
import lzma
import warnings

import pytest

from neuralgrok import compact
from neuralgrok.aggregate import load_run
from neuralgrok.cli import main
from neuralgrok.png import MAX_ERROR, palette_png
from neuralgrok.runfolder import MetricsFileError, MetricsLog, read_metrics
from neuralgrok.runlock import FolderLock
from test_grid import GRID, _grid, _untimed  # the tiny one-cell grid, 40 steps with checkpoints every 10

ROWS = [{"step": s, "train_acc": 0.1 + s / 1000, "test_acc": 1 / 3 + s / 7000, "test_loss": 2.0 ** -s, "awe": None,
         "age_tensors": {"tok.weight": 1e-300 * s, "head.bias": -0.0}} for s in range(0, 1001, 10)]


def _run(folder, finished=True, rows=ROWS):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": "a+b", "p": 23, "method": "standard", "seed": 0}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if finished:
        (folder / "summary.json").write_text(json.dumps({"steps_to_95": None, "steps": rows[-1]["step"]}))
    return folder


def test_round_trip_gives_back_the_same_bytes_and_every_reader_reads_them(tmp_path):
    run = _run(tmp_path / "results" / "runs" / "a")
    original = (run / "metrics.jsonl").read_bytes()
    assert main(["compact", str(tmp_path / "results")]) == 0
    assert not (run / "metrics.jsonl").exists()
    packed = (run / "metrics.jsonl.xz").read_bytes()
    assert lzma.decompress(packed) == original and len(packed) < len(original) / 3  # the oracle: lzma itself
    expected = [json.loads(line) for line in original.decode().splitlines()]
    assert read_metrics(run / "metrics.jsonl") == (expected, 0)  # asked for the plain log, given the .xz
    assert read_metrics(run / "metrics.jsonl.xz") == (expected, 0)
    assert load_run(run).metrics == expected


def test_compacting_again_changes_nothing(tmp_path, capsys):
    _run(tmp_path / "r" / "a")
    assert compact.main([str(tmp_path / "r")]) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*")if p.is_file()}
    capsys.readouterr()
    assert compact.main([str(tmp_path / "r")]) == 0
    assert "metrics: 0 file(s) compacted" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before


def test_unfinished_held_and_hidden_runs_keep_their_plain_log(tmp_path):
    running = _run(tmp_path / "r" / "running", finished=False)
    held = _run(tmp_path / "r" / "held")
    half_copy = _run(tmp_path / "r" / ".held.reusing")
    with FolderLock(held):  # a live writer, e.g. `train --resume` to a raised cap
        assert compact.main([str(tmp_path / "r")]) == 0
    for run in (running, held, half_copy):
        assert (run / "metrics.jsonl").exists() and not (run / "metrics.jsonl.xz").exists()
    assert compact.main([str(tmp_path / "r")]) == 0  # released: compacted now
    assert (held / "metrics.jsonl.xz").exists() and not (held / "metrics.jsonl").exists()


def test_a_plain_log_beside_its_compressed_copy_wins(tmp_path):
    """A kill between the two writes of a compaction or a resume leaves both: the plain log is the newer one."""
    run = _run(tmp_path / "a")
    (run / "metrics.jsonl.xz").write_bytes(lzma.compress(b'{"step": 0, "test_acc": 0.5}\n'))
    assert read_metrics(run / "metrics.jsonl")[0] == ROWS
    assert compact.main([str(run)]) == 0
    assert lzma.decompress((run / "metrics.jsonl.xz").read_bytes()).decode().splitlines()[-1] == json.dumps(ROWS[-1])


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:],
                                    lambda b: b"not xz at all"])
def test_a_damaged_compressed_log_is_one_line_naming_the_file(tmp_path, capsys, damage):
    run = _run(tmp_path / "a")
    assert compact.main([str(run)]) == 0
    packed = run / "metrics.jsonl.xz"
    packed.write_bytes(damage(packed.read_bytes()))
    with pytest.raises(MetricsFileError, match=f"^{packed}: damaged compressed metrics"):
        read_metrics(run / "metrics.jsonl")
    capsys.readouterr()
    assert compact.main([str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(packed) in err
    with pytest.warns(UserWarning, match=f"{packed}: damaged compressed metrics"):  # a report names and skips it
        assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    assert "Not run folders, skipped: `" in (tmp_path / "report" / "report.md").read_text()


def test_resume_truncates_a_compressed_log_into_the_plain_one(tmp_path):
    run = _run(tmp_path / "a")
    compact.main([str(run)])
    assert MetricsLog(run / "metrics.jsonl").truncate_to(500) == [r for r in ROWS if r["step"] <= 500]
    assert not (run / "metrics.jsonl.xz").exists()
    assert [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] == ROWS[:51]


def test_a_grid_raising_the_cap_continues_a_compacted_run(tmp_path, capsys):
    """The oracle: the same cell trained to the raised cap in one go."""
    assert _grid(tmp_path, GRID.replace("max_steps = 40", "max_steps = 20"), "out") == 0
    run = tmp_path / "out" / "runs" / "add-standard-s0"
    assert compact.main([str(tmp_path / "out")]) == 0 and not (run / "metrics.jsonl").exists()
    capsys.readouterr()
    assert _grid(tmp_path, GRID, "out") == 0
    assert "continued from its checkpoint to the raised cap" in capsys.readouterr().out
    assert not (run / "metrics.jsonl.xz").exists()
    assert _grid(tmp_path, GRID, "fresh") == 0
    fresh = _untimed(tmp_path / "fresh" / "runs" / "add-standard-s0")
    assert _untimed(run) == fresh and [r["step"] for r in fresh] == [10, 20, 30, 40]


def _figure_png() -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.linspace(0, 10, 400)
    for i in range(8):
        ax.plot(x, np.sin(x + i), lw=0.8, label=f"method {i}")
        ax.fill_between(x, np.sin(x + i) - 0.1, np.sin(x + i) + 0.1, alpha=0.2)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def test_a_figure_becomes_a_smaller_palette_png_of_the_same_picture(tmp_path):
    import numpy as np
    from PIL import Image
    original = _figure_png()
    figure = tmp_path / "report" / "accuracy.png"
    figure.parent.mkdir()
    figure.write_bytes(original)
    assert compact.main([str(tmp_path)]) == 0
    smaller = figure.read_bytes()
    assert len(smaller) < len(original) / 2
    with Image.open(io.BytesIO(original)) as a, Image.open(figure) as b:
        assert b.mode == "P" and b.size == a.size and b.info["dpi"] == pytest.approx(a.info["dpi"], abs=0.01)
        error = np.abs(np.asarray(a.convert("RGB"), int) - np.asarray(b.convert("RGB"), int))
        assert 0 < error.max() <= MAX_ERROR and error.mean() < 3  # of 255: a level or two on average
        assert b.text == a.text  # matplotlib's Software line
    assert palette_png(smaller) is None  # a palette PNG is left as it is: compacting again changes nothing
    assert compact.main([str(tmp_path)]) == 0 and figure.read_bytes() == smaller


def test_a_figure_a_palette_would_change_is_kept(tmp_path):
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # 4,096 colours, none close
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    assert palette_png(buf.getvalue()) is None
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="not a readable PNG"):
        palette_png((tmp_path / "broken.png").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compact.main([str(tmp_path)]) == 1


def test_a_damaged_compressed_log_is_one_line_on_the_command_line(tmp_path, capsys):
    run = _run(tmp_path / "a")
    assert compact.main([str(run)]) == 0
    packed = run / "metrics.jsonl.xz"
    packed.write_bytes(packed.read_bytes()[:100])
    capsys.readouterr()
    assert main(["log", str(run), "--to", "tensorboard"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"neuralgrok: error: {packed}: damaged compressed metrics, not a "
                                                    "readable xz file (Compressed data ended before the end-of-stream "
                                                    "marker was reached)"]
