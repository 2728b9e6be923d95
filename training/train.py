"""Training DynaProt-M and DynaProt-J from a label store (plain torch, optional DDP).

``train(TrainConfig)`` (or ``dynaprot-viz train CONFIG.yaml``):

- AdamW, linear warm-up to ``lr`` over ``warmup_steps``, then constant; gradient
  clipping at ``grad_clip`` (global norm);
- random contiguous crops of ``crop_size`` residues, padding masks;
- ``precision``: ``auto`` (bf16 autocast on CUDA, float32 on CPU), ``bf16`` (bf16
  autocast on any device, CPU included) or ``fp32``; autocast covers the forward
  pass only, the loss is computed in float64 (see :mod:`.runtime`);
- seeds everywhere; batches are a function of (seed, step, rank), so a resumed
  run sees the same batches as an uninterrupted one;
- a checkpoint (model, optimiser, scheduler, RNG states, step) every
  ``checkpoint_every`` steps, written atomically to ``out_dir/checkpoints/last.pt``;
  rerunning the same config resumes from it (at most ``checkpoint_every - 1``
  steps are repeated after a kill);
- metrics appended to ``out_dir/metrics.csv``; a tqdm bar on stderr;
- ``max_minutes``: a wall-clock budget for the training steps, summed over every
  resume (the checkpoint keeps the seconds spent); the run stops and checkpoints
  when it is spent, so a fixed-budget comparison of variants is one config key;
- ``init_from``: a checkpoint (e.g. of a pretraining run on ``"teacher-rmsf"``
  labels) whose model weights start this run when it has no checkpoint of its own;
  the model config must be the same; optimiser and step start afresh (fine-tuning);
- label kinds (``kinds``, default ``["md"]``): with more than one kind, or with
  an RMSF-only kind (``"md-rmsf"``, e.g. mdCATH; ``"teacher-rmsf"``, a teacher's
  predictions for pretraining), training is *source-aware*: the kind of
  each chain selects its loss, the log-Euclidean loss on marginals and coupling for
  ``"md"`` / ``"experimental-ensemble"``, the MSE of log RMSF (M: sqrt(tr Sigma_i),
  J: sqrt(3 C_ii)) for the RMSF-only kinds, each scaled by ``kind_weights[kind]`` (default 1);
- ``keys_file``: only the chains it lists (one key per line, ``#`` comments) take
  part in the split, e.g. ``datasets/mdcath_split/train.txt``;
- the physics-prior model (``model: {prior: anm}``) gets its ANM inputs from the
  data loader (one ANM per chain, cached with the chain);
- ``torchrun --nproc_per_node K -m dynaprot_viz.cli train CONFIG.yaml``: with
  WORLD_SIZE > 1 the process group is initialised from the environment (NCCL on
  CUDA, gloo on CPU) and the model wrapped in DistributedDataParallel: process r
  draws the batches (seed, step, r), so one step sees K * batch_size chains and
  applies their averaged gradient.  Validation chains are shared out among the
  processes and their losses gathered; the logged training loss is the mean
  over processes; rank 0 alone writes checkpoints, metrics and config.json, and
  every process resumes from the same checkpoint (checked).  :func:`train`
  returns once the last checkpoint is on disk, on every rank.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dynaprot_viz._io import atomic_write_text
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.models.dynaprot import DynaProt, DynaProtConfig, count_parameters
from dynaprot_viz.core.models.dynaprot.loss import (
    FLOOR_COUPLING, FLOOR_MARGINAL, dynaprot_loss, log_rmsf_loss, rmsf_from_coupling, rmsf_from_marginals,
)

from .dataset import LabelDataset, split_keys
from .runlog import append_metrics, atomic_torch_save, truncate_metrics
from .runtime import autocast as _autocast
from .runtime import check_precision, resolve_device, start_processes
from .yaml_config import check_at_least_one, check_known_keys, read_yaml_mapping

__all__ = ["TrainConfig", "TrainResult", "train", "load_config", "resolve_device", "evaluate_loss", "export_weights"]

_METRIC_FIELDS = ["step", "split", "loss", "marginal", "coupling", "rmsf", "rmsf_coupling", "lr", "grad_norm",
                  "elapsed_s"]


@dataclass
class TrainConfig:
    """Everything a run needs; YAML keys have the same names (see training/configs/).

    Paths are relative to the YAML file's folder when loaded by :func:`load_config`.
    """

    store: str
    out_dir: str
    model: dict = field(default_factory=dict)  # DynaProtConfig fields
    train_m: bool = True
    train_j: bool = True
    loss: str = "log_euclidean"  # or "mse" (ablation)
    coupling_weight: float = 1.0
    floor_marginal: float = FLOOR_MARGINAL
    floor_coupling: float = FLOOR_COUPLING
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 2000
    max_steps: int = 100_000
    batch_size: int = 4
    crop_size: int = 256
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:K
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    num_threads: int | None = None  # CPU threads (None: torch's default)
    checkpoint_every: int = 500
    val_every: int = 500
    val_fraction: float = 0.1
    val_keys: list | None = None
    test_keys: list | None = None
    families_tsv: str | None = None
    progress: bool = True
    kinds: list | None = None  # label kinds to train on (None: ["md"]); see the module docstring
    kind_weights: dict = field(default_factory=dict)  # loss weight per label kind (default 1)
    keys_file: str | None = None  # only these chains (one key per line) enter the split
    init_from: str | None = None  # a checkpoint whose model weights start this run (pretraining -> fine-tuning)
    max_minutes: float | None = None  # wall-clock budget of the training steps, summed over resumes
    cache_size: int = 512  # featurised chains kept in memory (ANM inputs included): set >= the chains
    source_scales: bool = False  # a learned global scale per label source (kind); MD RMSF kinds fixed at 1

    @property
    def label_kinds(self) -> list:
        """The label kinds this run trains on (``kinds``, default ``["md"]``)."""
        return list(self.kinds) if self.kinds else ["md"]

    @property
    def source_aware(self) -> bool:
        """True when the label kind selects the loss (several kinds, or RMSF-only labels)."""
        from .store import RMSF_ONLY_KINDS

        return len(set(self.label_kinds)) > 1 or bool(set(RMSF_ONLY_KINDS) & set(self.label_kinds))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        check_known_keys(cls, d)
        for req in ("store", "out_dir"):
            if req not in d:
                raise InputError(f"training config needs {req!r}")
        cfg = cls(**d)
        DynaProtConfig.from_dict(cfg.model)  # validate early
        if cfg.loss not in ("log_euclidean", "mse"):
            raise InputError(f"loss must be 'log_euclidean' or 'mse', got {cfg.loss!r}")
        if not (cfg.train_m or cfg.train_j):
            raise InputError("at least one of train_m, train_j must be true")
        check_precision(cfg.precision)
        check_at_least_one(cfg, ("max_steps", "batch_size", "checkpoint_every", "val_every"))
        if cfg.max_minutes is not None and not (isinstance(cfg.max_minutes, (int, float)) and cfg.max_minutes > 0):
            raise InputError(f"max_minutes must be a number > 0, got {cfg.max_minutes!r}")
        from .store import LABEL_KINDS

        if cfg.kinds is not None and (not isinstance(cfg.kinds, list) or not cfg.kinds
                                      or any(k not in LABEL_KINDS for k in cfg.kinds)):
            raise InputError(f"kinds must be a non-empty list of {', '.join(LABEL_KINDS)}, got {cfg.kinds!r}")
        if not isinstance(cfg.kind_weights, dict) or any(
                k not in LABEL_KINDS or not isinstance(v, (int, float)) or not v >= 0
                for k, v in cfg.kind_weights.items()):
            raise InputError(f"kind_weights must map label kinds ({', '.join(LABEL_KINDS)}) to numbers >= 0, "
                             f"got {cfg.kind_weights!r}")
        return cfg


def load_config(path) -> TrainConfig:
    """Read a YAML training config; relative paths are resolved against its folder."""
    data = read_yaml_mapping(path, ("store", "out_dir", "families_tsv", "keys_file", "init_from"))
    return TrainConfig.from_dict(data)


@dataclass
class TrainResult:
    """What :func:`train` did: final step, metrics history (list of dict rows), paths."""

    step: int
    resumed_from: int
    history: list
    out_dir: Path
    checkpoint: Path
    n_parameters: int
    splits: dict

    def last(self, split: str = "val") -> dict:
        rows = [r for r in self.history if r["split"] == split]
        return rows[-1] if rows else {}


# ----------------------------------------------------------------------------- helpers


def _lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(1, warmup))


def _to_device(batch: dict, device, dtype=torch.float32) -> dict:
    return {k: (v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device))
            for k, v in batch.items()}


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _source_aware_loss(cfg: TrainConfig, out: dict, batch: dict):
    """Loss chosen by each chain's label kind (``batch["kind_index"]``, see the module docstring).

    Terms: ``marginal`` / ``coupling`` (log-Euclidean, chains with full labels) and
    ``rmsf`` / ``rmsf_coupling`` (MSE of log RMSF from M's trace and J's diagonal,
    RMSF-only chains, labelled residues only).  Every term the run's kinds and heads
    can produce is returned (0 when the batch has no chain of that kind), so that the
    terms are the same on every step and every process.
    """
    from .store import LABEL_KINDS, RMSF_ONLY_KINDS

    kind_of = batch["kind_index"][:, 0].tolist()  # [B]
    weight = torch.tensor([float(cfg.kind_weights.get(LABEL_KINDS[k], 1.0)) for k in kind_of],
                          dtype=torch.float64, device=batch["mask"].device)
    full = batch["label_full"][:, 0] > 0.5  # [B]
    total = torch.zeros((), dtype=torch.float64, device=batch["mask"].device)
    terms = {}
    if bool(full.any()):
        _, full_terms = dynaprot_loss(
            cfg.loss,
            marginals=out["marginals"][full] if "marginals" in out else None,
            marginals_true=batch["marginals"][full] if "marginals" in out else None,
            coupling=out["coupling"][full] if "coupling" in out else None,
            coupling_true=batch["coupling"][full] if "coupling" in out else None,
            mask=batch["mask"][full], floor_marginal=cfg.floor_marginal, floor_coupling=cfg.floor_coupling)
        w = weight[full].mean()
        total = total + w * (full_terms.get("marginal", 0.0) + cfg.coupling_weight * full_terms.get("coupling", 0.0))
        terms.update(full_terms)
    zero = torch.zeros((), dtype=torch.float64, device=batch["mask"].device)
    if set(cfg.label_kinds) - set(RMSF_ONLY_KINDS):
        for name, head in (("marginal", "marginals"), ("coupling", "coupling")):
            if head in out:
                terms.setdefault(name, zero)
    if set(cfg.label_kinds) & set(RMSF_ONLY_KINDS):
        for name, head in (("rmsf", "marginals"), ("rmsf_coupling", "coupling")):
            if head in out:
                terms[name] = zero
    rmsf_only = ~full
    if bool(rmsf_only.any()):
        rmask = (batch["mask"] * batch["label_rmsf"])[rmsf_only]
        true = batch["rmsf"][rmsf_only]
        w = weight[rmsf_only].mean()
        if "marginals" in out:
            terms["rmsf"] = log_rmsf_loss(rmsf_from_marginals(out["marginals"][rmsf_only]), true, rmask)
            total = total + w * terms["rmsf"]
        if "coupling" in out:
            terms["rmsf_coupling"] = log_rmsf_loss(rmsf_from_coupling(out["coupling"][rmsf_only]), true, rmask)
            total = total + w * cfg.coupling_weight * terms["rmsf_coupling"]
    return total, terms


class SourceScales(torch.nn.Module):
    """A learned global variance scale per label kind (the *source head*): before the loss,
    a chain's predicted marginals and coupling are multiplied by exp(2 b_kind), so that a
    source with another amplitude (experimental conformer spread, 300 K implicit-solvent
    MD) teaches shapes and profiles without pulling the model's absolute scale.  The
    RMSF-only MD kinds (``md-rmsf``, ``teacher-rmsf``: mdCATH's 320 K scale, which the model
    predicts at inference) are the reference, b = 0.  Not part of the exported weights."""

    def __init__(self):
        super().__init__()
        from .store import LABEL_KINDS, RMSF_ONLY_KINDS

        self.log_scale = torch.nn.Parameter(torch.zeros(len(LABEL_KINDS), dtype=torch.float64))
        self.register_buffer("free", torch.tensor([k not in RMSF_ONLY_KINDS for k in LABEL_KINDS],
                                                  dtype=torch.float64))

    def forward(self, out: dict, kind_index: torch.Tensor) -> dict:
        """``out`` with marginals [B, N, 3, 3] and coupling [B, N, N] rescaled per chain."""
        b = (self.log_scale * self.free)[kind_index[:, 0]]  # [B]
        var = torch.exp(2.0 * b)
        scaled = dict(out)
        if "marginals" in out:
            scaled["marginals"] = out["marginals"] * var[:, None, None, None].to(out["marginals"].dtype)
        if "coupling" in out:
            scaled["coupling"] = out["coupling"] * var[:, None, None].to(out["coupling"].dtype)
        return scaled


def _compute_loss(cfg: TrainConfig, out: dict, batch: dict, scales: SourceScales | None = None):
    if "kind_index" in batch:
        if scales is not None:
            out = scales(out, batch["kind_index"])
        return _source_aware_loss(cfg, out, batch)
    total, terms = dynaprot_loss(
        cfg.loss,
        marginals=out.get("marginals"), marginals_true=batch["marginals"] if "marginals" in out else None,
        coupling=out.get("coupling"), coupling_true=batch["coupling"] if "coupling" in out else None,
        mask=batch["mask"], floor_marginal=cfg.floor_marginal, floor_coupling=cfg.floor_coupling,
    )
    if "coupling" in terms and cfg.coupling_weight != 1.0:
        total = total + (cfg.coupling_weight - 1.0) * terms["coupling"]
    return total, terms


def _float32(out: dict) -> dict:
    """Model outputs (bf16 under autocast) as float32; the loss widens them to float64."""
    return {k: v.float() for k, v in out.items()}


@torch.no_grad()
def _loss_sums(model, dataset: LabelDataset, keys, cfg: TrainConfig, device, autocast, scales=None) -> dict:
    sums: dict = {}
    was = model.training
    model.eval()
    for key in keys:
        batch = _to_device(dataset.full(key), device)
        with autocast():
            out = model(batch)
        total, terms = _compute_loss(cfg, _float32(out), batch, scales)
        for k, v in {"loss": total, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    model.train(was)
    return sums


def evaluate_loss(model, dataset: LabelDataset, keys, cfg: TrainConfig, device, autocast=None) -> dict:
    """Mean loss terms over ``keys`` (each chain whole, centre-cropped to crop_size).

    ``autocast``: a callable returning the forward's context manager (default:
    :func:`~dynaprot_viz.training.runtime.autocast` of ``device`` at ``cfg.precision``).
    """
    if autocast is None:
        def autocast():
            return _autocast(torch.device(device), cfg.precision)
    sums = _loss_sums(model, dataset, keys, cfg, device, autocast)
    return {k: v / max(1, len(keys)) for k, v in sums.items()}


# ----------------------------------------------------------------------------- main loop


def train(cfg: TrainConfig, on_step=None) -> TrainResult:
    """Train (or resume) according to ``cfg``; see the module docstring.

    on_step : callable(step, metrics_dict), optional
        Called after every optimiser step (tests use it to simulate a kill).
    """
    from tqdm.auto import tqdm

    from .store import LabelStore

    check_precision(cfg.precision)
    procs = start_processes(cfg.device)
    device, rank = procs.device, procs.rank
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    metrics_path = out_dir / "metrics.csv"
    kinds = cfg.label_kinds
    with LabelStore(cfg.store) as store:
        splits = split_keys(store, cfg.val_fraction, 0.0, cfg.seed, cfg.families_tsv, cfg.val_keys, cfg.test_keys,
                            kind=kinds)
    if cfg.keys_file is not None:
        allowed = _read_keys_file(cfg.keys_file)
        splits = {k: ([x for x in v if x in allowed] if isinstance(v, list) else v) for k, v in splits.items()}
    if not splits["train"]:
        raise InputError(f"{cfg.store}: no chains left for training after the split")
    model_cfg = DynaProtConfig.from_dict(cfg.model)
    data_opts = dict(kind=kinds, anm=model_cfg.prior == "anm", source_aware=cfg.source_aware,
                     cache_size=cfg.cache_size)
    train_ds = LabelDataset(cfg.store, splits["train"], cfg.crop_size, **data_opts)
    val_keys = splits["val"]

    model = DynaProt(model_cfg, use_m=cfg.train_m, use_j=cfg.train_j).to(device)
    n_params = count_parameters(model)
    if cfg.source_scales and procs.world > 1:
        raise InputError("source_scales is single-process for now (its scales are not averaged over DDP ranks)")
    scales = SourceScales().to(device) if cfg.source_scales else None
    params = list(model.parameters()) + (list(scales.parameters()) if scales is not None else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps))

    step = 0
    seconds_before = 0.0  # training time of earlier invocations (max_minutes counts all of them)
    init_note = None
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["model_config"] != model_cfg.to_dict():
            raise InputError(f"{ckpt_path}: checkpoint was made with a different model config; "
                             "use another out_dir or delete the checkpoint")
        model.load_state_dict(ck["model"])
        if scales is not None and ck.get("source_scales") is not None:
            scales.load_state_dict(ck["source_scales"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        _set_rng_state(ck["rng"])
        step = int(ck["step"])
        seconds_before = float(ck.get("train_seconds", 0.0))
        init_note = ck.get("init_from")
    elif cfg.init_from is not None:
        init_note = _init_from(model, model_cfg, cfg, device)
    procs.agree(step, "the step to resume from")
    resumed_from = step
    if procs.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        truncate_metrics(metrics_path, step, _METRIC_FIELDS)
        atomic_write_text(out_dir / "config.json", json.dumps(
            {"train": asdict(cfg), "model": model_cfg.to_dict(), "splits": splits,
             "world_size": procs.world}, indent=1))

    net = procs.wrap(model)  # DDP: gradients averaged over processes in backward()

    def autocast():
        return _autocast(device, cfg.precision)

    def checkpoint():
        if procs.main:
            atomic_torch_save({
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": _rng_state(), "step": step, "model_config": model_cfg.to_dict(),
                "train_config": asdict(cfg), "use_m": cfg.train_m, "use_j": cfg.train_j,
                "train_seconds": seconds_before + (time.perf_counter() - t0), "init_from": init_note,
                "source_scales": scales.state_dict() if scales is not None else None,
            }, ckpt_path)

    def validate(elapsed) -> dict:
        # each process evaluates its share of the chains (the unwrapped model: no
        # gradient sync), then the sums are gathered
        mine = procs.shard(val_ds.keys)
        parts = procs.gather((len(mine), _loss_sums(model, val_ds, mine, cfg, device, autocast, scales)))
        n = sum(p[0] for p in parts)
        sums: dict = {}
        for _, part in parts:
            for k, v in part.items():
                sums[k] = sums.get(k, 0.0) + v
        return {"step": step, "split": "val", "elapsed_s": elapsed, **{k: v / max(1, n) for k, v in sums.items()}}

    history = []
    t0 = time.perf_counter()
    val_ds = LabelDataset(cfg.store, val_keys, cfg.crop_size, **data_opts) if val_keys else None
    bar = None
    try:
        if step == 0 and val_ds is not None:
            row = validate(0.0)
            history.append(row)
            if procs.main:
                append_metrics(metrics_path, [row], _METRIC_FIELDS)
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step",
                   disable=not cfg.progress or not procs.main, dynamic_ncols=True)
        model.train()
        budget_s = None if cfg.max_minutes is None else 60.0 * float(cfg.max_minutes)
        while step < cfg.max_steps:
            # every process stops at the same step: one that is over budget stops them all
            if budget_s is not None and procs.mean([seconds_before + time.perf_counter() - t0 >= budget_s])[0] > 0:
                checkpoint()
                break
            batch = _to_device(train_ds.batch(cfg.seed, step, cfg.batch_size, rank), device)
            with autocast():
                out = net(batch)
            total, terms = _compute_loss(cfg, _float32(out), batch, scales)
            opt.zero_grad(set_to_none=True)
            total.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            # the mean over processes of their batches' loss terms
            logged = dict(zip(["loss", *terms],
                              procs.mean([float(total.detach()), *(float(v.detach()) for v in terms.values())])))
            row = {"step": step, "split": "train", "loss": logged["loss"], "lr": opt.param_groups[0]["lr"],
                   "grad_norm": float(gnorm), "elapsed_s": round(seconds_before + time.perf_counter() - t0, 3),
                   **{k: logged[k] for k in terms}}
            rows = [row]
            if val_ds is not None and (step % cfg.val_every == 0 or step == cfg.max_steps):
                rows.append(validate(row["elapsed_s"]))
            history.extend(rows)
            if procs.main:
                append_metrics(metrics_path, rows, _METRIC_FIELDS)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                checkpoint()
            if on_step is not None:
                on_step(step, row)
        procs.barrier()  # the last checkpoint is on disk when any process returns
    finally:
        if bar is not None:
            bar.close()
        train_ds.close()
        if val_ds is not None:
            val_ds.close()
        procs.close()
    return TrainResult(step=step, resumed_from=resumed_from, history=history, out_dir=out_dir,
                       checkpoint=ckpt_path, n_parameters=n_params, splits=splits)


def _init_from(model, model_cfg, cfg: TrainConfig, device) -> dict:
    """Start ``model`` from the weights of the checkpoint ``cfg.init_from`` (a pretraining
    run); optimiser, scheduler and step start afresh.  Returns what the checkpoint was."""
    path = Path(cfg.init_from)
    if not path.is_file():
        raise InputError(f"init_from: {path}: no such checkpoint")
    ck = torch.load(path, map_location=device, weights_only=False)
    if ck.get("model_config") != model_cfg.to_dict():
        raise InputError(f"init_from: {path}: made with a different model config; the fine-tuning config's "
                         "'model' must be the pretraining config's")
    missing, unexpected = model.load_state_dict(ck["model"], strict=False)
    if unexpected or (missing and (cfg.train_m == ck.get("use_m") and cfg.train_j == ck.get("use_j"))):
        raise InputError(f"init_from: {path}: weights do not fit this model "
                         f"({len(missing)} missing, {len(unexpected)} unexpected)")
    return {"path": os.fspath(path), "step": int(ck["step"]), "store": ck["train_config"].get("store"),
            "kinds": ck["train_config"].get("kinds")}


def _read_keys_file(path) -> set:
    """Keys listed in a text file (one per line, first column; ``#`` starts a comment)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such keys file")
    keys = set()
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].split()
        if text:
            keys.add(text[0])
    if not keys:
        raise InputError(f"{path}: lists no keys")
    return keys


def export_weights(checkpoint, path, metadata: dict | None = None) -> Path:
    """Write a checkpoint's model weights as safetensors (float32) + a config json beside it.

    ``path``: the ``.safetensors`` file; the config goes to the same stem + ``.json``.
    """
    from safetensors.torch import save_file

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    path = Path(path)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in ck["model"].items()}
    meta = {"model_config": json.dumps(ck["model_config"]), "step": str(ck["step"]),
            "use_m": str(ck["use_m"]), "use_j": str(ck["use_j"]), **{k: str(v) for k, v in (metadata or {}).items()}}
    # per-process temporary names: under torchrun every rank may export the same file
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    atomic_write_text(path.with_suffix(".json"), json.dumps(
        {"model_config": ck["model_config"], "step": ck["step"], "use_m": ck["use_m"], "use_j": ck["use_j"],
         "train_config": ck["train_config"], **(metadata or {})}, indent=1))
    return path
