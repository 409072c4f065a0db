"""YAML configs: safe loading with line numbers, ``base:`` inheritance, ``--set`` overrides, one validation.

    from trainkit.config import load_config
    config = load_config("configs/cifar_cnn.yaml", overrides=["optimizer.lr=0.01"])
    config.resolved.optimizer.args["lr"]     # typed, immutable resolved values
    config.data["optimizer"]["lr"]           # the same as plain data (what config.yaml holds)
    config.problem(("model", "layers", 3), "kernel 5 is larger than its 4x4 input")

The schema derives from the component declarations (:mod:`trainkit.registry`);
see ``docs/config.md`` for every key.
"""
from trainkit.config.loader import Config, load_config, loads_config, read_config_text
from trainkit.config.model_spec import LayerValidator, ModelNode, model_nodes
from trainkit.config.overrides import parse_override
from trainkit.config.resolved import (ComponentSpec, EarlyStoppingSpec, ModelSpec, RunConfig, SchedulerSpec,
                                      TrainSpec)
from trainkit.config.yamlsafe import MAX_FILE_BYTES, dump_yaml, parse_yaml
from trainkit.errors import ConfigError, Problem
from trainkit.nn.graph import INPUT
from trainkit.registry import suggest, unknown_name

__all__ = ["Config", "ConfigError", "Problem", "load_config", "loads_config", "read_config_text",
           "ModelNode", "LayerValidator", "model_nodes", "INPUT", "parse_override", "RunConfig", "ComponentSpec",
           "SchedulerSpec", "TrainSpec", "EarlyStoppingSpec", "ModelSpec", "suggest", "unknown_name",
           "MAX_FILE_BYTES", "dump_yaml", "parse_yaml"]
