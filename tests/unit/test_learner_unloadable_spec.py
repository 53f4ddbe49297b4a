"""A spec whose River pipeline holds a class the restricted unpickler refuses (a notebook's
``naive_bayes.GaussianNB``): its learner is refused at start, naming the spec and the class,
instead of publishing snapshots that every worker rejects (serving the fallback for good)
and that the learner itself cannot resume from (starting cold at every restart)."""

from __future__ import annotations

import pytest
from river import compose, naive_bayes

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.online import OnlineLearner
from streamlearn.models.specs import CLICK_WITHIN_30M, SPECS, ModelSpec

pytestmark = pytest.mark.unit

KEY = "k" * 32


def _gaussian_nb(seed: int) -> object:
    return compose.Select("price", "hour") | naive_bayes.GaussianNB()


def test_a_spec_workers_cannot_load_is_refused_naming_the_spec_and_class() -> None:
    spec = ModelSpec(
        name="my_ctr",
        task="binary",
        estimator="Select(price, hour) | GaussianNB",
        build=_gaussian_nb,
        label=CLICK_WITHIN_30M,
    )
    with pytest.raises(ConfigurationError) as refused:
        OnlineLearner(spec, signing_key=KEY)
    message = str(refused.value)
    assert "my_ctr" in message
    assert "river.naive_bayes.gaussian.GaussianNB" in message


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_shipped_specs_are_loadable(name: str) -> None:
    OnlineLearner(SPECS[name], signing_key=KEY)
