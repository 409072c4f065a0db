"""docs/api.md: the covered PyTorch API, generated from the code; a stale page fails here."""
from __future__ import annotations

import pytest

import trainkit.docs_api as api
from trainkit.registry import OPTIMIZERS


def test_api_page_is_up_to_date():
    assert api.main(["--check"]) == 0, "docs/api.md is stale: run python -m trainkit.docs_api"


def test_coverage_is_read_from_the_code_and_every_gap_has_a_reason(monkeypatch):
    rows = {(ns, name): (covered, yaml, note) for ns, _, name, covered, yaml, note in api.rows()}
    assert rows[("torch.nn", "Dropout2d")][:2] == (True, "dropout2d")
    assert rows[("torch.optim", "Adadelta")][:2] == (True, "adadelta")
    assert rows[("torchvision", "models.resnet18")][0] and rows[("torch", "where")][0]
    assert all(note for covered, _, note in rows.values() if not covered)
    # a curated name trainkit lacks, with no reason, stops the generator
    monkeypatch.setattr(api, "NAMESPACES", api.NAMESPACES + [("torch", "trainkit", {"probe": "no_such_name"})])
    with pytest.raises(KeyError, match="torch.no_such_name is not covered and has no reason"):
        api.rows()
    monkeypatch.setitem(api.NOT_COVERED, "no_such_name", "a probe")
    assert ("torch", "probe", "no_such_name", False, "", "a probe") in api.rows()
    assert api.main(["--check"]) == 1  # the page no longer matches


def test_lbfgs_is_python_only_and_the_page_says_so():
    assert "lbfgs" not in OPTIMIZERS
    row = next(r for r in api.rows() if r[2] == "LBFGS")
    assert row[3] and row[4] == "" and "Python only" in row[5]
    assert "| optimizers | `LBFGS` | yes |  | Python only" in api.render()
