"""Golden tests of the config loader's error text, one per kind of mistake.

Each test writes a small config into a temporary folder (the working directory,
so messages name ``c.yaml``) and compares the whole message.
"""
from __future__ import annotations

import os

import pytest
import yaml

from trainkit.config.schema import TRAIN
from trainkit.config import ConfigError, load_config
from trainkit.config.yamlsafe import MAX_ALIAS_NODES, MAX_FILE_BYTES
from trainkit.registry import DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS


def known(registry) -> str:
    """The known-names tail of a message: every declared name, in declaration order (new ones included)."""
    return ", ".join(registry)

MIN = ("data: {dataset: iris}\n"
       "model: {layers: [{linear: {out_features: 3}}]}\n"
       "optimizer: {type: sgd, lr: 0.1}\n")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def error(text: str | bytes, overrides=(), name: str = "c.yaml") -> str:
    """Write ``text`` to ``name``, load it, and return the ConfigError's message."""
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(name, mode) as f:
        f.write(text)
    with pytest.raises(ConfigError) as info:
        load_config(name, overrides)
    return str(info.value)


def test_unknown_key_suggests_the_closest():
    assert error(MIN + "train:\n  epoch: 3\n") == (
        "c.yaml:5:3: train.epoch: unknown key 'epoch'; did you mean 'epochs'? (allowed here: "
        + ", ".join(TRAIN.fields) + ")")
    assert list(TRAIN.fields)[:6] == ["epochs", "early_stopping", "grad_clip", "eval_every", "checkpoint_every",
                                      "log_every"]


def test_unknown_top_level_key():
    assert error(MIN + "optimiser: {}\n") == (
        "c.yaml:4:1: optimiser: unknown key 'optimiser'; did you mean 'optimizer'? (allowed here: "
        "name, seed, data, model, loss, optimizer, scheduler, train, sweep)")


def test_wrong_type():
    assert error(MIN.replace("lr: 0.1", "lr: fast")) == (
        "c.yaml:3:24: optimizer.lr: expected a number > 0, found string 'fast'")
    assert error(MIN + "train: {epochs: 2.5}\n") == (
        "c.yaml:4:9: train.epochs: expected an integer >= 1, found 2.5")
    assert error(MIN.replace("iris}", "iris, shuffle: 'yes'}")) == (
        "c.yaml:1:23: data.shuffle: expected true or false, found string 'yes'")


@pytest.mark.parametrize("edit, message", [
    (("lr: 0.1", "lr: 0"), "c.yaml:3:24: optimizer.lr: must be > 0, found 0"),
    (("lr: 0.1", "lr: .nan"), "c.yaml:3:24: optimizer.lr: expected a finite number, found nan"),
    (("lr: 0.1", "lr: 0.1, momentum: 1"), "c.yaml:3:33: optimizer.momentum: must be in [0, 1), found 1"),
    (("iris}", "iris, batch_size: 0}"), "c.yaml:1:23: data.batch_size: must be >= 1, found 0"),
    (("iris}", "iris, val_split: 1}"), "c.yaml:1:23: data.val_split: must be in [0, 1), found 1"),
    (("type: sgd", "type: adam, betas: [0.9, 1.5]"),
     "c.yaml:3:38: optimizer.betas.1: must be in [0, 1), found 1.5"),
    (("type: sgd", "type: adam, betas: [0.9]"),
     "c.yaml:3:25: optimizer.betas: expected a list of 2 items, found 1"),
    (("lr: 0.1", "lr: 0.1, weight_decay: -1"),
     "c.yaml:3:33: optimizer.weight_decay: must be >= 0, found -1"),
])
def test_out_of_range(edit, message):
    assert error(MIN.replace(*edit)) == message


def test_unknown_names_list_the_known_ones():
    assert error(MIN.replace("iris", "cifar")) == (
        "c.yaml:1:8: data.dataset: unknown dataset 'cifar'; did you mean 'cifar10'? (known: "
        f"{known(DATASETS)})")
    assert known(DATASETS).startswith("cifar10, cifar100, mnist, fashion_mnist, digits, iris, diabetes, linear, "
                                      "csv, npz")
    assert error(MIN.replace("sgd", "Adam")) == (
        "c.yaml:3:13: optimizer.type: unknown optimizer 'Adam'; did you mean 'adam'? "
        f"(known: {known(OPTIMIZERS)})")
    assert known(OPTIMIZERS).startswith("sgd, adam, adamw, rmsprop")
    assert error(MIN + "loss: crossentropy\n") == (
        "c.yaml:4:1: loss.type: unknown loss 'crossentropy'; did you mean 'cross_entropy'? "
        f"(known: {known(LOSSES)})")
    assert known(LOSSES).startswith("cross_entropy, nll, mse, l1, bce_with_logits")
    assert error(MIN + "scheduler: {type: cosin}\n") == (
        "c.yaml:4:13: scheduler.type: unknown scheduler 'cosin'; did you mean 'cosine'? (known: "
        f"{known(SCHEDULERS)})")
    assert known(SCHEDULERS).startswith("step, multistep, exponential, cosine, linear, onecycle, plateau, sequential")
    assert error(MIN.replace("iris}", "digits, transforms: [random_flip]}")) == (
        "c.yaml:1:38: data.transforms.0: unknown transform 'random_flip'; did you mean "
        f"'random_horizontal_flip'? (known: {known(TRANSFORMS)})")
    assert known(TRANSFORMS).startswith("normalize, random_crop, random_horizontal_flip")


def test_dataset_specific_keys():
    from trainkit.data.schema import takers

    assert error(MIN.replace("iris}", "iris, root: /data}")) == (
        "c.yaml:1:23: data.root: key 'root' does not apply to dataset 'iris' "
        f"(it is for {', '.join(takers('root'))})")
    assert ", ".join(takers("root")).startswith("cifar10, cifar100, mnist, fashion_mnist")
    assert error(MIN.replace("{dataset: iris}", "{dataset: csv, target: y}")) == (
        "c.yaml:1:1: data: missing required key 'path' (a string)")


def test_duplicate_key_names_both_lines():
    assert error(MIN + "seed: 1\nseed: 2\n") == (
        "c.yaml:5:1: seed: duplicate key 'seed' (first defined at line 4, again at line 5)")


def test_syntax_error_has_line_and_column():
    assert error(MIN + "train: {epochs: 3\n") == (
        "c.yaml:5:1: YAML syntax error: while parsing a flow mapping, expected ',' or '}', "
        "but got '<stream end>'")
    assert error("data:\n  dataset: iris\n bad: 1\n").startswith("c.yaml:3:2: YAML syntax error: ")


def test_python_tag_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = MIN + f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    assert error(text) == (
        "c.yaml:4:7: name: YAML tag '!!python/object/apply:os.system' is not allowed (a config "
        "holds only mappings, lists, strings, numbers, booleans and null)")
    assert not marker.exists()


def test_other_tags_and_dates():
    assert error(MIN + "name: 2024-01-01\n") == (
        "c.yaml:4:7: name: YAML tag '!!timestamp' is not allowed (a config holds only mappings, "
        "lists, strings, numbers, booleans and null); quote the value to keep it as a string")
    assert "YAML tag '!custom'" in error(MIN + "name: !custom x\n")


def test_alias_bomb_is_refused_quickly():
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):  # 10**9 strings once expanded
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    assert error(MIN + "\n".join(levels) + "\n") == (
        f"c.yaml:7:1: d: YAML aliases expand to more than {MAX_ALIAS_NODES} nodes (an alias "
        "bomb?); write the values out instead")


def test_recursive_alias_and_deep_nesting():
    assert error(MIN + "name: &a [*a]\n") == (
        "c.yaml:4:7: name.0: recursive alias (an anchor used inside itself)")
    deep = error(MIN + "name: " + "[" * 200000 + "]" * 200000 + "\n")
    assert "YAML nested too deeply (limit 64 levels)" in deep
    if yaml.__with_libyaml__:  # the fast pre-scan places it: at the 64th bracket, or where a newer
        # libyaml's own scanner limit (1000 levels, PyYAML >= 6.0.4) stopped reading ahead
        assert deep in ("c.yaml:4:70: YAML nested too deeply (limit 64 levels)",
                        "c.yaml:4:1006: YAML nested too deeply (limit 64 levels)")


def test_too_many_values():
    many = error(MIN + "name: [" + "1, " * 60000 + "1]\n")
    assert "more than 50000 values; a config describes a run, it does not hold data" in many
    if yaml.__with_libyaml__:
        assert many.startswith("c.yaml:4:149942: more than 50000 values")


def test_problem_lists_are_capped():
    lines = error(MIN + "train:\n" + "".join(f"  k{i}: 1\n" for i in range(80))).splitlines()
    assert len(lines) == 51 and lines[-1] == "c.yaml: ... and 30 more problems"


def test_too_large_file_is_refused_before_reading(tmp_path):
    with open("c.yaml", "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: nothing to read, only the size to see
    with pytest.raises(ConfigError) as info:
        load_config("c.yaml")
    assert str(info.value) == (f"c.yaml: file is {50 * 1024 * 1024} bytes; configs are limited "
                               f"to {MAX_FILE_BYTES} bytes (1 MiB)")


def test_non_utf8_is_refused_at_the_byte():
    assert error(MIN.encode() + b"name: caf\xe9\n") == (
        "c.yaml:4:10: not valid UTF-8 (byte 0xe9 at offset 110); save the config as UTF-8")


def test_undecodable_override_bytes():
    # Python hands undecodable argv bytes over as lone surrogates.
    assert error(MIN, ["name=ab\udcff"]) == (
        "--set name=ab\\udcff: name: not valid UTF-8 (an undecodable byte); write the config as UTF-8")


def test_missing_file_directory_and_empty(tmp_path):
    with pytest.raises(ConfigError, match=r"^nope.yaml: config file not found$"):
        load_config("nope.yaml")
    (tmp_path / "d.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"d.yaml: is a directory"):
        load_config("d.yaml")
    os.mkfifo("fifo.yaml")  # opening it would block until a writer came
    with pytest.raises(ConfigError, match=r"^fifo.yaml: is not a regular file$"):
        load_config("fifo.yaml")
    assert error("# nothing\n") == ("c.yaml: the config is empty; expected a mapping with "
                                    "data, model, optimizer, ...")
    assert error("- a\n") == "c.yaml:1:1: a config must be a mapping of keys (data, model, optimizer, ...)"


def test_bad_overrides_are_located_at_the_set():
    msg = error(MIN + "loss: cross_entropy\n", ["train.epoch=3", "optimizer.lr=-1", "optimizer",
                      "model.layers.5.linear.out_features=2", "loss.x=1", "seed=[1,"])
    assert msg.splitlines() == [
        "--set train.epoch=3: train.epoch: unknown key 'epoch'; did you mean 'epochs'? (allowed "
        "here: " + ", ".join(TRAIN.fields) + ")",
        "--set optimizer.lr=-1: optimizer.lr: must be > 0, found -1",
        "--set optimizer: expected KEY.PATH=VALUE, e.g. --set optimizer.lr=0.01",
        "--set model.layers.5.linear.out_features=2: model.layers.5: index 5 is out of range: "
        "'model.layers' has 1 item(s)",
        "--set loss.x=1: loss: 'loss' holds string 'cross_entropy', not a mapping, so it has no "
        "key 'x'; set the whole value instead (--set loss=...)",
        "--set seed=[1,: seed: YAML syntax error: while parsing a flow node, expected the node "
        "content, but found '<stream end>'",
    ]


def test_base_cycle(tmp_path):
    (tmp_path / "b.yaml").write_text("base: c.yaml\nseed: 3\n")
    assert error("base: b.yaml\n" + MIN) == (
        "b.yaml:1:1: base: 'c.yaml' closes a cycle of base configs (c.yaml -> b.yaml -> c.yaml)")
    assert error("base: missing.yaml\n" + MIN) == (
        f"c.yaml:1:1: base: base config 'missing.yaml' not found (looked for {tmp_path / 'missing.yaml'})")


def test_problems_in_a_base_file_point_into_it(tmp_path):
    (tmp_path / "b.yaml").write_text("train:\n  epochs: 0\n")
    assert error("base: b.yaml\n" + MIN) == "b.yaml:2:3: train.epochs: must be >= 1, found 0"


def test_all_problems_reported_at_once():
    text = ("data: {dataset: iris, batch_size: 0}\n"
            "model: {layers: [relu]}\n"
            "optimizer: {type: sgd, lr: -1}\n"
            "train: {epochs: 0, epoch: 1}\n")
    assert error(text).splitlines() == [
        "c.yaml:1:23: data.batch_size: must be >= 1, found 0",
        "c.yaml:3:24: optimizer.lr: must be > 0, found -1",
        "c.yaml:4:9: train.epochs: must be >= 1, found 0",
        "c.yaml:4:20: train.epoch: unknown key 'epoch'; did you mean 'epochs'? (allowed here: "
        + ", ".join(TRAIN.fields) + ")",
    ]


GRAPH = ("data: {dataset: iris}\noptimizer: {type: sgd}\nmodel:\n  graph:\n%s  output: %s\n")


@pytest.mark.parametrize("nodes, output, message", [
    ("    - {name: a, type: linear, inputs: b}\n    - {name: b, type: relu, inputs: a}\n", "b",
     "c.yaml:5:31: model.graph.0.inputs: cycle in the graph: a -> b -> a"),
    ("    - {name: a, type: linear}\n    - {name: b, type: relu, inputs: aa}\n", "b",
     "c.yaml:6:29: model.graph.1.inputs: unknown input 'aa'; did you mean 'a'? (known: input, a, b)"),
    ("    - {name: a, type: linear}\n    - {name: a, type: relu}\n", "a",
     "c.yaml:6:8: model.graph.1.name: duplicate node name 'a' (first used by node 0)"),
    ("    - {name: a, type: linear}\n    - {name: b, type: relu, inputs: input}\n", "b",
     "c.yaml:5:8: model.graph.0.name: node 'a' is never used (it is not an input of any node "
     "nor the output 'b')"),
    ("    - {name: a, type: linear}\n", "z",
     "c.yaml:6:3: model.output: output must name a node (nodes: a), found string 'z'"),
    ("    - {name: a.b, type: linear}\n", "a",
     "c.yaml:5:8: model.graph.0.name: expected a node name of letters, digits and '_' (not "
     "starting with a digit, not 'input'), found string 'a.b'"),
])
def test_graph_structure(nodes, output, message):
    assert error(GRAPH % (nodes, output)) == message


def test_model_forms():
    base = "data: {dataset: iris}\noptimizer: {type: sgd}\n"
    assert error(base + "model: {layers: [relu], graph: []}\n") == (
        "c.yaml:3:1: model: give exactly one of 'layers' (a sequential list) or 'graph' "
        "(named nodes); found both")
    assert error(base + "model: {layers: [{type: relu}]}\n") == (
        "c.yaml:3:18: model.layers.0: write a layer as 'name: {args}' (e.g. '- linear: "
        "{out_features: 10}'); 'type:' items belong to the graph form")
    assert error(base + "model: {layers: [{linear: 3}]}\n") == (
        "c.yaml:3:19: model.layers.0.linear: layer arguments must be a mapping like "
        "{out_features: 10}, found 3")
    assert error(base + "model: {layers: []}\n") == (
        "c.yaml:3:9: model.layers: expected a non-empty list of layers (each a name or "
        "'name: {args}'), found a list")


def test_scheduler_and_transform_checks():
    assert error(MIN + "scheduler: {type: plateau, interval: step}\n") == (
        "c.yaml:4:28: scheduler.interval: plateau watches a per-epoch metric; interval must be epoch")
    assert error(MIN + "scheduler: {type: sequential, schedulers: [{type: step, step_size: 2}, "
                       "{type: cosine}], milestones: [2, 4]}\n") == (
        "c.yaml:4:89: scheduler.milestones: expected 1 milestone(s) for 2 schedulers, found 2")
    assert error(MIN.replace("iris}", "cifar10, transforms: [{normalize: {mean: [0.5, 0.5], "
                                      "std: [0.5, 0.5]}}]}")) == (
        "c.yaml:1:52: data.transforms.0.normalize.mean: has 2 values; cifar10 images have 3 channel(s)\n"
        "c.yaml:1:70: data.transforms.0.normalize.std: has 2 values; cifar10 images have 3 channel(s)")
    assert error(MIN.replace("iris}", "iris, transforms: [random_horizontal_flip]}")) == (
        "c.yaml:1:36: data.transforms.0: transform 'random_horizontal_flip' needs image data; "
        "dataset 'iris' is not images")
