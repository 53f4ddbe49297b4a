"""A spec's name is in every URL a worker answers for it (``/v1/models/{name}:predict``) and
in the names ``@`` (an arm, a shadow) and ``~`` (``~newest``) are built from, so a name the
worker's routes cannot take is refused where the spec is declared, naming it."""

from __future__ import annotations

import pytest

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.specs import CLICK_WITHIN_30M, SPECS, ModelSpec

pytestmark = pytest.mark.unit


def _spec(name: str) -> ModelSpec:
    return ModelSpec(name=name, task="binary", estimator="x", build=lambda seed: None,
                     label=CLICK_WITHIN_30M)  # fmt: skip


@pytest.mark.parametrize("name", ["my ctr", "ctr@v2", "ctr~b", "ctr:v2", "", "-ctr", "ctr/b"])
def test_a_name_workers_cannot_route_is_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"spec name .*letters, digits"):
        _spec(name)


@pytest.mark.parametrize("name", ["my_ctr", "ctr.v2", "ctr-b", *sorted(SPECS)])
def test_names_workers_route_are_taken(name: str) -> None:
    assert _spec(name).name == name
