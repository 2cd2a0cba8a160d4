"""`kgen.metrics.evaluate`'s per-example bounds, for paired comparisons of two models on the same examples."""

import numpy as np

from kgen import config as config_lib
from kgen.data.pipeline import Pipeline
from kgen.metrics import evaluate
from kgen.training.trainer import build_for_data


def test_per_example_bounds_average_to_the_summaries():
    config = config_lib.resolve(model="vae", dataset="digits",
                                overrides=[(["model", "hidden_units"], [8]), (["model", "latent_dim"], 2)])
    pipeline = Pipeline(config["data"])
    data = pipeline.load("test").subset(12, seed=0)
    prepared = pipeline.prepare(data, seed=0)
    model = build_for_data(config, data)
    plain = evaluate(model, prepared, iw_samples=3, batch_size=8, seed=0)
    assert "per_example" not in plain
    result = evaluate(model, prepared, iw_samples=3, batch_size=8, seed=0, per_example=True)
    per = result["per_example"]
    assert per["elbo"].shape == per["iw_bound"].shape == (12,)
    assert np.ptp(per["elbo"]) > 0  # one value per example, not the mean repeated
    # the summaries are the per-example bounds' means (log p(x) bounds: negative nats)
    np.testing.assert_allclose(per["elbo"].mean(), result["elbo"]["nats"], rtol=1e-9)
    np.testing.assert_allclose(per["iw_bound"].mean(), result["iw_bound"]["nats"], rtol=1e-9)
    np.testing.assert_allclose(result["elbo"]["nats"], plain["elbo"]["nats"], rtol=1e-9)
