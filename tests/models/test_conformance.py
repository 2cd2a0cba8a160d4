"""One conformance test over the registry: what every model must do, on every backend it declares.

For each entry of `kgen.list_models()`, at the tiny size declared beside its registration
(`register_model(..., tiny=...)`), on its tiny data set (`tiny_dataset`, bundled, with the
registration's `tiny_data` settings):

- its bundled recipe for that data set exists and resolves strictly;
- the model builds from the recipe through the training harness (`kgen.train`: one short epoch),
  every logged loss is finite, and the run folder has its checkpoint and sample figure;
- the checkpoint loads back with plain `keras.saving.load_model` (kgen imported, nothing else)
  with equal weights and equal outputs;
- the checkpoint stores a value for every weight its config builds, so `kgen.load_model`, which
  builds a checkpoint's config under the count of values it stores (`kgen.budget`), loads it;
- `sample(n, seed)` has the data's shape, is finite, and the same seed gives the same samples
  (image-to-image models: `translate` instead, which is what they offer);
- every serving endpoint the model declares exports (SavedModel; LiteRT for its
  `litert_endpoints`, builtin ops only) and matches the Keras endpoint at batch 1 and 3
  (TensorFlow backend: export runs in a TensorFlow process).

A model registered without a tiny size fails at registration; one without its recipe fails here.
What is particular to a model lives in its own test file.
"""

import zipfile

import keras
import numpy as np
import pytest

import kgen
from kgen import api
from kgen import config as config_lib
from kgen.budget import parameter_budget, stored_parameters
from kgen.data.pipeline import Pipeline

BACKEND = keras.config.backend()
ENTRIES = {e.name: e for e in api.list_entries()}
BATCHES = (1, 3)


def tiny_config(entry):
    """The model's bundled recipe on its tiny data set, shrunk to the registered tiny size."""
    sets = [(["model", k], list(v) if isinstance(v, tuple) else v) for k, v in entry.tiny.items()]
    sets += [(["train", k], v) for k, v in
             dict(epochs=1, batch_size=16, grid_size=4, steps_per_execution=1, lr_schedule="constant").items()]
    sets += [(["data", "max_examples"], 64)] + [(["data", k], v) for k, v in entry.tiny_data.items()]
    return config_lib.resolve(model=entry.name, dataset=entry.tiny_dataset, overrides=sets)


@pytest.fixture(scope="module", params=sorted(ENTRIES))
def trained(request, tmp_path_factory):
    """(entry, model trained one tiny epoch, its run folder, last metrics, prepared valid data)."""
    entry = ENTRIES[request.param]
    if BACKEND not in entry.backends:
        pytest.skip(f"{entry.name} declares the {', '.join(entry.backends)} backends at its registration")
    keras.utils.set_random_seed(0)
    config = tiny_config(entry)
    run_dir = tmp_path_factory.mktemp(entry.name) / "run"
    model, run_dir, last = kgen.train(config, run_dir=run_dir, verbose=0)
    pipeline = Pipeline(config["data"])
    valid = pipeline.prepare(pipeline.load("valid").subset(8), seed=0)
    return entry, model, run_dir, last, valid


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_recipe_exists_and_resolves(name):
    entry = ENTRIES[name]
    assert config_lib.recipe_path(name, entry.tiny_dataset) is not None, (
        f"configs/{name}/{entry.tiny_dataset}.toml is missing")
    config = tiny_config(entry)
    assert config["model"]["name"] == name and config["description"]
    for key, value in entry.tiny.items():
        assert config["model"][key] == (list(value) if isinstance(value, tuple) else value)


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_registered_name_is_the_file_name(name):
    """A model's file, recipe folder and registry entry share its name."""
    entry = ENTRIES[name]
    assert entry.cls.__module__ == f"kgen.models.{entry.cls.__module__.split('.')[2]}.{name}", entry.cls.__module__
    assert entry.cls.registered_name == name


def test_trains_and_the_loss_is_finite(trained):
    entry, model, run_dir, last, _ = trained
    assert last and all(np.isfinite(v) for v in last.values()), last
    assert (run_dir / "last.keras").is_file() and (run_dir / "samples" / "epoch_001.png").is_file()
    assert model.optimizer.iterations.numpy() > 0 if BACKEND == "tensorflow" else True


def _outputs(model, valid):
    """What the model offers, as NumPy: samples by seed, or translations of fixed images."""
    if model.supports("translate"):
        return model.translate(valid.x_source)
    return model.sample(3, seed=5)


def test_keras_load_model_round_trip(trained):
    entry, model, run_dir, _, valid = trained
    loaded = keras.saving.load_model(run_dir / "last.keras")
    assert type(loaded) is type(model)
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    np.testing.assert_allclose(_outputs(loaded, valid), _outputs(model, valid), atol=1e-5)


def test_checkpoint_stores_every_weight_its_config_builds(trained):
    _, model, run_dir, _, _ = trained
    with zipfile.ZipFile(run_dir / "last.keras") as zf, zf.open("model.weights.h5") as f:
        stored = stored_parameters(f)
    with parameter_budget(stored) as budget:  # no slack: the build must fit what the file stores
        keras.saving.load_model(run_dir / "last.keras", compile=False)
    assert 0 < budget.count <= stored
    assert budget.count >= sum(int(np.prod(w.shape)) for w in model.weights)


def test_every_trainable_weight_is_a_torch_parameter(trained):
    """Keras registers a PyTorch model's parameters when it is built, in a dict per layer keyed by
    each weight's path: a weight added after the build, or two weights of one layer with one path,
    are left out of `parameters()`, so `zero_grad` never clears their gradients and each step adds
    the previous steps' (the IAF-VAE's flow steps once did both; `GenerativeModel.adding_state`)."""
    if BACKEND != "torch":
        pytest.skip("a PyTorch registration check")
    _, model, run_dir, _, _ = trained
    for m in (model, keras.saving.load_model(run_dir / "last.keras", compile=False)):
        registered = {id(p) for p in m.parameters()}
        missing = [w.path for w in m.trainable_weights if id(w.value) not in registered]
        assert not missing, f"trainable weights that are not torch parameters of the model: {missing}"


def test_sample_by_seed(trained):
    entry, model, _, _, valid = trained
    if model.supports("translate"):
        out = model.translate(valid.x_source)
        assert out.shape == valid.x.shape and np.all(np.isfinite(out))
        np.testing.assert_array_equal(out, model.translate(valid.x_source))
        return
    first = model.sample(5, seed=11)
    assert first.shape == (5,) + model.data_shape
    assert np.all(np.isfinite(first))
    np.testing.assert_array_equal(first, model.sample(5, seed=11))


def _endpoint_inputs(model, specs, n, valid, endpoint):
    """NumPy inputs for an endpoint: data for a data-shaped input, labels 0/1, noise in [0, 1)."""
    rng = np.random.default_rng(n)
    out = []
    for shape, dtype in specs:
        shape = (n,) + tuple(shape[1:])
        if dtype == "int32":
            out.append(rng.integers(0, 2, shape).astype("int32"))
        elif shape[1:] == model.data_shape and endpoint != "sample":
            out.append(np.asarray(valid.x_source if valid.x_source is not None else valid.x)[:n].astype("float32"))
        else:
            out.append(rng.uniform(size=shape).astype("float32"))
    return out


def _first(result):
    if isinstance(result, dict):
        return [np.asarray(keras.ops.convert_to_numpy(result[k])) for k in sorted(result)]
    return [np.asarray(keras.ops.convert_to_numpy(result))]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="export runs in a TensorFlow process (kgen export reloads "
                                                     "a checkpoint of any backend there)")
def test_every_declared_endpoint_exports_and_matches_keras(trained, tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from kgen.export import export, tflite_op_names
    from kgen.export.common import input_names

    entry, model, _, _, valid = trained
    endpoints = model.export_endpoints()
    assert endpoints, f"{entry.name} declares no serving endpoint"
    assert set(model.litert_endpoints) <= set(endpoints)
    export(model, "saved_model", tmp_path / "saved")
    saved = tf.saved_model.load(str(tmp_path / "saved"))
    interpreter = None
    if model.litert_endpoints:
        export(model, "litert", tmp_path / "m.tflite")
        ops = tflite_op_names(tmp_path / "m.tflite")
        assert not [op for op in ops if "Flex" in op], ops
        interpreter = Interpreter(model_path=str(tmp_path / "m.tflite"))
    for name, (fn, specs) in endpoints.items():
        names = input_names(fn, len(specs))
        for n in BATCHES:
            arrays = _endpoint_inputs(model, specs, n, valid, name)
            want = _first(fn(*[tf.constant(a) for a in arrays]))
            got = saved.signatures[name](**dict(zip(names, arrays)))
            got = [got[k].numpy() for k in sorted(got)] if len(got) > 1 else [next(iter(got.values())).numpy()]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.reshape(w.shape), w, atol=1e-4, rtol=1e-4, err_msg=f"{name} n={n}")
            if name in model.litert_endpoints:
                lite = interpreter.get_signature_runner(name)(**dict(zip(names, arrays)))
                lite = [lite[k] for k in sorted(lite)]
                for g, w in zip(lite, want):
                    np.testing.assert_allclose(g.reshape(w.shape), w, atol=1e-4, rtol=1e-4,
                                               err_msg=f"LiteRT {name} n={n}")
