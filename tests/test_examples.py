"""The examples under examples/ run as a user runs them, and do what they say."""

import re

import pytest
from conftest import run_script


@pytest.mark.slow
def test_noisy_layer_in_a_users_model_forecasts_the_airline_series():
    """examples/forecast_airline.py: an NRNN layer inside a plain PyTorch model, trained by a plain
    loop, forecasts the held-out 36 months better than persistence and the seasonal-naive forecast."""
    out = run_script("examples/forecast_airline.py", "--epochs", "300")
    ours, seasonal, persistence = map(float, re.search(
        r"NRNN layer ([\d.]+), seasonal naive ([\d.]+), persistence ([\d.]+)", out).groups())
    assert abs(seasonal - 42.0) < 0.1  # a property of the data alone: the series aeon ships is the airline series
    assert ours < seasonal < persistence
