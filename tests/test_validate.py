"""Tests of prunebounds.validate: every check accepts the valid values and names the fix."""

from __future__ import annotations

import pytest
import torch

from prunebounds.errors import ParameterError
from prunebounds.validate import (check_chain, check_choice, check_delta, check_epochs,
                                  check_gamma, check_int, check_layer_shapes, check_loss,
                                  check_m, check_r, check_real, check_weights)


def test_generic_checks():
    assert check_choice("dataset", "mnist", ("mnist", "cifar10")) == "mnist"
    with pytest.raises(ParameterError, match="valid values: cifar10, mnist"):
        check_choice("dataset", "svhn", ("mnist", "cifar10"))
    assert check_int("n", 3.0) == 3 and isinstance(check_int("n", 3.0), int)
    for bad in (True, 2.5, "3"):
        with pytest.raises(ParameterError, match="n must be an integer"):
            check_int("n", bad)
    with pytest.raises(ParameterError, match=">= 1"):
        check_int("n", 0, minimum=1)
    assert check_real("x", 2) == 2.0
    for bad, msg in ((float("nan"), "finite"), (float("inf"), "finite"), (True, "real"),
                     (5.0, "<= 1.0"), (-1.0, ">= 0.0")):
        with pytest.raises(ParameterError, match=msg):
            check_real("x", bad, minimum=0.0, maximum=1.0)
    assert check_epochs("snapshots", [3, 1, 3]) == (1, 3) and check_epochs("s", 2) == (2,)
    for bad in ("12", [0], [1.5]):
        with pytest.raises(ParameterError, match="snapshots"):
            check_epochs("snapshots", bad)


def test_bound_arguments():
    assert check_gamma(0.5) == 0.5 and check_m(10) == 10 and check_delta(0.05) == 0.05
    assert check_loss(1.0) == 1.0 and check_r(2) == 2
    with pytest.raises(ParameterError, match="positive margin"):
        check_gamma(0.0)
    with pytest.raises(ParameterError, match="open interval"):
        check_delta(1.0)
    with pytest.raises(ParameterError, match="empirical_margin_loss"):
        check_loss(1.5)
    with pytest.raises(ParameterError, match="values per parameter"):
        check_r(1)
    with pytest.raises(ParameterError, match="number of training samples"):
        check_m(0)


def test_weights_and_shapes():
    ws = check_weights([torch.ones(3, 2, dtype=torch.float32), torch.ones(4, 3)])
    assert all(w.dtype == torch.float64 for w in ws)
    assert check_weights([torch.ones(3, 2)], float64=False)[0].dtype == torch.float32
    with pytest.raises(ParameterError, match="do not chain"):
        check_chain([torch.zeros(5, 4), torch.zeros(3, 6)])
    check_chain([torch.zeros(5, 4), torch.zeros(3, 5)])
    with pytest.raises(ParameterError, match="list of 2-D weight matrices"):
        check_weights(torch.ones(3, 3))
    with pytest.raises(ParameterError, match="2-D"):
        check_weights([torch.ones(3)])
    assert check_layer_shapes([(3, 2), torch.ones(4, 3)]) == [(3, 2), (4, 3)]
    with pytest.raises(ParameterError, match="at least one layer"):
        check_layer_shapes([])
    with pytest.raises(ParameterError, match=r"\(out, in\)"):
        check_layer_shapes([(1, 2, 3)])
