"""NRNNClassifier: scikit-learn's estimator checks, pipelines, model selection, save/load."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

from noisyrnn import NRNNClassifier, NRNNRegressor
from noisyrnn.sklearn import EXPECTED_FAILED_CHECKS


def small(model="lipschitz", **kw):
    return NRNNClassifier(model=model, epochs=kw.pop("epochs", 60), params={"hidden_size": 16}, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["nrnn", "lstm"])
def test_passes_scikit_learn_estimator_checks(model):
    est = small(model)
    results = check_estimator(est, on_fail=None, expected_failed_checks=est.expected_failed_checks())
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) >= 45
    assert set(EXPECTED_FAILED_CHECKS) == {"check_methods_subset_invariance"}


def sine_task(n=60, T=16, seed=0):
    """Two classes of noisy sines that differ in frequency; labels are strings."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, T)
    y = np.array(["slow", "fast"] * (n // 2))
    freq = np.where(y == "fast", 3.0, 1.0)
    X = np.sin(freq[:, None] * t[None, :] + rng.uniform(0, 1, (n, 1))) + 0.1 * rng.normal(size=(n, T))
    return X, y


def test_fit_predict_with_string_labels_and_probabilities():
    X, y = sine_task()
    est = small(epochs=40).fit(X, y)
    assert list(est.classes_) == ["fast", "slow"]
    proba = est.predict_proba(X)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(1), 1)
    assert set(est.predict(X)) <= {"fast", "slow"}
    assert est.score(X, y) > 0.9


def test_unequal_length_lists_and_multivariate_ndt():
    X, y = sine_task()
    ragged = [np.stack([x[: 8 + i % 8], -x[: 8 + i % 8]], axis=1) for i, x in enumerate(X)]  # (T_i, 2)
    est = small(epochs=30).fit(ragged, y)
    assert est.predict_proba(ragged[:5]).shape == (5, 2)
    # one sequence alone or inside a padded batch: the same probabilities
    alone = np.vstack([est.predict_proba([s]) for s in ragged[:5]])
    assert np.allclose(alone, est.predict_proba(ragged[:5]), atol=1e-6)
    cube = np.stack([X, -X], axis=1)  # (n, d, T)
    ndt = small(epochs=5, layout="ndt").fit(cube, y)
    ntd = small(epochs=5).fit(cube.transpose(0, 2, 1), y)
    assert np.allclose(ndt.predict_proba(cube), ntd.predict_proba(cube.transpose(0, 2, 1)), atol=1e-6)


def test_pipeline_grid_search_and_cross_val_score():
    X, y = sine_task()
    pipe = make_pipeline(FunctionTransformer(lambda a: a * 2.0), small(epochs=15))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and (scores >= 0).all()
    grid = GridSearchCV(small(epochs=15), {"lr": [0.001, 0.01]}, cv=2).fit(X, y)
    assert grid.best_params_["lr"] in (0.001, 0.01)
    assert grid.predict(X[:3]).shape == (3,)


def test_fits_are_deterministic_given_random_state():
    X, y = sine_task()
    a = small(epochs=10, random_state=7).fit(X, y).predict_proba(X)
    b = small(epochs=10, random_state=7).fit(X, y).predict_proba(X)
    c = small(epochs=10, random_state=8).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_save_load_round_trip_without_pickle(tmp_path):
    X, y = sine_task()
    est = small("nrnn", epochs=10, select_under="white_0.2").fit(X, y)
    est.save(tmp_path / "est")
    files = sorted(p.name for p in (tmp_path / "est").iterdir())
    assert files == ["estimator.json", "model.json", "model.safetensors"]
    back = NRNNClassifier.load(tmp_path / "est")
    assert back.get_params() == est.get_params()
    assert np.array_equal(back.predict_proba(X), est.predict_proba(X))
    assert list(back.classes_) == list(est.classes_)


def test_bad_input_is_a_clear_error():
    X, y = sine_task()
    with pytest.raises(ValueError, match="only one class"):
        small().fit(X, np.array(["a"] * len(y)))
    with pytest.raises(ValueError, match="NaN"):
        small().fit(np.where(X > 0.9, np.nan, X), y)
    est = small(epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :5])


def small_regressor(**kw):
    return NRNNRegressor(model="nrnn", epochs=kw.pop("epochs", 100), lr=0.02, params={"hidden_size": 16}, **kw)


@pytest.mark.slow
def test_regressor_passes_scikit_learn_estimator_checks():
    """check_estimator for NRNNRegressor, check_regressors_train's R^2 > 0.5 included (no
    poor_score tag): the tabular data it uses are read as sequences of 10 steps."""
    est = small_regressor()
    results = check_estimator(est, on_fail=None, expected_failed_checks=est.expected_failed_checks())
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_regressor_learns_a_sequence_target_and_reports_in_its_units():
    """y = 10 * (mean of the first half of the series) + 3: R^2 well above a constant's 0, the
    predictions in y's own units, multi-output y (n, 2) gives (n, 2)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 20, 1))
    y = 10 * X[:, :10, 0].mean(1) + 3
    est = small_regressor(epochs=60).fit(X[:120], y[:120])
    pred = est.predict(X[120:])
    assert pred.shape == (40,)
    assert est.score(X[120:], y[120:]) > 0.7
    assert abs(pred.mean() - y[120:].mean()) < 1.0  # de-standardised: around 3, not around 0
    two = small_regressor(epochs=5).fit(X[:120], np.stack([y[:120], -y[:120]], 1))
    assert two.predict(X[120:]).shape == (40, 2)


def test_regressor_save_load_round_trip_and_refuses_foreign_files(tmp_path):
    import json

    from noisyrnn.errors import DataError

    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 15, 2))
    y = np.stack([X[:, :, 0].mean(1), X[:, :, 1].sum(1)], 1)
    est = small_regressor(epochs=3).fit(X, y)
    est.save(tmp_path / "reg")
    back = NRNNRegressor.load(tmp_path / "reg")
    assert np.allclose(back.predict(X), est.predict(X)) and back.get_params() == est.get_params()
    state = json.loads((tmp_path / "reg" / "estimator.json").read_text())
    state["n_outputs"] = 3
    (tmp_path / "reg" / "estimator.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="does not describe the regression model saved beside it"):
        NRNNRegressor.load(tmp_path / "reg")


def test_validation_fraction_zero_trains_on_everything_and_keeps_the_last_epoch():
    """validation_fraction = 0 (or 1): no held-out data, so the last epoch is kept and 0 and 1
    give the same model."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 8)), np.array([0, 1, 2] * 10)
    fits = [NRNNClassifier(epochs=3, validation_fraction=f, params={"hidden_size": 8}).fit(X, y) for f in (0, 1)]
    assert [f.best_epoch_ for f in fits] == [2, 2] and len(fits[0].history_) == 3
    assert np.array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    held = NRNNClassifier(epochs=3, validation_fraction=0.2, params={"hidden_size": 8}).fit(X, y)
    assert not np.array_equal(held.predict_proba(X), fits[0].predict_proba(X))  # 24 sequences, not 30
