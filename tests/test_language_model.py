"""Language models end to end: training with carried state, exact resume, the metrics and report, generate.

Runs on a small generated text (a few thousand characters of play-like lines)
with tiny models, through the library and through the CLI in subprocesses.
"""
from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import trainkit
from trainkit.assemble.prepare import prepare
from trainkit.autograd.function import no_grad
from trainkit.train.carry import StateHolder, carry_hidden
from trainkit.train.generate import load_sampler

from clitools import env_for, rows_without_timing, tk, weights


def play(n_parts: int = 120, seed: int = 0) -> str:
    """Play-like text: speaker names with colons, short lines, blank lines between speeches."""
    rng = random.Random(seed)
    words = "the king queen lord lady speak now hear me good night sweet prince my friend come away".split()
    lines = []
    for _ in range(n_parts):
        lines.append(rng.choice(["ROMEO", "JULIET", "KING", "FRIAR"]) + ":")
        for _ in range(rng.randint(1, 3)):
            lines.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))).capitalize() + ".")
        lines.append("")
    return "\n".join(lines)


def vocab_size(text: str) -> int:
    return len(set(text))


def lstm_config(tmp: Path, *, epochs: int = 2, batching: str = "stream", extra_data: str = "", level: str = "char",
                dropout: float = 0.0, text: str | None = None) -> Path:
    text = text if text is not None else play()
    (tmp / "play.txt").write_text(text)
    v = vocab_size(text) if level == "char" else len({w for ln in text.split("\n") for w in ln.split()}) + 1
    path = tmp / "lm.yaml"
    path.write_text(f"""\
name: tiny_lm
seed: 4
data: {{dataset: text, path: {tmp / "play.txt"}, level: {level}, block_size: 12, batch_size: 4, batching: {batching},
        eval_batch_size: 3{extra_data}}}
model:
  layers:
    - embedding: {{num_embeddings: {v}, embedding_dim: 8}}
    - dropout: {{p: {dropout}}}
    - lstm: {{hidden_size: 12, num_layers: 2, dropout: {dropout}}}
    - linear: {{out_features: {v}}}
optimizer: {{type: sgd, lr: 0.5, momentum: 0.5}}
train: {{epochs: {epochs}, grad_clip: 0.5}}
""")
    return path


# ----------------------------------------------------------------------------- carried state
def test_stream_training_carries_the_hidden_state_as_word_language_model_does(tmp_path):
    """The trainer's weights equal a hand-written word_language_model loop's (same engine, same order)."""
    from trainkit.train.session import train

    cfg = lstm_config(tmp_path, epochs=2)
    assert train(cfg, runs_dir=tmp_path / "runs", quiet=True, command=["test"]) == 0
    got = weights(next((tmp_path / "runs").iterdir()), "last")

    prep = prepare(cfg)  # the same seed: the same initial weights
    model, opt, loss_fn = prep.model, prep.optimizer, prep.loss_fn
    emb, lstm, head = (model.get_submodule(n) for n in ("0", "2", "3"))
    params = [p for p in model.parameters()]
    for _ in range(2):
        hidden = None  # init_hidden at every epoch
        for x, y in prep.bundle.train_loader():
            out, hidden = lstm(emb(x), hidden)
            hidden = tuple(h.detach() for h in hidden)  # repackage_hidden
            loss = loss_fn(head(out), y)
            opt.zero_grad()
            loss.backward()
            trainkit.nn.utils.clip_grad_norm_(params, 0.5)
            opt.step()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)


def test_evaluation_of_a_stream_carries_state_from_zeros_every_pass(tmp_path):
    from trainkit.train.evaluate import evaluate

    prep = prepare(lstm_config(tmp_path))
    loader = prep.bundle.eval_loader("val")
    first = evaluate(prep.model, loader, prep.loss_fn, "language_model", None).loss
    again = evaluate(prep.model, loader, prep.loss_fn, "language_model", None).loss
    assert first == again  # a second pass does not start from the first's final state
    emb, lstm, head = (prep.model.get_submodule(n) for n in ("0", "2", "3"))
    total, n, hidden = 0.0, 0, None
    with no_grad():
        for x, y in loader:
            out, hidden = lstm(emb(x), hidden)
            total += prep.loss_fn(head(out), y).item() * y.numel()
            n += y.numel()
    assert math.isclose(first, total / n, rel_tol=1e-12)
    # without the carried state the loss differs: the state matters
    holder_free = [prep.loss_fn(prep.model(x), y).item() * y.numel() for x, y in loader]
    assert not math.isclose(sum(holder_free) / n, first, rel_tol=1e-6)


# ----------------------------------------------------------------------------- exact resume through the CLI
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Uninterrupted baselines: stream (LSTM, dropout) and random windows."""
    out = {}
    for batching in ("stream", "random"):
        tmp = tmp_path_factory.mktemp(batching)
        extra = ", steps_per_epoch: 40" if batching == "random" else ""
        cfg = lstm_config(tmp, epochs=3, batching=batching, extra_data=extra, dropout=0.1)
        tk(tmp, "train", cfg, "--run-dir", tmp / "base", "--quiet", check=0)
        out[batching] = (tmp, cfg, tmp / "base")
    return out


def _start(tmp: Path, cfg: Path, run: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainkit", "train", str(cfg), "--run-dir", str(run), "--quiet"],
                            env=env_for(tmp), cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(run: Path, n: int, p: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        path = run / "metrics.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.01)


def _same(run: Path, base: Path) -> None:
    assert rows_without_timing(run) == rows_without_timing(base)
    for which in ("last", "best"):
        a, b = weights(run, which), weights(base, which)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{which}/{k}")
    assert json.loads((run / "report.json").read_text())["val"] == json.loads((base / "report.json").read_text())["val"]


@pytest.mark.parametrize("batching", ["stream", "random"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(runs, batching, tmp_path):
    tmp, cfg, base = runs[batching]
    run = tmp_path / "killed"
    p = _start(tmp, cfg, run)
    _wait_for_epochs(run, 1, p)
    time.sleep(0.15)  # into epoch 2
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    r = tk(tmp, "train", "--resume", run, "--quiet")
    assert r.returncode == 0 or "already completed" in r.stderr, r.stderr
    _same(run, base)


def test_ctrl_c_mid_epoch_saves_the_carried_state_and_resume_equals_an_uninterrupted_run(runs, tmp_path):
    tmp, cfg, base = runs["stream"]
    run = tmp_path / "interrupted"
    p = _start(tmp, cfg, run)
    _wait_for_epochs(run, 1, p)
    time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    state = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    if state["in_epoch"] is not None:  # stopped mid-epoch: the stream's position and state are saved
        loader = state["rng"]["train_loader"]
        assert loader["batches_done"] > 0 and set(loader["hidden"]) == {"2"}
        assert [a["shape"] for a in loader["hidden"]["2"]["arrays"]] == [[2, 4, 12], [2, 4, 12]]
    tk(tmp, "train", "--resume", run, "--quiet", check=0)
    _same(run, base)


# ----------------------------------------------------------------------------- metrics, report, table
def test_report_console_and_metrics_of_a_character_model(runs):
    tmp, cfg, base = runs["stream"]
    report = json.loads((base / "report.json").read_text())
    assert report["task"] == "language_model" and report["split"] == "val"
    val = report["val"]
    assert math.isclose(val["ppl"], math.exp(val["loss"]), rel_tol=1e-12)
    assert math.isclose(val["bpc"], val["loss"] / math.log(2), rel_tol=1e-12)
    rows = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    assert {"train_loss", "train_ppl", "train_bpc", "val_loss", "val_ppl", "val_bpc"} <= set(rows[0])
    best = min(rows, key=lambda r: r["val_loss"])
    assert json.loads((base / "run.json").read_text())["best_metric"]["epoch"] == best["epoch"]
    log = (base / "train.log").read_text()
    assert "train ppl" in log and "val bpc" in log and "val perplexity" in log
    assert json.loads((base / "vocab.json").read_text())["tokens"] == sorted(set(play()))


def test_word_level_model_shows_perplexity_only(tmp_path):
    from trainkit.train.session import train

    cfg = lstm_config(tmp_path, epochs=1, level="word")
    assert train(cfg, runs_dir=tmp_path / "runs", quiet=True, command=["test"]) == 0
    run = next((tmp_path / "runs").iterdir())
    header = next(line for line in (run / "train.log").read_text().splitlines() if line.startswith("epoch"))
    assert "ppl" in header and "bpc" not in header
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert row["val_bpc"] is None and row["val_ppl"] > 1
    assert json.loads((run / "report.json").read_text())["val"]["bpc"] is None


@pytest.mark.parametrize("model,where,words", [
    ("[{embedding: {num_embeddings: 5, embedding_dim: 4}}, {linear: {out_features: VOCAB}}]",
     "model.layers.0.embedding.num_embeddings", "set num_embeddings: VOCAB"),
    ("[{embedding: {num_embeddings: VOCAB, embedding_dim: 4}}, {linear: {out_features: 7}}]",
     "model.layers.1.linear.out_features", "should output VOCAB"),
    ("[{embedding: {num_embeddings: VOCAB, embedding_dim: 4}}, flatten, {linear: {out_features: VOCAB}}]",
     "model.layers.2.linear", "outputs (time, vocabulary) = 12xVOCAB"),
])
def test_a_model_that_does_not_fit_the_vocabulary_is_refused_at_its_key(tmp_path, model, where, words):
    (tmp_path / "play.txt").write_text(play())
    v = str(vocab_size(play()))
    (tmp_path / "c.yaml").write_text(f"data: {{dataset: text, path: play.txt, block_size: 12}}\n"
                                     f"model: {{layers: {model.replace('VOCAB', v)}}}\n"
                                     "optimizer: {type: sgd, lr: 0.1}\n")
    r = tk(tmp_path, "train", "c.yaml", check=2)
    assert where in r.stderr and words.replace("VOCAB", v) in r.stderr, r.stderr
    r = tk(tmp_path, "train", "c.yaml", "--set", "loss=mse", check=2)
    assert "a language model predicts token ids" in r.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("content,words", [
    (b"PK\x03\x04\x00\x00binary", "byte offset 4: a NUL byte"),
    ("ROMEO:\nhello\n".encode() + b"\xc3\x28 bad", "byte offset 13: invalid UTF-8"),
    (b"", "the file is empty"),
])
def test_bad_text_files_exit_2_through_the_cli(tmp_path, content, words):
    (tmp_path / "play.txt").write_bytes(content)
    (tmp_path / "c.yaml").write_text("data: {dataset: text, path: play.txt, block_size: 4}\n"
                                     "model: {layers: [{embedding: {num_embeddings: 9, embedding_dim: 4}}, "
                                     "{linear: {out_features: 9}}]}\noptimizer: {type: sgd, lr: 0.1}\n")
    r = tk(tmp_path, "train", "c.yaml", check=2)
    assert "play.txt" in r.stderr and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_vocabulary_over_the_limit_exits_2_naming_file_and_offset(tmp_path):
    (tmp_path / "play.txt").write_text("aab\nbcd")
    (tmp_path / "c.yaml").write_text("data: {dataset: text, path: play.txt, block_size: 1, max_vocab: 3}\n"
                                     "model: {layers: [{embedding: {num_embeddings: 9, embedding_dim: 4}}, "
                                     "{linear: {out_features: 9}}]}\noptimizer: {type: sgd, lr: 0.1}\n")
    r = tk(tmp_path, "train", "c.yaml", check=2)
    assert "play.txt: byte offset 5: character 'c'" in r.stderr and "limit of 3" in r.stderr, r.stderr


def test_resume_refuses_data_whose_vocabulary_changed(runs, tmp_path):
    import shutil

    tmp, cfg, base = runs["stream"]
    run = tmp_path / "copy"
    shutil.copytree(base, run)
    (run / "vocab.json").write_text(json.dumps({"format": "trainkit-vocab/1", "level": "char", "tokens": ["a", "b"]}))
    r = tk(tmp, "train", "--resume", run, "--set", "train.epochs=4")
    assert r.returncode == 2 and "vocab.json" in r.stderr and "changed" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- generate
def test_generate_is_deterministic_for_a_seed_and_continues_the_prompt(runs):
    tmp, _, base = runs["stream"]
    a = tk(tmp, "generate", base, "--prompt", "ROMEO:", "--tokens", "80", "--seed", "5", check=0).stdout
    b = tk(tmp, "generate", base, "--prompt", "ROMEO:", "--tokens", "80", "--seed", "5", check=0).stdout
    c = tk(tmp, "generate", base, "--prompt", "ROMEO:", "--tokens", "80", "--seed", "6", check=0).stdout
    assert a == b and a != c
    assert a.startswith("ROMEO:") and len(a) == len("ROMEO:") + 80 + 1  # and echo's line end
    greedy = tk(tmp, "generate", base, "--tokens", "30", "--temperature", "0", check=0).stdout
    top1 = tk(tmp, "generate", base, "--tokens", "30", "--top-k", "1", "--seed", "9", check=0).stdout
    assert greedy == top1
    last = tk(tmp, "generate", base, "--checkpoint", "last", "--tokens", "10", check=0).stdout
    assert len(last) == 1 + 10 + 1 and last.startswith("\n")  # the default prompt is a line end


@pytest.mark.parametrize("args,words", [
    (["--prompt", "ROMEO é€"], "characters not in the run's vocabulary: 'é', '€'"),
    (["--temperature", "-1"], "--temperature must be"),
    (["--top-k", "0"], "--top-k must be at least 1"),
    (["--checkpoint", "nowhere"], "nowhere: no such checkpoint"),
])
def test_generate_refuses_bad_requests_with_exit_2(runs, args, words):
    tmp, _, base = runs["stream"]
    r = tk(tmp, "generate", base, *args, check=2)
    assert words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_generate_refuses_a_classification_run(tmp_path):
    from clitools import DIGITS_MLP

    (tmp_path / "c.yaml").write_text(DIGITS_MLP.replace("epochs: 3", "epochs: 1"))
    tk(tmp_path, "train", "c.yaml", "--run-dir", tmp_path / "run", "--quiet", check=0)
    r = tk(tmp_path, "generate", tmp_path / "run", check=2)
    assert "vocab.json" in r.stderr


def test_stateful_sampling_of_a_recurrent_model_equals_rereading_the_whole_text(runs):
    """One token at a time with the carried state gives the logits of the whole sequence read at once."""
    _, _, base = runs["stream"]
    sampler = load_sampler(base, "best")
    assert sampler.stateful
    ids = sampler.vocab.encode("ROMEO:\nGood night sweet", final_eos=False)
    model = sampler.model.eval()
    with no_grad():
        whole = model(trainkit.tensor(ids[None, :])).numpy()[0]
        holder = StateHolder()
        steps = []
        with carry_hidden(model, holder):
            for i in ids:
                steps.append(model(trainkit.tensor(np.array([[i]]))).numpy()[0, -1])
    np.testing.assert_allclose(np.stack(steps), whole, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the shipped configs and tools
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_gpt_config_summary_is_nanogpts_model():
    from trainkit.assemble.prepare import prepare_model
    from trainkit.views.summary import summarize

    cfg, model, shape = prepare_model(CONFIGS / "shakespeare_char_gpt.yaml")
    s = summarize(cfg, model, shape)
    assert shape == (64,) and s.output_shape == (64, 65)
    assert s.params == 818_241  # the PyTorch anchor's 0.82M: 4 blocks of 198,272, embeddings, final norm, head
    assert [r.name for r in s.rows] == ["embed", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "ln_f", "head"]
    assert s.macs_complete and s.macs > 50_000_000
    assert "blocks.3.self_attn.in_proj_weight" in model.state_dict()


def test_lstm_config_is_a_stream_model():
    from trainkit.assemble.prepare import prepare_model

    cfg, model, shape = prepare_model(CONFIGS / "shakespeare_char_lstm.yaml")
    assert cfg.resolved.data.args["batching"] == "stream"
    assert "1.weight_hh_l1" in model.state_dict() and "2.weight" in model.state_dict()


def test_gradcheck_and_graph_of_a_language_model_config(tmp_path):
    from trainkit.autograd.gradcheck import gradcheck
    from trainkit.testing.config_case import config_case
    from trainkit.views.graph import step_graph

    cfg = lstm_config(tmp_path)
    case = config_case(cfg, ["model.layers.2.lstm.hidden_size=3", "model.layers.0.embedding.embedding_dim=2"],
                       directions=2)
    inputs = case.make_inputs(np.random.default_rng(0))
    assert len(inputs) == 1 + 8 + 2  # embedding, two LSTM layers of 4, head: the token ids are not checked
    assert gradcheck(case.fn, inputs)
    dot = step_graph(cfg).source
    assert "EmbeddingBackward" in dot or "Embedding" in dot


def test_generate_from_a_gpt_style_model_crops_its_context(tmp_path):
    text = play()
    (tmp_path / "play.txt").write_text(text)
    v = vocab_size(text)
    (tmp_path / "gpt.yaml").write_text(f"""\
name: tiny_gpt
data: {{dataset: text, path: play.txt, block_size: 8, batch_size: 4, steps_per_epoch: 10}}
model:
  graph:
    - {{name: embed, type: token_position_embedding, num_embeddings: {v}, embedding_dim: 8, max_len: 8}}
    - {{name: blocks, repeat: 2, type: transformer_encoder_layer, nhead: 2, dim_feedforward: 16, dropout: 0.0,
        norm_first: true, causal: true}}
    - {{name: head, type: linear, out_features: {v}}}
optimizer: {{type: adamw, lr: 0.01}}
train: {{epochs: 1}}
""")
    tk(tmp_path, "train", "gpt.yaml", "--run-dir", tmp_path / "run", "--quiet", check=0)
    sampler = load_sampler(tmp_path / "run")
    assert not sampler.stateful and sampler.block_size == 8
    long_prompt = "ROMEO:\nGood night sweet prince my lord.\n"  # longer than the context: cropped
    a = tk(tmp_path, "generate", tmp_path / "run", "--prompt", long_prompt, "--tokens", "40", "--seed", "2",
           check=0).stdout
    b = tk(tmp_path, "generate", tmp_path / "run", "--prompt", long_prompt, "--tokens", "40", "--seed", "2",
           check=0).stdout
    assert a == b and a.startswith(long_prompt) and len(a) == len(long_prompt) + 40 + 1
    # the sampler reads the last block_size tokens: its next-token logits are the model's on that window
    ids = sampler.vocab.encode(long_prompt, final_eos=False)
    with no_grad():
        window = sampler.model.eval()(trainkit.tensor(ids[None, -8:])).numpy()[0, -1]
    np.testing.assert_allclose(sampler._last_logits(ids[-8:]), window)


def test_plateau_and_early_stopping_watch_language_model_metrics(tmp_path):
    from trainkit.config import ConfigError
    from trainkit.train.session import train

    cfg = lstm_config(tmp_path, epochs=3, batching="random", extra_data=", steps_per_epoch: 3")
    text = cfg.read_text().replace("train: {", "scheduler: {type: plateau, metric: val_ppl, patience: 0, "
                                             "threshold: 1.0e+9, factor: 0.5}\ntrain: {")
    cfg.write_text(text)
    assert train(cfg, runs_dir=tmp_path / "runs", quiet=True, command=["test"]) == 0
    rows = [json.loads(line) for line in (next((tmp_path / "runs").iterdir()) / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == [0.5, 0.25, 0.125]  # ppl never improves by 1e9: halved every epoch
    words = lstm_config(tmp_path, epochs=2, level="word")
    words.write_text(words.read_text().replace("train: {", "train: {early_stopping: {metric: val_bpc}, "))
    with pytest.raises(ConfigError, match=r"'val_bpc' cannot be measured on these data"):
        prepare(words)
