"""Fuzz the config loader: whatever the input, it loads or raises ConfigError, nothing else.

Inputs are random text and bytes, random YAML documents built from the schema's
own words, and random mutations (text edits, replaced values, deleted and added
keys, random ``--set`` overrides) of the sample configs in ``tests/configs``.
Whenever a config loads, its resolved YAML must load back to the same values.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from trainkit.config import ConfigError, load_config, loads_config  # noqa: E402
from trainkit.config.schema import TOP_LEVEL, TRAIN  # noqa: E402
from trainkit.data.schema import COMMON as DATA_COMMON  # noqa: E402
from trainkit.data.schema import specific_keys  # noqa: E402
from trainkit.registry import DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS  # noqa: E402

DATA_SPECIFIC = specific_keys()

# The test samples and, where present, the configs shipped in the repository's configs/.
_ROOT = Path(__file__).parent
SAMPLES = {str(p.relative_to(_ROOT.parent)): p.read_text()
           for folder in (_ROOT / "configs", _ROOT.parent / "configs")
           for p in sorted(folder.glob("*.yaml"))}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

WORDS = sorted(set(TOP_LEVEL) | set(DATA_COMMON) | set(DATA_SPECIFIC) | set(DATASETS)
               | set(LOSSES) | set(OPTIMIZERS) | set(SCHEDULERS) | set(TRANSFORMS)
               | set(TRAIN.fields) | {"type", "lr", "layers", "graph", "output", "name", "inputs",
                                      "linear", "relu", "conv2d", "input", "base", "milestones",
                                      "schedulers", "interval", "epoch", "step", "<<"})
scalars = (st.none() | st.booleans() | st.integers(-3, 2**40) | st.floats(allow_nan=True)
           | st.sampled_from(WORDS) | st.text(max_size=8))
keys = st.sampled_from(WORDS) | st.text(min_size=1, max_size=6)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


def check(text: str, overrides=()) -> None:
    """Load ``text``; a ConfigError is fine, anything else fails the test."""
    try:
        config = loads_config(text, "fuzz.yaml", overrides=overrides)
    except ConfigError as e:
        assert e.problems and all(str(p) for p in e.problems)
        return
    again = loads_config(config.to_yaml(), "again.yaml", name=config.name)
    # Compared as text and hash: a NaN in (unchecked) layer arguments is never == itself.
    assert again.to_yaml() == config.to_yaml()
    assert again.hash() == config.hash()


@FAST
@given(st.text(st.characters(exclude_categories=()), max_size=200))  # surrogates included
def test_random_text(text):
    check(text)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_file(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError:
        pass


@FAST
@given(st.dictionaries(st.sampled_from(TOP_LEVEL) | keys, values, max_size=8))
def test_random_documents_from_schema_words(doc):
    check(yaml.safe_dump(doc))


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, path + (i,))


def _parent_and_key(doc, path):
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    return cur, path[-1]


@FAST
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_sample_values(name, data):
    doc = yaml.safe_load(SAMPLES[name])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = data.draw(st.sampled_from(paths))
        parent, key = _parent_and_key(doc, path)
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[key] = data.draw(values)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[data.draw(keys)] = data.draw(values)
        else:
            parent.insert(key, data.draw(values))
    check(yaml.safe_dump(doc))


@FAST
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_mutated_sample_text(name, data):
    text = SAMPLES[name]
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 10)))
        text = text[:i] + data.draw(st.sampled_from(["", ":", "-", " ", "\n", "[", "{", "&a", "*a",
                                                      "!!python/name:os.system", "\t", "0", "'"])) + text[j:]
    check(text)


@FAST
@given(st.sampled_from(sorted(SAMPLES)),
       st.lists(st.builds(lambda k, v: f"{k}={v}",
                          st.lists(keys | st.integers(0, 3).map(str), min_size=1, max_size=4)
                          .map(".".join),
                          st.text(max_size=10) | st.sampled_from(["1", "-1", "[1, 2]", "{a: 1}", "null"])),
                max_size=3))
def test_random_overrides(name, overrides):
    check(SAMPLES[name], overrides)
