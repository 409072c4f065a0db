"""Render the README's pictures of issue 17 into docs/images/ (needs Graphviz; `report` needs Chromium).

    python docs/images/make_pictures.py make_dot      # make_dot_lenet.svg
    python docs/images/make_pictures.py diagnostics   # diagnostics_sigmoid20.png (trains 3 epochs)
    python docs/images/make_pictures.py compare       # compare_digits_lr.png + the table (trains 3 runs)
    python docs/images/make_pictures.py report        # report_html.png (trains digits_cnn, screenshots it)

Runs go to a temporary folder; only the pictures are kept. Run from the repository root.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "docs" / "images"
sys.path.insert(0, str(ROOT))


def train(tmp: Path, config: Path, name: str, *sets: str) -> Path:
    run = tmp / name
    cmd = [sys.executable, "-m", "trainkit", "train", str(config), "--run-dir", str(run), "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return run


def make_dot_picture(tmp: Path) -> None:
    import trainkit as torch
    import trainkit.nn as nn
    from trainkit.viz import make_dot

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = nn.CrossEntropyLoss()(model(x), y)
    make_dot(loss, params=dict(model.named_parameters())).render(str(tmp / "make_dot_lenet"), format="svg")
    shutil.copy(tmp / "make_dot_lenet.svg", HERE / "make_dot_lenet.svg")


SIGMOID_20 = ("name: sigmoid20\nseed: 0\ndata: {dataset: digits, val_split: 0.1, batch_size: 32}\nmodel:\n  layers:\n"
              "    - flatten\n" + "    - linear: {out_features: 32}\n    - sigmoid\n" * 20
              + "    - linear: {out_features: 10}\noptimizer: {type: sgd, lr: 0.05}\ntrain: {epochs: 3}\n")


def diagnostics_picture(tmp: Path) -> None:
    (tmp / "sigmoid20.yaml").write_text(SIGMOID_20)
    run = train(tmp, tmp / "sigmoid20.yaml", "sigmoid20")
    shutil.copy(run / "diagnostics.png", HERE / "diagnostics_sigmoid20.png")
    print((run / "train.log").read_text())


def compare_picture(tmp: Path) -> None:
    runs = [train(tmp, ROOT / "configs" / "digits_cnn.yaml", f"lr-{lr}", f"optimizer.lr={lr}")
            for lr in ("0.0003", "0.003", "0.03")]
    subprocess.run([sys.executable, "-m", "trainkit", "compare", *map(str, runs), "-o",
                    str(HERE / "compare_digits_lr.png")], check=True, cwd=tmp)


def report_picture(tmp: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import Browser

    run = train(tmp, ROOT / "configs" / "digits_cnn.yaml", "digits_cnn")
    with Browser(width=1280, height=1500) as b:
        b.open((run / "report.html").resolve().as_uri())
        box = b.evaluate("(() => { const r = document.getElementById('chart-loss').getBoundingClientRect();"
                         " return [r.left, r.top, r.width, r.height]; })()")
        b.mouse_move(box[0] + box[2] * 0.45, box[1] + box[3] * 0.5)  # show the hover
        (HERE / "report_html.png").write_bytes(b.screenshot())
        assert not b.errors, b.errors
    print(f"report.html: {(run / 'report.html').stat().st_size:,} bytes")


PICTURES = {"make_dot": make_dot_picture, "diagnostics": diagnostics_picture, "compare": compare_picture,
            "report": report_picture}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(PICTURES)
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            PICTURES[name](Path(tmp))
