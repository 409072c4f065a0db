"""Checks of the engine, the layers and whole configs, kept above the code they check.

As PyTorch keeps OpInfo under ``torch/testing``: the gradient-check cases of every
op (:mod:`.op_cases`) and every layer and loss (:mod:`.layer_cases`) are plain lists,
:func:`.cases.cases` joins them, :mod:`.run` runs them for ``trainkit gradcheck``, and
:mod:`.config_case` checks the model and loss of a config. Nothing below this package
imports it.
"""
