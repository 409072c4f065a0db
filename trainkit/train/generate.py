"""``trainkit generate``: sample text from a language-model run's checkpoint.

The run's ``config.yaml`` rebuilds the model (no data are read: the input
shape is ``(block_size,)``), its ``vocab.json`` maps text to token ids and back,
and a checkpoint gives the weights. Then, token after token, the model's logits
at the last position are divided by the temperature, cut to the ``top_k`` most
likely tokens, turned into probabilities, and one token is drawn, as nanoGPT's
``sample.py`` does:

* a model with recurrent layers (RNN, LSTM, GRU) reads the prompt once and
  then one token at a time, carrying its hidden state (char-rnn's sampling);
* any other model (a GPT) reads the last ``block_size`` tokens each time.

Draws come from a generator seeded by ``seed``, so a seed gives the same text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..autograd.function import no_grad
from ..autograd.tensor import Tensor
from ..data.text import VOCAB_FILE, Vocabulary
from ..data.text.vocab import EOS
from ..errors import RunDirError, TrainkitError
from .carry import StateHolder, carry_hidden, recurrent_modules
from .checkpoint import check_state_fits, find_checkpoint, load_model_weights
from .run import Run

__all__ = ["Sampler", "generate_text", "sample_next"]


def sample_next(logits: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
                top_k: int | None = None) -> int:
    """One token id drawn from ``logits`` (1-D): temperature, top-k cut, softmax, draw; temperature 0 is argmax."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is not None and top_k < len(logits):
        kth = np.partition(logits, len(logits) - top_k)[len(logits) - top_k]
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


@dataclass
class Sampler:
    """A model and its vocabulary, ready to continue a prompt.

    ``block_size`` bounds the context a windowed model reads; ``stateful``
    models (with recurrent layers) read one token at a time instead.
    """

    model: object
    vocab: Vocabulary
    block_size: int

    @property
    def stateful(self) -> bool:
        """Whether the model has recurrent layers (then it carries state instead of re-reading a window)."""
        return bool(recurrent_modules(self.model))

    def _last_logits(self, ids) -> np.ndarray:
        """The model's logits at the last position of ``ids`` (a batch of one sequence, no graph)."""
        with no_grad():
            out = self.model(Tensor(np.asarray(ids, dtype=np.int64)[None, :]))
        if isinstance(out, tuple):
            out = out[0]
        return out.numpy()[0, -1]

    def continue_ids(self, prompt: np.ndarray, tokens: int, seed: int = 0, temperature: float = 1.0,
                     top_k: int | None = None) -> np.ndarray:
        """``tokens`` new token ids following ``prompt`` (ids)."""
        rng = np.random.Generator(np.random.PCG64(seed))
        ids = [int(i) for i in prompt]
        out = []
        was_training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                if self.stateful:
                    holder = StateHolder()
                    with carry_hidden(self.model, holder):
                        logits = self._last_logits(ids)
                        for _ in range(tokens):
                            nxt = sample_next(logits, rng, temperature, top_k)
                            out.append(nxt)
                            logits = self._last_logits([nxt])
                else:
                    for _ in range(tokens):
                        nxt = sample_next(self._last_logits(ids[-self.block_size:]), rng, temperature, top_k)
                        out.append(nxt)
                        ids.append(nxt)
        finally:
            self.model.train(was_training)
        return np.asarray(out, dtype=np.int64)

    def encode_prompt(self, prompt: str | None) -> np.ndarray:
        """The prompt's ids (default: a line end); TrainkitError naming tokens outside the vocabulary."""
        if not prompt:
            default = "\n" if self.vocab.level == "char" else EOS
            if default not in self.vocab:
                return np.asarray([0], dtype=np.int64)
            return np.asarray([self.vocab.stoi[default]], dtype=np.int64)
        missing = self.vocab.unknown(prompt)
        if missing:
            shown = ", ".join(repr(t) for t in missing[:20]) + (f" and {len(missing) - 20} more"
                                                               if len(missing) > 20 else "")
            what = "characters" if self.vocab.level == "char" else "words"
            raise TrainkitError(f"--prompt: {what} not in the run's vocabulary: {shown} (the vocabulary has "
                                f"{len(self.vocab)} {what})")
        return self.vocab.encode(prompt, final_eos=False)


def load_sampler(run_dir, checkpoint: str = "best", trust_code: bool = False) -> Sampler:
    """The model of a language-model run with the weights of ``checkpoint`` (best, last or a path).

    The run's custom layers are imported only if they are the files it trained with (or ``trust_code``).
    """
    from ..assemble.prepare import prepare_model
    from .session import _check_run_code

    run = Run.open(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.path}: no config.yaml; not a complete trainkit run directory")
    _check_run_code(run, trust_code)  # before the config imports any custom layer
    vocab_path = run.path / VOCAB_FILE
    if not vocab_path.exists():
        raise RunDirError(f"{run.path}: no {VOCAB_FILE}; trainkit generate samples from language-model runs "
                          "(data sets tinyshakespeare and text)")
    vocab = Vocabulary.read(vocab_path)
    config, model, shape = prepare_model(run.config_path)
    if config.resolved.task != "language_model":
        raise RunDirError(f"{run.path}: not a language-model run (its data set is {config.resolved.data.dataset})")
    if checkpoint in ("best", "last"):
        path = find_checkpoint(run.checkpoints / checkpoint)
    else:
        path = Path(checkpoint)
        if not path.exists():
            raise TrainkitError(f"{path}: no such checkpoint (use best, last, or a checkpoint folder or "
                                ".safetensors file)")
    weights = load_model_weights(path)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    check_state_fits(weights, expected, source=str(path / "model.safetensors" if path.is_dir() else path))
    model.load_state_dict({k: weights[k] for k in expected})
    return Sampler(model, vocab, int(shape[0]))


def generate_text(run_dir, checkpoint: str = "best", prompt: str | None = None, tokens: int = 500,
                  temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                  trust_code: bool = False) -> str:
    """The prompt followed by ``tokens`` sampled tokens, as text (see the module docstring)."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise TrainkitError(f"--temperature must be a finite number >= 0 (0: always the most likely token), "
                            f"not {temperature}")
    if top_k is not None and top_k < 1:
        raise TrainkitError(f"--top-k must be at least 1, not {top_k}")
    if tokens < 0:
        raise TrainkitError(f"--tokens must be 0 or more, not {tokens}")
    if seed < 0:
        raise TrainkitError(f"--seed must be 0 or more, not {seed}")
    sampler = load_sampler(run_dir, checkpoint, trust_code=trust_code)
    start = sampler.encode_prompt(prompt)
    new = sampler.continue_ids(start, tokens, seed=seed, temperature=temperature, top_k=top_k)
    return sampler.vocab.decode(np.concatenate([start, new]))
