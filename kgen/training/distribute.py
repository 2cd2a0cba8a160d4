"""Data-parallel training through the engines the backends already have (issue 25).

    kgen train --distribute data_parallel [--devices N]
    [train] distribute = "data_parallel", devices = N      (in a recipe)

`train.batch_size` stays the *global* batch: each of the D devices of each of
the P processes gets `batch_size / (D * P)` rows of every step, so a run on
several devices takes the steps a single-device run takes. A batch that does
not divide by D x P is refused, and each epoch's last partial batch is dropped
(it cannot be split evenly; the log says how many examples that leaves out).

- **JAX**: `keras.distribution.DataParallel` over the first D local devices of
  every process (`--devices 0`, the default: every local accelerator, else
  every local CPU device), set before the model is built or loaded. Several
  processes (hosts) join through Keras' `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
  `KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID`
  (`keras.distribution.initialize`); each process feeds its own rows of every
  global batch (`auto_shard_dataset = False`), and only process 0 writes the
  run folder while every process reads it on `--resume`.
- **TensorFlow**: `tf.distribute.MirroredStrategy` over D local devices (one
  host). kgen's losses divide by `num_replicas_in_sync`
  (`kgen.backend.scale_loss_for_replicas`; logged values are not scaled), each
  replica draws its own noise, BatchNormalization layers use the statistics of
  the global batch, and the step runs one batch per call without XLA
  (Keras' `fit` fails under the strategy with `steps_per_execution > 1` or
  `jit_compile`). Several workers are refused: `MultiWorkerMirroredStrategy`
  fails inside the released Keras' `fit`.
- **PyTorch**: `DistributedDataParallel`, one process a device under
  `torchrun` (gloo on CPUs, NCCL on GPUs): one-optimizer models step through
  a DDP wrapper, the adversarial step averages its gradients over the ranks.
  Models with BatchNormalization are refused (no synchronized BatchNorm for
  Keras layers on PyTorch).
"""

import contextlib
import os
import types

import keras
import numpy as np

from kgen import backend
from kgen.errors import BackendError, UsageError

MODES = ("off", "data_parallel")

_ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"


def env_processes():
    """Processes that Keras' environment variables ask for (1 when unset)."""
    raw = os.environ.get(_ENV_PROCESSES, "").strip()
    if not raw:
        return 1
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{_ENV_PROCESSES}={raw!r} is not a number of processes.") from None


class Single:
    """No distribution: one device, one process (`train.distribute = "off"`)."""

    enabled = False
    devices = 1
    processes = 1
    process_id = 0
    replicas = 1

    @property
    def is_chief(self):
        return self.process_id == 0

    def scope(self):
        return contextlib.nullcontext()

    def prepare_model(self, model):
        return model

    def train_config(self, train_config):
        return train_config

    def usable(self, n, batch_size):
        """Rows of an epoch that are trained on (all: the last batch may be partial)."""
        return n

    def steps(self, n, batch_size):
        return -(-n // batch_size)

    def local_rows(self, rows, batch_size):
        """The rows (an index array, global order) this process feeds, and its batch size."""
        return rows, batch_size


class DataParallel(Single):
    """What the trainer needs of a data-parallel run: the scope, the rows, who writes."""

    enabled = True

    def __init__(self, devices, processes, process_id, strategy=None, describe=""):
        self.devices = devices
        self.processes = processes
        self.process_id = process_id
        self.replicas = devices * processes
        self.strategy = strategy
        self.describe = describe

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def train_config(self, train_config):
        if self.strategy is None:
            return train_config
        return dict(train_config, steps_per_execution=1, xla="off")

    def prepare_model(self, model):
        if self.strategy is not None:
            synchronize_batch_norm(model)
            model.jit_compile = False
            model.steps_per_execution = 1
        return model

    def usable(self, n, batch_size):
        return n // batch_size * batch_size

    def steps(self, n, batch_size):
        return n // batch_size

    def local_rows(self, rows, batch_size):
        """Process p feeds the p-th block of every global batch, so the global batch (blocks in
        process order) holds the rows a single-device run's batch holds, in the same order."""
        rows = np.asarray(rows)
        if self.processes == 1:
            return rows, batch_size
        local = batch_size // self.processes
        blocks = rows.reshape(-1, self.processes, local)
        return blocks[:, self.process_id].reshape(-1), local


def check_batch(batch_size, devices, processes):
    """Refuses a global batch that does not split evenly over devices x processes."""
    replicas = devices * processes
    if batch_size % replicas:
        lower = batch_size // replicas * replicas
        fix = f"e.g. --batch-size {max(lower, replicas)}" + (f" or {lower + replicas}" if lower else "")
        where = f"{devices} device{'s' if devices > 1 else ''}" + (f" x {processes} processes" if processes > 1 else "")
        raise UsageError(f"train.batch_size {batch_size} does not divide over {where} ({replicas} replicas): "
                         f"the global batch must be a multiple of {replicas}; {fix}.")


def start(train_config, log=print):
    """Sets up the distribution `train_config` asks for; call it before the model is built or loaded."""
    mode = train_config.get("distribute", "off")
    if mode == "off":
        return Single()
    if mode != "data_parallel":  # pragma: no cover (kgen.config.CHOICES)
        raise UsageError(f'train.distribute: unknown mode {mode!r}; choose one of {", ".join(MODES)}.')
    requested = int(train_config.get("devices", 0))
    plan = _START[backend.name()](requested, int(train_config["batch_size"]), log)
    log(f"distribute: data_parallel on {plan.describe}; global batch {train_config['batch_size']} "
        f"({int(train_config['batch_size']) // plan.replicas} per device)")
    return plan


# === JAX: keras.distribution.DataParallel ===


def _jax_start(requested, batch_size, log):
    import jax

    processes = env_processes()
    if processes > 1 and not jax.distributed.is_initialized():
        # Reads the KERAS_DISTRIBUTION_* variables; before anything starts JAX's runtime.
        keras.distribution.initialize()
    processes, process_id = jax.process_count(), jax.process_index()
    local = jax.local_devices()
    devices = requested or len(local)
    if devices > len(local):
        kind = local[0].platform.upper()
        raise UsageError(f"--devices {devices}: this process sees {len(local)} {kind} device"
                         f"{'s' if len(local) > 1 else ''}; ask for at most {len(local)}"
                         + (" (simulated CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count=N)."
                            if kind == "CPU" else "."))
    check_batch(batch_size, devices, processes)
    chosen = []
    for p in range(processes):
        chosen += sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:devices]
    distribution = keras.distribution.DataParallel(devices=chosen, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    kind = local[0].platform.upper()
    describe = f"{devices} {kind} device{'s' if devices > 1 else ''}" + (
        f" x {processes} processes (this is process {process_id})" if processes > 1 else "")
    return DataParallel(devices, processes, process_id, describe=describe)


# === TensorFlow: tf.distribute.MirroredStrategy ===


def _tf_start(requested, batch_size, log):
    import tensorflow as tf

    if env_processes() > 1 or _tf_config_workers() > 1:
        raise BackendError(
            "--distribute data_parallel on TensorFlow runs on one host (MirroredStrategy): several workers "
            "need MultiWorkerMirroredStrategy, which fails inside the released Keras' fit (an open Keras "
            "issue); run on one host, or use the jax backend for several hosts.")
    gpus = tf.config.list_logical_devices("GPU")
    pool = gpus or tf.config.list_logical_devices("CPU")
    devices = requested or len(pool)
    kind = "GPU" if gpus else "CPU"
    if devices > len(pool):
        raise UsageError(f"--devices {devices}: TensorFlow sees {len(pool)} {kind} device"
                         f"{'s' if len(pool) > 1 else ''}; ask for at most {len(pool)}.")
    check_batch(batch_size, devices, 1)
    names = [d.name for d in pool[:devices]]
    ops = None if gpus else tf.distribute.ReductionToOneDevice()
    strategy = tf.distribute.MirroredStrategy(devices=names, cross_device_ops=ops)
    log("distribute: TensorFlow MirroredStrategy trains one batch per call and without XLA "
        "(train.steps_per_execution and train.xla are not applied: Keras' fit fails with them under the strategy)")
    return DataParallel(devices, 1, 0, strategy=strategy,
                        describe=f"{devices} {kind} device{'s' if devices > 1 else ''} (MirroredStrategy)")


def _tf_config_workers():
    import json

    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 1
    try:
        cluster = json.loads(raw).get("cluster", {})
    except ValueError:
        return 1
    return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


# === PyTorch: DistributedDataParallel under torchrun ===


class TorchDDP(DataParallel):
    """One process a device, started by `torchrun`; gradients averaged over the ranks by the engine.

    A one-optimizer model trains through `fit` with kgen's own step around its
    `compute_loss`, the forward pass through a `DistributedDataParallel`
    wrapper, whose backward averages the gradients (Keras' `fit` does not wrap
    DDP in the released version). The adversarial step takes its gradients with
    `torch.autograd.grad`, which DDP's hooks do not see: it averages them over
    the ranks itself (`kgen.backend.adversarial`).
    """

    def prepare_model(self, model):
        norms = [layer.name for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
        if norms:
            raise BackendError(
                f"--distribute data_parallel on the torch backend: {type(model).__name__} has BatchNormalization "
                f"({norms[0]}{' ...' if len(norms) > 1 else ''}), and Keras layers on PyTorch have no synchronized "
                "BatchNorm (each rank would keep its own statistics); train it on jax or tensorflow, or switch "
                "its batch norm off.")
        if not hasattr(model, "adversarial_step"):
            model.train_step = types.MethodType(_ddp_train_step, model)
        return model


def _ddp_train_step(model, data):
    """Keras' PyTorch `train_step`, with the forward pass through DistributedDataParallel."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if getattr(model, "_kgen_ddp", None) is None:  # built by now (fit builds before its first step)
        wrapper = DistributedDataParallel(model, find_unused_parameters=True)
        object.__setattr__(model, "_kgen_ddp", [wrapper])  # a list: not tracked as a submodule (a cycle)
    ddp = model._kgen_ddp[0]
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = ddp(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    rows = next(t for t in keras.tree.flatten(x) if t is not None).shape[0]
    model._loss_tracker.update_state(loss, sample_weight=rows)
    loss.backward()  # DDP averages every gradient over the ranks
    variables = model.trainable_weights[:]
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in variables], variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _torch_start(requested, batch_size, log):
    import torch

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:  # set by torchrun
        raise BackendError(
            "--distribute data_parallel on the torch backend runs one process a device under torchrun "
            "(PyTorch DDP): torchrun --nproc-per-node N -m kgen.cli.main --backend torch train ... "
            "--distribute data_parallel")
    if requested not in (0, 1):
        raise UsageError(f"--devices {requested}: on the torch backend each process drives one device; "
                         "set the number of processes with torchrun --nproc-per-node.")
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    check_batch(batch_size, 1, world)
    kind = "GPU" if cuda else "CPU"
    return TorchDDP(1, world, rank, describe=f"{world} processes x 1 {kind} device (DDP, this is rank {rank})")


_START = {"jax": _jax_start, "tensorflow": _tf_start, "torch": _torch_start}


# === Synchronized BatchNorm (TensorFlow) ===
#
# `BatchNormalization(synchronized=True)` is refused at construction on JAX
# and PyTorch, so a checkpoint whose config says so would not load there. Under
# the strategy, kgen's BatchNormalization layers compute their moments over the
# global batch instead, while their config keeps `synchronized = False`.


def _sync_moments(layer, inputs, mask):
    if mask is None:
        return keras.ops.moments(inputs, axes=layer._reduction_axes, synchronized=True)
    return type(layer)._moments(layer, inputs, mask)


def synchronize_batch_norm(model):
    """Makes every BatchNormalization layer of `model` use the global batch's statistics."""
    count = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer._moments = types.MethodType(_sync_moments, layer)
            count += 1
    return count


def _all_layers(model):
    seen, stack = set(), [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        stack.extend(getattr(layer, "_layers", []) or [])
        stack.extend(layer._flatten_layers(include_self=False) if hasattr(layer, "_flatten_layers") else [])
