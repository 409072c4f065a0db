"""A run trained by an older trainkit, before a defaulted key existed, still resumes and evaluates.

The run's config.yaml holds the config as the trainkit that trained it resolved it; a key added since
with a default changes today's resolved config (and its hash) but not the model. The checkpoint is
accepted when its hash is either today's resolved config's or the file's as written; an edit of the
file still changes both and is refused.
"""
from __future__ import annotations

import yaml

from clitools import digits_config, tk
from trainkit.assemble.prepare import model_fingerprint
from trainkit.train.checkpoint import load_checkpoint, save_checkpoint

#: A defaulted key of today's schema, standing for one an older trainkit did not have.
DROPPED = ("data", "drop_last")


def _as_if_trained_before_the_key(run) -> None:
    """Rewrite the run as the older trainkit would have written it: config.yaml without the key, and
    checkpoints whose hash is that config's."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    del cfg[DROPPED[0]][DROPPED[1]]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for which in ("last", "best"):
        weights, arrays, meta = load_checkpoint(run / "checkpoints" / which)
        save_checkpoint(run / "checkpoints" / which, weights, arrays, {**meta, "config_hash": model_fingerprint(cfg)})


def test_a_run_from_before_a_new_default_resumes_and_evaluates(tmp_path):
    (tmp_path / "c.yaml").write_text(digits_config(epochs=1))
    run = tmp_path / "run"
    tk(tmp_path, "train", "c.yaml", "--run-dir", run, "--quiet", check=0)
    _as_if_trained_before_the_key(run)
    r = tk(tmp_path, "eval", run, check=0)
    assert "accuracy" in r.stdout
    tk(tmp_path, "train", "--resume", run, "--set", "train.epochs=2", "--quiet", check=0)
    assert load_checkpoint(run / "checkpoints" / "last")[2]["epoch"] == 2


def test_an_edited_config_is_still_refused(tmp_path):
    (tmp_path / "c.yaml").write_text(digits_config(epochs=1))
    run = tmp_path / "run"
    tk(tmp_path, "train", "c.yaml", "--run-dir", run, "--quiet", check=0)
    _as_if_trained_before_the_key(run)
    text = (run / "config.yaml").read_text()
    assert "out_features: 32" in text
    (run / "config.yaml").write_text(text.replace("out_features: 32", "out_features: 33"))
    r = tk(tmp_path, "eval", run, check=2)
    assert "Traceback" not in r.stdout + r.stderr
