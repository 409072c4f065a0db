"""YAML configs: safe loading with line numbers, ``base:`` inheritance, ``--set`` overrides, schema.

    from trainkit.config import load_config
    config = load_config("configs/cifar_cnn.yaml", overrides=["optimizer.lr=0.01"])
    config.data["optimizer"]["lr"]             # resolved values, defaults filled in
    config.problem(("model", "layers", 3), "kernel 5 is larger than its 4x4 input")

See ``docs/config.md`` for every key.
"""
from trainkit.config.loader import Config, load_config, loads_config, read_config_text
from trainkit.config.model_spec import INPUT, LayerValidator, ModelNode, model_nodes
from trainkit.config.overrides import parse_override
from trainkit.config.schema import DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS
from trainkit.config.spec import suggest, unknown_name
from trainkit.config.yamlsafe import MAX_FILE_BYTES, dump_yaml, parse_yaml
from trainkit.errors import ConfigError, Problem

__all__ = ["Config", "ConfigError", "Problem", "load_config", "loads_config", "read_config_text",
           "ModelNode", "LayerValidator", "model_nodes", "INPUT", "parse_override",
           "DATASETS", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "TRANSFORMS", "suggest",
           "unknown_name", "MAX_FILE_BYTES", "dump_yaml", "parse_yaml"]
