"""The training harness: `fit` underneath, crash-safe run folders on top.

A run folder holds:

    config.toml      the resolved recipe (`kgen train --config` repeats the run)
    metrics.csv      one row per epoch: every logged loss, train and valid, and
                     `seconds` (the epoch's wall time, validation included)
    samples/         epoch_001.png ... a sample grid (or 2-D plot) per epoch
    loss.png         the curves so far
    last.keras       checkpoint after the latest epoch (atomic, resumable)
    best.keras       checkpoint with the lowest `train.checkpoint_metric`

Each epoch is one `model.fit` call on a permutation drawn from
`(seed, epoch)`, so an interrupted run resumed from `last.keras` ends with
the same weights as a run that was never interrupted.
"""

import contextlib
import csv
import math
import pathlib
import tempfile
import time

import keras
import numpy as np

from kgen import backend, checkpoint, config as config_lib, figures
from kgen.api import get_entry
from kgen.budget import DEFAULT_MAX_PARAMETERS, parameter_budget
from kgen.data.pipeline import Pipeline
from kgen.errors import OutputError, TrainingDiverged, UsageError
from kgen.files import TMP_PREFIX
from kgen.optimizers import make_optimizer  # noqa: F401  (kgen.training.trainer.make_optimizer, as before)
from kgen.training import distribute
from kgen.training.callbacks import NaNGuard, ProgressBar

RUN_MARKER = "config.toml"
RESUME_MAY_CHANGE = ("distribute", "devices")  # train.* keys a --resume may change (the global batch stays)


def set_xla(model, train_config):
    """Applies `train.xla` to a compiled model: XLA for TensorFlow's training step.

    "auto" keeps Keras' choice (XLA where TensorFlow sees a GPU, not on a
    CPU-only machine); "on" and "off" force it. JAX always compiles through XLA
    and PyTorch has none, so only TensorFlow reads it. Set as an attribute, not
    through `compile`, so a checkpoint keeps "auto" and loads on any backend.
    """
    choice = train_config.get("xla", "auto")
    if backend.name() == "tensorflow" and choice != "auto":
        model.jit_compile = choice == "on"
    return model


def compile_model(model, train_config, steps_per_epoch=None):
    """Compiles `model` as the recipe says (`GenerativeModel.compile_for_training`), then `train.xla`."""
    model.compile_for_training(train_config, steps_per_epoch)
    return set_xla(model, train_config)


def build_for_data(config, data):
    """Builds the config's model for a data set (shape, levels and classes from the data)."""
    name = config["model"]["name"]
    entry = get_entry(name)
    backend.require(entry.backends, f"{entry.cls.__name__} ({name})")
    hparams = config_lib.model_hparams(config)
    conditional = hparams.pop("conditional", False)
    if conditional and not entry.conditional:
        raise UsageError(f"{name} has no conditional version; remove model.conditional.")
    if conditional and data.num_classes is None:
        raise UsageError(f"{data.name} has no labels; a conditional {name} needs them.")
    if data.vocabulary is not None:  # text: the model keeps the vocabulary (in every checkpoint) to decode
        hparams["vocabulary"] = data.vocabulary.get_config()
    # Sizes come from the recipe and from the data (levels, classes): a model too large to hold is
    # refused before its weights take memory, naming the key to lower (kgen.budget).
    sizes = {f"model.{k}": v for k, v in config["model"].items() if k != "name"}
    sizes.update({f"the data's levels ({data.name})": data.num_levels,
                  f"the data's classes ({data.name})": data.num_classes if conditional else None})
    with parameter_budget(config["train"].get("max_parameters", DEFAULT_MAX_PARAMETERS), sizes=sizes):
        return entry.cls(
            input_shape=data.shape,
            num_levels=data.num_levels,
            num_classes=data.num_classes if conditional else None,
            **hparams,
        )


def fit_inputs(model, prepared, perm=None):
    """What `fit` takes from prepared arrays (rows `perm`): `x`, `(x, labels)`, or `(source, target)`.

    Image-to-image models train on the sources and targets of a translation
    data set; every other model on `x` (and labels): `GenerativeModel.fit_inputs`.
    """
    def take(a):
        return a if a is None or perm is None else a[perm]

    return model.fit_inputs(take(prepared.x), take(prepared.y), source=take(prepared.x_source))


def resume_request(run_dir, config_file=None, model=None, dataset=None, overrides=()):
    """The config a `--resume` command line asks for, or None when it gives nothing but the run folder.

    Values the command line gives are applied over the run's recorded config (a
    config file is resolved whole), so the trainer refuses only those that differ.
    """
    if not (config_file or model or dataset or overrides):
        return None
    marker = pathlib.Path(run_dir) / RUN_MARKER
    if not marker.is_file():
        return None  # the trainer says what is wrong with the folder
    if config_file:
        return config_lib.resolve(config_file, model=model, dataset=dataset, overrides=overrides)
    sets = ([(["model", "name"], config_lib.canonical_model(model))] if model else [])
    sets += [(["data", "name"], dataset)] if dataset else []
    recorded = config_lib.resolve(config_file=marker)
    return config_lib.apply_overrides(recorded, sets + list(overrides))


def default_run_dir(config):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = pathlib.Path(str(config["data"]["name"])).stem
    return pathlib.Path("runs") / f"{config['model']['name']}-{data}-{stamp}"


class Trainer:
    """Trains one config into one run folder.

    Args:
        config: a resolved config (`kgen.config.resolve`).
        run_dir: the run folder (created; must be empty of other runs).
        resume: continue the run in `run_dir` from its `last.keras`.
        verbose: 1 shows a progress bar per epoch, 0 is silent.
        log: callable for one-line messages.
    """

    def __init__(self, config=None, run_dir=None, resume=False, epochs=None, verbose=1, log=print):
        if resume and not run_dir:
            raise UsageError("--resume needs --run-dir: the folder of the run to continue.")
        self.run_dir = pathlib.Path(run_dir) if run_dir else default_run_dir(config)
        self.verbose = verbose
        self.log = log
        self.resume = resume
        self.lock = checkpoint.RunLock(self.run_dir)
        if resume:
            self._check_resumable()
            recorded = config_lib.resolve(config_file=self.run_dir / RUN_MARKER)
            if config is not None:  # what the caller asked for must be what the run was
                self._check_same_config(recorded, config)
                for key in RESUME_MAY_CHANGE:  # a run may continue on other devices
                    recorded["train"][key] = config["train"][key]
            config = recorded
            if not (self.run_dir / "last.keras").is_file():  # it ended before its first checkpoint
                self.log(f"{self.run_dir} holds no checkpoint yet: the run starts from scratch.")
                self.resume = False
        elif (self.run_dir / "last.keras").exists():
            raise UsageError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose another --run-dir."
            )
        elif (self.run_dir / RUN_MARKER).exists():  # a run that ended before its first checkpoint
            self.log(f"{self.run_dir} holds a run that never reached its first checkpoint: starting it afresh.")
        if epochs is not None:
            config["train"]["epochs"] = int(epochs)
        if int(config["train"]["epochs"]) < 1:
            raise UsageError(f"train.epochs must be at least 1, got {config['train']['epochs']}.")
        self.config = config
        self.pipeline = Pipeline(config["data"])
        self.history = []
        # Before any model is built or loaded (kgen.training.distribute): off, or data-parallel devices.
        self.dist = distribute.start(config["train"], log=log)

    def _check_same_config(self, recorded, given):
        changed = config_lib.differences(recorded, given, ignore=("train.epochs",) + tuple(
            f"train.{key}" for key in RESUME_MAY_CHANGE))
        if changed:
            shown = "; ".join(f"{k} is {a!r} in the run, {b!r} now" for k, a, b in changed[:4])
            more = f" (and {len(changed) - 4} more)" if len(changed) > 4 else ""
            raise UsageError(
                f"--resume continues {self.run_dir} as it was configured: {shown}{more}. Drop the changed "
                "values (only --epochs, --distribute and --devices may change) or start a new run with another "
                "--run-dir."
            )

    def _check_resumable(self):
        if not self.run_dir.is_dir():
            raise UsageError(f"--resume: {self.run_dir} does not exist; nothing to resume.")
        if not (self.run_dir / RUN_MARKER).is_file():
            raise UsageError(
                f"--resume: {self.run_dir} is not a kgen run folder (needs {RUN_MARKER} and last.keras); "
                "refusing to start a fresh run there."
            )

    # === Setup ===

    def _load_history(self):
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return []
        with open(path) as f:
            return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]

    def setup(self):
        c = self.config
        seed = c["train"]["seed"]
        keras.utils.set_random_seed(seed)
        self.train_data = self.pipeline.load("train")
        self.valid_data = self.pipeline.load("valid")
        if self.train_data.oracle is not None:  # seqgan_oracle: which oracle made (and scores) the data
            published = " (the published SeqGAN weights)" if self.train_data.oracle.published else ""
            self.log(f"{self.train_data.name}: oracle {self.train_data.oracle.source}{published}")
        if c["data"]["train_with_valid"]:
            self.log(f"data.train_with_valid: training on train + valid ({len(self.train_data)} examples); "
                     "val_* metrics score examples the model trains on")
        self.start_epoch = 0
        chief = self.dist.is_chief  # under distribution only process 0 writes the run folder
        if self.resume:
            if chief:
                self.lock.acquire()  # one process per run folder, before anything in it is touched
                checkpoint.clean_stale(self.run_dir)
            with self.dist.scope():
                model = set_xla(checkpoint.load_model(self.run_dir / "last.keras"), c["train"])
            self.model = self.dist.prepare_model(model)
            state = checkpoint.read_state(self.run_dir / "last.keras")
            self.start_epoch = int(state["epoch"])
            self.best = state.get("best", math.inf)
            self.best_epoch = state.get("best_epoch")
            self.history = [row for row in self._load_history() if row["epoch"] <= self.start_epoch]
            self._check_schedule()
            if chief:
                self._repair_best(state)
                (self.run_dir / RUN_MARKER).write_text(config_lib.dumps(c))
        else:
            with self.dist.scope():
                model = compile_model(build_for_data(c, self.train_data), self.dist.train_config(c["train"]),
                                      self.steps_per_epoch)
            self.model = self.dist.prepare_model(model)
            for sg in checkpoint.seed_generators(self.model):  # model noise follows train.seed
                sg.state.assign(np.asarray([seed, 0], dtype=sg.state.dtype))
            self.best = math.inf
            self.best_epoch = None
            if chief:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self.lock.acquire()
                if (self.run_dir / "last.keras").exists():  # another process got here first
                    self.lock.release()
                    raise UsageError(f"{self.run_dir} already holds a run; pass --resume to continue it "
                                     "or choose another --run-dir.")
                (self.run_dir / RUN_MARKER).write_text(config_lib.dumps(c))
        self.model.check_data(self.train_data)
        if chief:
            (self.run_dir / "samples").mkdir(exist_ok=True)
        valid = self.pipeline.prepare(self.valid_data, seed=seed)
        self.valid_prepared = valid
        self.valid_inputs, self.valid_batch = self._valid_inputs(valid)
        self._log_dropped()

    def _valid_inputs(self, valid):
        """The validation inputs this process feeds and their batch size (None: no validation)."""
        batch_size = self.config["train"]["batch_size"]
        if not self.dist.enabled:
            return fit_inputs(self.model, valid), batch_size
        usable = self.dist.usable(len(valid.x), batch_size)
        if usable == 0:
            self.log(f"distribute: the validation split ({len(valid.x)} examples) is smaller than one global "
                     f"batch ({batch_size}); no val_* metrics")
            return None, batch_size
        rows, local = self.dist.local_rows(np.arange(usable), batch_size)
        return fit_inputs(self.model, valid, rows), local

    def _log_dropped(self):
        if not self.dist.enabled:
            return
        n, batch_size = len(self.train_data), self.config["train"]["batch_size"]
        dropped = n - self.dist.usable(n, batch_size)
        if self.dist.usable(n, batch_size) == 0:
            raise UsageError(f"train.batch_size {batch_size} is larger than the training set ({n} examples); "
                             "under --distribute every step needs a full global batch.")
        if dropped:
            self.log(f"distribute: each epoch drops its last partial batch ({dropped} of {n} examples, a "
                     f"different {dropped} each epoch): a partial batch cannot be split evenly over "
                     f"{self.dist.replicas} replica{'s' if self.dist.replicas > 1 else ''}")

    def _repair_best(self, state):
        """A crash between writing last.keras and best.keras leaves best.keras an epoch behind the
        best that last.keras records; that best is last.keras itself, so copy it over."""
        best_epoch = state.get("best_epoch")
        if best_epoch is None or best_epoch != state["epoch"]:
            return
        best = self.run_dir / "best.keras"
        if best.is_file() and checkpoint.read_state(best).get("epoch") == best_epoch:
            return
        checkpoint.save_checkpoint(self.model, best, state)
        self.log(f"best.keras was behind last.keras (a crash between the two writes): restored epoch {best_epoch}.")

    @property
    def steps_per_epoch(self):
        return self.dist.steps(len(self.train_data), self.config["train"]["batch_size"])

    def _check_schedule(self):
        """A resumed cosine schedule ends where it was set to: refuse to train past it."""
        c = self.config["train"]
        optimizer = getattr(self.model, "optimizer", None)
        if c["lr_schedule"] != "cosine" or optimizer is None:
            return
        lr = optimizer.get_config().get("learning_rate")
        decay_steps = lr.get("config", {}).get("decay_steps") if isinstance(lr, dict) else None
        steps_per_epoch = self.steps_per_epoch
        if decay_steps != c["epochs"] * steps_per_epoch:
            planned = f"{decay_steps // steps_per_epoch} epochs" if decay_steps else "a constant rate"
            raise UsageError(
                f"{self.run_dir}: its cosine learning-rate schedule was set for {planned}, not "
                f"{c['epochs']}; resume without --epochs, or start a new run to train longer."
            )

    # === Loop ===

    def run(self):
        """Trains to `train.epochs`; returns the last epoch's metrics. Holds the run folder's lock meanwhile."""
        try:
            return self._run()
        finally:
            self.lock.release()

    def _run(self):
        self.setup()
        c = self.config["train"]
        seed, epochs, batch_size = c["seed"], c["epochs"], c["batch_size"]
        if self.start_epoch >= epochs:
            self.log(f"{self.run_dir}: already trained {self.start_epoch} of {epochs} epochs; nothing to do.")
            return self.history[-1] if self.history else {}
        n = len(self.train_data)
        steps = self.steps_per_epoch
        for epoch in range(self.start_epoch, epochs):
            prepared = self.pipeline.prepare(self.train_data, epoch=epoch, seed=seed)
            perm = np.random.default_rng([seed, epoch, 5]).permutation(n)
            # Distributed: only whole global batches, and this process's rows of each.
            perm, local_batch = self.dist.local_rows(perm[:self.dist.usable(n, batch_size)], batch_size)
            inputs = fit_inputs(self.model, prepared, perm)
            guard = NaNGuard()
            callbacks = [guard]
            if self.verbose:
                callbacks.append(ProgressBar(epoch + 1, epochs, steps))
            start = time.perf_counter()
            hist = self.model.fit(
                **backend.fit_data(inputs, local_batch),
                **(backend.validation_data(self.valid_inputs, self.valid_batch) if self.valid_inputs is not None
                   else {}),
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
            if guard.bad is not None:
                last = self.run_dir / "last.keras"
                kept = (f"The last good checkpoint is {last}" if last.is_file() else
                        "No checkpoint was written (it diverged in its first epoch); the folder starts afresh "
                        "on the next train")
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}: {guard.bad}. {kept}; "
                                       "lower train.learning_rate or set train.clipnorm.")
            row = {"epoch": epoch + 1}
            row.update({k: float(v[-1]) for k, v in hist.history.items()})
            row["seconds"] = round(time.perf_counter() - start, 2)  # the epoch's fit, validation included
            self.history.append(row)
            try:
                self._end_epoch(row)
            except OSError as e:  # disk full, permissions: say where, and that the last checkpoint is whole
                raise self._write_failed(e, row["epoch"]) from None
        return self.history[-1]

    def _write_failed(self, e, epoch):
        where = pathlib.Path(e.filename) if e.filename else self.run_dir
        if where.name.startswith(TMP_PREFIX):  # a checkpoint's temporary: name the folder it was going to
            where = where.parent
        last = self.run_dir / "last.keras"
        done = checkpoint.read_state(last).get("epoch") if last.is_file() else None
        kept = (f"{last} still holds epoch {done}, whole (checkpoints are written beside it and renamed)"
                if done else "no checkpoint was written yet")
        return OutputError(f"could not write {where} after epoch {epoch} ({e.strerror or e}); {kept}. Free "
                           f"space or fix the permissions, then: kgen train --resume --run-dir {self.run_dir}")

    def _end_epoch(self, row):
        epoch = row["epoch"]
        chief = self.dist.is_chief  # every process computes (collectives), only process 0 writes
        if chief:
            self._write_metrics()
        self._write_samples(epoch, write=chief)
        if chief:
            figures.write_loss_plot(self.run_dir / "loss.png", self.history)
        metric = self.config["train"]["checkpoint_metric"]
        value = row.get(metric, row.get("loss"))
        improved = value < self.best
        if improved:
            self.best = value
            self.best_epoch = epoch
        state = {"epoch": epoch, "best": self.best, "best_epoch": self.best_epoch,
                 "metric": metric, "config": self.config}
        # Saving a model whose arrays span processes is collective under JAX: the other processes
        # save too, into a private temporary folder that is then removed.
        with contextlib.nullcontext(self.run_dir) if chief else tempfile.TemporaryDirectory() as folder:
            folder = pathlib.Path(folder)
            checkpoint.save_checkpoint(self.model, folder / "last.keras", state)
            if improved:
                checkpoint.save_checkpoint(self.model, folder / "best.keras", state)
        if self.verbose:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
            self.log(f"epoch {epoch}/{self.config['train']['epochs']}: {shown}")

    def _write_metrics(self):
        keys = ["epoch"] + sorted({k for row in self.history for k in row} - {"epoch"})
        tmp = self.run_dir / ".tmp-metrics.csv"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        tmp.replace(self.run_dir / "metrics.csv")

    def _write_samples(self, epoch, write=True):
        if not write:  # another process: the same (collective) computations, the figure thrown away
            with tempfile.TemporaryDirectory() as folder:
                return self._write_samples_to(pathlib.Path(folder) / "samples.png", epoch)
        return self._write_samples_to(self.run_dir / "samples" / f"epoch_{epoch:03d}.png", epoch)

    def _write_samples_to(self, path, epoch):
        n = self.config["train"]["grid_size"]
        seed = self.config["train"]["seed"]
        scale = self.config["data"]["scale"]
        if self.model.supports("translate"):  # source | translated (| target), fixed valid batch
            figures.write_translation_figure(path, self.model, self.valid_prepared, n, scale=scale)
            return
        samples = self.model.sample(n, seed=seed)
        figures.write_epoch_figure(path, self.model, samples, self.train_data, scale=scale,
                                   title=f"samples, epoch {epoch}")


def train(config=None, run_dir=None, resume=False, epochs=None, verbose=1, log=print):
    """Trains a resolved config (or resumes `run_dir`); returns (model, run_dir, last metrics)."""
    trainer = Trainer(config, run_dir=run_dir, resume=resume, epochs=epochs, verbose=verbose, log=log)
    last = trainer.run()
    return trainer.model, trainer.run_dir, last
