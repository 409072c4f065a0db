"""The config loader's behaviour: defaults, positions, base inheritance, overrides, round trips."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainkit.config import (ConfigError, Problem, load_config, loads_config, model_nodes,
                             parse_override)

SAMPLES = Path(__file__).parent / "configs"
MIN = ("data: {dataset: iris}\n"
       "model: {layers: [{linear: {out_features: 3}}]}\n"
       "optimizer: {type: sgd, lr: 0.1}\n")


def test_defaults_are_filled_in():
    c = loads_config(MIN, name="tiny")
    assert c.name == "tiny"
    assert c.data["seed"] == 0
    assert c.data["data"] == {"dataset": "iris", "val_split": 0.0, "batch_size": 32,
                              "shuffle": True, "transforms": [], "drop_last": False, "limit": None, "tta": "none",
                              "test_split": 0.2}
    assert c.data["loss"] == {"type": "cross_entropy", "label_smoothing": 0.0, "reduction": "mean"}
    assert c.data["optimizer"] == {"type": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0.0,
                                   "weight_decay": 0.0, "nesterov": False}
    assert c.data["scheduler"] is None
    diagnostics = c.data["train"].pop("diagnostics")
    assert c.data["train"] == {"epochs": 10, "early_stopping": None, "grad_clip": None,
                               "eval_every": 1, "checkpoint_every": 1, "log_every": 50, "max_memory": None,
                               "sync_batchnorm": False,
                               "tensorboard": False, "tensorboard_histograms": False}
    assert diagnostics["enabled"] is True and diagnostics["every"] == 10 and diagnostics["update_ratio"] == 0.1
    assert list(c.data) == ["name", "seed", "data", "model", "loss", "optimizer", "scheduler", "train"]


def test_dataset_dependent_defaults():
    c = loads_config(MIN.replace("iris", "cifar10"))
    assert c.data["data"]["root"] is None and c.data["data"]["download"] is True
    reg = loads_config(MIN.replace("iris", "diabetes"))
    assert reg.data["loss"]["type"] == "mse"
    lin = loads_config(MIN.replace("{dataset: iris}", "{dataset: linear, n_features: 3}"))
    assert {k: lin.data["data"][k] for k in ("n_samples", "n_features", "noise")} == \
        {"n_samples": 200, "n_features": 3, "noise": 0.1}
    csv = loads_config(MIN.replace("{dataset: iris}", "{dataset: csv, path: a.csv, target: y, "
                                                     "task: regression}"))
    assert csv.data["loss"]["type"] == "mse" and csv.data["data"]["features"] is None


def test_exponent_floats_and_ints_become_floats():
    c = loads_config(MIN.replace("lr: 0.1", "lr: 1e-3, momentum: 0"))
    assert c.data["optimizer"]["lr"] == 0.001 and isinstance(c.data["optimizer"]["momentum"], float)


def test_sample_configs_resolve_and_round_trip(tmp_path):
    for path in sorted(SAMPLES.glob("*.yaml")):
        c = load_config(path)
        again_file = tmp_path / path.name
        again_file.write_text(c.to_yaml())
        again = load_config(again_file)
        assert again.data == c.data, path.name
        assert again.hash() == c.hash()
    assert load_config(SAMPLES / "lenet.yaml").name == "cifar_cnn"
    assert load_config(SAMPLES / "tabular.yaml").name == "tabular"


def test_hash_is_stable_and_tracks_values():
    a = loads_config(MIN)
    b = loads_config("optimizer: {lr: 0.1, type: sgd}\n" + MIN.replace(
        "optimizer: {type: sgd, lr: 0.1}\n", ""))
    assert a.hash() == b.hash() and len(a.hash()) == 64
    assert loads_config(MIN, overrides=["optimizer.lr=0.2"]).hash() != a.hash()


def test_scheduler_defaults():
    c = loads_config(MIN + "train: {epochs: 7}\nscheduler: {type: cosine}\n")
    assert c.data["scheduler"] == {"type": "cosine", "T_max": 7, "eta_min": 0.0, "interval": "epoch"}
    c = loads_config(MIN + "scheduler: {type: cosine, interval: step}\n")
    assert c.data["scheduler"]["T_max"] is None
    c = loads_config(MIN + "scheduler: {type: onecycle, max_lr: 0.1}\n")
    assert c.data["scheduler"]["interval"] == "step" and c.data["scheduler"]["pct_start"] == 0.3
    c = loads_config(MIN + "train: {early_stopping: {metric: val_accuracy}}\n")
    assert c.data["train"]["early_stopping"] == {"metric": "val_accuracy", "patience": 5,
                                                 "min_delta": 0.0, "mode": "max"}


def test_locate_any_key_path():
    c = load_config(SAMPLES / "lenet.yaml")
    assert c.locate(("model", "layers", 3, "conv2d", "kernel_size")) == (19, 34)
    assert c.locate(("model", "layers", 4)) == (20, 7)
    assert c.locate(("optimizer", "momentum")) == (29, 35)
    # Filled-in defaults have no position: the nearest written ancestor is used.
    assert c.locate(("optimizer", "nesterov")) == (29, 1)
    p = c.problem(("model", "layers", 3, "conv2d", "kernel_size"), "kernel 5 > input 4")
    assert p == Problem(str(SAMPLES / "lenet.yaml"), 19, 34, "model.layers.3.conv2d.kernel_size",
                        "kernel 5 > input 4")
    assert str(p).endswith("lenet.yaml:19:34: model.layers.3.conv2d.kernel_size: kernel 5 > input 4")


def test_base_inheritance_merges_deeply(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "base.yaml").write_text(MIN + "train: {epochs: 3, log_every: 7}\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: shared/base.yaml\noptimizer: {lr: 0.5}\ntrain: {epochs: 4}\n")
    c = load_config(child)
    assert c.data["optimizer"]["type"] == "sgd" and c.data["optimizer"]["lr"] == 0.5
    assert c.data["train"]["epochs"] == 4 and c.data["train"]["log_every"] == 7
    assert c.name == "child" and "base" not in c.data
    assert c.source(("optimizer", "lr"))[:2] == (str(child), 2)
    assert c.source(("optimizer", "type"))[0].endswith("base.yaml")


def test_overrides():
    c = loads_config(MIN, overrides=["optimizer.lr=1e-2", "train.epochs=3",
                                     "model.layers.0.linear.out_features=5",
                                     "scheduler={type: step, step_size: 2}", "data.transforms=[]"])
    assert c.data["optimizer"]["lr"] == 0.01 and c.data["train"]["epochs"] == 3
    assert c.data["model"]["layers"] == [{"linear": {"out_features": 5}}]
    assert c.data["scheduler"]["step_size"] == 2
    assert c.source(("train", "epochs")) == ("--set train.epochs=3", None, None)
    assert c.locate(("train", "epochs")) is None
    assert parse_override("a.b = {x: [1, 2]}") == (("a", "b"), {"x": [1, 2]})
    assert parse_override("a=") == (("a",), None)


def test_overriding_a_subtree_forgets_its_old_positions():
    text = MIN + "scheduler:\n  type: step\n  step_size: 3\n"
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.yaml", overrides=["scheduler={type: step}"])
    assert str(info.value) == ("--set scheduler={type: step}: scheduler: missing required key "
                               "'step_size' (an integer >= 1)")


def test_merge_keys_and_anchors():
    text = MIN.replace(
        "model: {layers: [{linear: {out_features: 3}}]}",
        "model:\n  layers:\n    - linear: &blk {out_features: 8}\n    - relu\n"
        "    - linear: {<<: *blk, bias: false}")
    c = loads_config(text)
    assert c.data["model"]["layers"][2] == {"linear": {"bias": False, "out_features": 8}}


def test_validate_layer_hook_reports_with_schema_problems():
    seen = []

    def hook(typ, args, path):
        seen.append((typ, args, path))
        if typ == "linear" and "out_features" not in args:
            return [(path, "linear needs out_features")]
        if typ == "conv2d":
            return ["unknown layer 'conv2d' here"]
        return []

    text = ("data: {dataset: iris, batch_size: 0}\n"
            "model:\n  layers:\n    - linear: {bias: true}\n    - relu\n    - conv2d\n"
            "optimizer: {type: sgd}\n")
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.yaml", validate_layer=hook)
    assert str(info.value).splitlines() == [
        "c.yaml:1:23: data.batch_size: must be >= 1, found 0",
        "c.yaml:4:7: model.layers.0.linear: linear needs out_features",
        "c.yaml:6:7: model.layers.2: unknown layer 'conv2d' here",
    ]
    assert seen[1] == ("relu", {}, ("model", "layers", 1))


def test_model_nodes_for_both_forms():
    seq = load_config(SAMPLES / "lenet.yaml")
    nodes = model_nodes(seq.data["model"])
    assert [n.name for n in nodes[:3]] == ["0", "1", "2"]
    assert nodes[0].inputs == ["input"] and nodes[1].inputs == ["0"]
    assert nodes[0].type == "conv2d" and nodes[0].args == {"out_channels": 6, "kernel_size": 5}
    assert nodes[0].args_path == ("model", "layers", 0, "conv2d")
    graph = load_config(SAMPLES / "resnet_graph.yaml")
    g = {n.name: n for n in model_nodes(graph.data["model"])}
    assert g["res"].inputs == ["bn1", "stem_act"] and g["stem_bn"].inputs == ["stem"]
    assert g["head"].args == {"out_features": 10} and g["head"].type == "linear"
    assert graph.data["model"]["output"] == "head"
    assert graph.locate(g["res"].path + ("inputs",)) == (13, 30)


def test_resolved_configs_are_fixed_points():
    for path in sorted(SAMPLES.glob("*.yaml")):
        c = load_config(path)
        again = loads_config(c.to_yaml(), name="other")
        assert again.data == c.data


def test_docs_name_every_key():
    from trainkit.config.schema import EARLY_STOPPING, TOP_LEVEL, TRAIN
    from trainkit.data.schema import COMMON as DATA_COMMON
    from trainkit.data.schema import specific_keys
    from trainkit.registry import REGISTRIES
    DATA_SPECIFIC, DATASETS = specific_keys(), REGISTRIES["dataset"]
    LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS = ({n: d.arguments for n, d in REGISTRIES[k].items()}
                                                  for k in ("loss", "optimizer", "scheduler", "transform"))
    docs = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
    names = set(TOP_LEVEL) | set(DATA_COMMON) | set(DATA_SPECIFIC) | set(DATASETS) | set(TRAIN.fields)
    names |= set(EARLY_STOPPING.fields) | set(LOSSES) | set(OPTIMIZERS) | set(SCHEDULERS)
    for table in (TRANSFORMS, LOSSES, OPTIMIZERS, SCHEDULERS):
        for name, fields in table.items():
            names |= set(getattr(fields, "fields", fields)) | {name}
    missing = sorted(n for n in names if f"`{n}`" not in docs)
    assert not missing, f"docs/config.md does not mention {missing}"
