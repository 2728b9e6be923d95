"""Training ResAxial from a label store (self-contained; ``dynaprot-viz train`` dispatches here
when the YAML says ``model: resaxial``).

``train_resaxial(store_path, config)``:

- targets: per-residue RMSF (Å) and ResAxial's cosine correlation map
  (``correlation_label: cosine``; ``dccm`` for the DCCM), DESIGN.md section 1;
- loss :func:`~dynaprot_viz.core.models.resaxial.loss.resaxial_loss`, ``loss_mode``
  ``joint`` / ``rmsf`` / ``correlation`` (the paper's joint-versus-single comparison);
- AdamW, linear warm-up then cosine decay to ``min_lr_factor * lr`` (or constant),
  gradient clipping, padding masks, random contiguous crops of ``crop_size``;
- seeds everywhere; batches are a pure function of (seed, step, rank), so a resumed
  run sees the batches an uninterrupted run would have seen;
- ``precision``: ``auto`` (bf16 autocast on CUDA, float32 on CPU), ``bf16`` (bf16
  autocast on any device, CPU included) or ``fp32``; autocast covers the forward
  pass only, the loss is computed on float32 outputs (see :mod:`.runtime`);
- checkpoint ``out_dir/checkpoints/last.pt`` every ``checkpoint_every`` steps
  (atomic; plain tensors and numbers, loaded with ``weights_only=True``); rerunning
  the same config resumes from it;
- metrics appended to ``out_dir/metrics.csv``; a tqdm bar on stderr;
- ``export``: at the end, the weights as safetensors + config json
  (:func:`export_resaxial_weights`);
- ``torchrun --nproc_per_node K -m dynaprot_viz.cli train CONFIG.yaml``: with
  WORLD_SIZE > 1 the process group is initialised from the environment (NCCL on
  CUDA, gloo on CPU) and the model wrapped in DistributedDataParallel
  (``find_unused_parameters`` for the single-task loss modes, whose other head
  gets no gradient); process r draws the batches (seed, step, r), so a step
  applies the gradient averaged over K * batch_size chains.  Validation chains
  are shared out and gathered, the logged training loss is the mean over
  processes, and rank 0 alone writes checkpoints, metrics, config.json and the
  export.

YAML keys are the fields of :class:`ResAxialTrainConfig`, plus ``model: resaxial``;
ResAxial's hyper-parameters go under ``architecture:`` (fields of
:class:`~dynaprot_viz.core.models.resaxial.ResAxialConfig`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dynaprot_viz._io import atomic_write_text
from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.models.resaxial import ResAxial, ResAxialConfig, collate_resaxial, count_parameters
from dynaprot_viz.core.models.resaxial.loss import LOSS_MODES, resaxial_loss

from .runlog import append_metrics, atomic_torch_save, truncate_metrics
from .runtime import autocast as _autocast
from .runtime import check_precision, start_processes
from .yaml_config import check_at_least_one, check_known_keys, read_yaml_mapping

__all__ = [
    "ResAxialTrainConfig",
    "ResAxialTrainResult",
    "ResAxialData",
    "train_resaxial",
    "load_resaxial_config",
    "is_resaxial_config",
    "evaluate_resaxial",
    "export_resaxial_weights",
    "preview_sources",
]

_METRIC_FIELDS = ["step", "split", "loss", "rmsf", "correlation", "rmsf_r", "corr_r", "lr", "grad_norm",
                  "elapsed_s"]
_PATH_KEYS = ("store", "out_dir", "embeddings", "export", "keys_file")


@dataclass
class ResAxialTrainConfig:
    """Everything a ResAxial run needs (YAML keys have the same names).

    store, out_dir : paths (relative ones resolved against the YAML's folder).
    architecture : dict of ResAxialConfig fields.
    loss_mode : ``joint`` | ``rmsf`` | ``correlation``; rmsf_weight, corr_weight : floats (joint).
    correlation_label : ``cosine`` (ResAxial's, default) | ``dccm``.
    embeddings : optional ``.npz`` holding one (N, D) array per chain key
        (architecture.embed_dim must equal D).
    device : ``auto`` | ``cpu`` | ``cuda`` | ``cuda:K``.
    precision : ``auto`` (bf16 autocast on CUDA only) | ``bf16`` | ``fp32``.
    val_keys / test_keys : explicit splits; otherwise ``val_fraction`` of the chains
        (seeded) are held out for validation.  Test chains are never trained on.
    export : optional ``.safetensors`` path written at the end (config json beside it).
    kinds : label kinds to train on (default ``["md"]``); an RMSF-only kind (``md-rmsf``,
        e.g. mdCATH) has no correlation map, so it needs ``loss_mode: rmsf``.
    keys_file : optional text file of chain keys (one per line, ``#`` comments): only
        these chains enter the split (e.g. ``datasets/mdcath_split/train.txt``).
    """

    store: str | None = None
    out_dir: str = "runs/resaxial"
    model: str = "resaxial"
    architecture: dict = field(default_factory=dict)
    loss_mode: str = "joint"
    rmsf_weight: float = 1.0
    corr_weight: float = 1.0
    correlation_label: str = "cosine"
    embeddings: str | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 50
    schedule: str = "cosine"
    min_lr_factor: float = 0.1
    max_steps: int = 2000
    batch_size: int = 2
    crop_size: int = 256
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"
    num_threads: int | None = 1
    checkpoint_every: int = 200
    val_every: int = 100
    val_fraction: float = 0.2
    val_keys: list | None = None
    test_keys: list | None = None
    export: str | None = None
    progress: bool = True
    kinds: list | None = None
    keys_file: str | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "ResAxialTrainConfig":
        d = dict(d)
        check_known_keys(cls, d, "resaxial training config")
        cfg = cls(**d)
        if str(cfg.model).lower() != "resaxial":
            raise InputError(f"model must be 'resaxial' for train_resaxial, got {cfg.model!r}")
        try:
            ResAxialConfig.from_dict(cfg.architecture)
        except (ValueError, TypeError) as exc:
            raise InputError(f"architecture: {exc}") from None
        if cfg.loss_mode not in LOSS_MODES:
            raise InputError(f"loss_mode must be one of {', '.join(LOSS_MODES)}, got {cfg.loss_mode!r}")
        if cfg.correlation_label not in ("cosine", "dccm"):
            raise InputError(f"correlation_label must be 'cosine' or 'dccm', got {cfg.correlation_label!r}")
        if cfg.schedule not in ("cosine", "constant"):
            raise InputError(f"schedule must be 'cosine' or 'constant', got {cfg.schedule!r}")
        check_precision(cfg.precision)
        check_at_least_one(cfg, ("max_steps", "batch_size", "checkpoint_every", "val_every", "crop_size"))
        from .store import LABEL_KINDS, RMSF_ONLY_KINDS

        kinds = cfg.kinds if cfg.kinds is not None else ["md"]
        if not isinstance(kinds, list) or not kinds or any(k not in LABEL_KINDS for k in kinds):
            raise InputError(f"kinds must be a non-empty list of {', '.join(LABEL_KINDS)}, got {cfg.kinds!r}")
        if set(kinds) & set(RMSF_ONLY_KINDS) and cfg.loss_mode != "rmsf":
            raise InputError(f"kinds {kinds} include RMSF-only labels (no correlation map): "
                             f"use loss_mode: rmsf, not {cfg.loss_mode!r}")
        return cfg


def load_resaxial_config(path) -> ResAxialTrainConfig:
    """Read a YAML config (``model: resaxial``); relative paths resolve against its folder."""
    data = read_yaml_mapping(path, _PATH_KEYS)
    return ResAxialTrainConfig.from_dict(data)


def is_resaxial_config(path) -> bool:
    """True when the YAML file at ``path`` says ``model: resaxial`` (for the CLI's dispatch)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except Exception:
        return False
    return isinstance(data, dict) and str(data.get("model", "")).lower() == "resaxial"


@dataclass
class ResAxialTrainResult:
    """What :func:`train_resaxial` did."""

    step: int
    resumed_from: int
    history: list
    out_dir: Path
    checkpoint: Path
    n_parameters: int
    splits: dict
    model: ResAxial | None = None
    exported: Path | None = None

    def last(self, split: str = "val") -> dict:
        rows = [r for r in self.history if r["split"] == split]
        return rows[-1] if rows else {}

    def first(self, split: str = "val") -> dict:
        rows = [r for r in self.history if r["split"] == split]
        return rows[0] if rows else {}


# ----------------------------------------------------------------------------- data


class ResAxialData:
    """Chains of a label store held in memory as ResAxial examples.

    An example: ``ca`` [N, 3] Å (float32), ``rmsf`` [N] Å, ``correlation`` [N, N]
    (cosine or DCCM), optionally ``embeddings`` [N, D].
    """

    def __init__(self, store_path, keys, crop_size: int = 256, correlation_label: str = "cosine",
                 embeddings=None, multiple: int = 1):
        from .store import LabelStore

        self.crop_size, self.multiple = int(crop_size), int(multiple)
        self.items: dict = {}
        emb = None
        if embeddings is not None:
            if not Path(embeddings).is_file():
                raise FileNotFoundError(f"{embeddings}: no such embeddings file")
            emb = np.load(embeddings, allow_pickle=False)
        with LabelStore(store_path) as store:
            missing = [k for k in keys if k not in store]
            if missing:
                raise InputError(f"{store_path}: chains not in the label store: {', '.join(missing[:5])}")
            for k in keys:
                lab = store.get(k)
                corr = lab.cosine_correlation if correlation_label == "cosine" else lab.correlation
                if corr is None:  # RMSF-only labels (loss_mode rmsf): no map; NaN keeps it out of any metric
                    corr = np.full((len(lab), len(lab)), np.nan, dtype=np.float32)
                item = {"ca": np.asarray(lab.ca, dtype=np.float32),
                        "rmsf": np.asarray(lab.rmsf, dtype=np.float32),
                        "correlation": np.asarray(corr, dtype=np.float32)}
                if emb is not None:
                    if k not in emb.files:
                        raise InputError(f"{embeddings}: no embeddings for chain {k!r}")
                    e = np.asarray(emb[k], dtype=np.float32)
                    if e.ndim != 2 or e.shape[0] != len(lab):
                        raise InputError(f"{embeddings}: {k} has shape {e.shape}, expected ({len(lab)}, D)")
                    item["embeddings"] = e
                self.items[k] = item
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def example(self, key, rng: np.random.Generator | None = None) -> dict:
        """One chain, randomly cropped (``rng``) or centre-cropped (``rng=None``) to crop_size."""
        it = self.items[key]
        n = len(it["ca"])
        if n <= self.crop_size:
            return it
        start = int(rng.integers(0, n - self.crop_size + 1)) if rng is not None else (n - self.crop_size) // 2
        sl = slice(start, start + self.crop_size)
        return {k: (v[sl, sl] if k == "correlation" else v[sl]) for k, v in it.items()}

    def batch(self, seed: int, step: int, batch_size: int, rank: int = 0) -> dict:
        """The training batch of ``step`` for process ``rank``: chains drawn uniformly,
        random crops, padded.  (Rank 0 draws what a single process always drew.)"""
        entropy = [int(seed), int(step)] + ([int(rank)] if rank else [])
        rng = np.random.default_rng(entropy)
        keys = [self.keys[i] for i in rng.integers(0, len(self.keys), size=int(batch_size))]
        return collate_resaxial([self.example(k, rng) for k in keys], self.multiple)

    def full(self, key) -> dict:
        return collate_resaxial([self.example(key, None)], self.multiple)


# ----------------------------------------------------------------------------- helpers


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _upper(m: np.ndarray) -> np.ndarray:
    iu = np.triu_indices(m.shape[0], k=1)
    return m[iu]


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def _forward(net, batch: dict, device, precision: str) -> dict:
    """``rmsf`` and ``correlation`` of ``net`` (autocast per ``precision``) as float32."""
    with _autocast(torch.device(device), precision):
        out = net(batch["ca"], batch["mask"], batch.get("embeddings"))
    return {k: out[k].float() for k in ("rmsf", "correlation")}


@torch.no_grad()
def _per_chain(model: ResAxial, data: ResAxialData, keys, loss_mode, rmsf_weight, corr_weight, device,
               precision) -> dict:
    """{key: {"loss", "rmsf", "correlation", "rmsf_r", "corr_r"}} of each chain of ``keys``."""
    was = model.training
    model.eval()
    per = {}
    try:
        for k in keys:
            b = _to(data.full(k), device)
            out = _forward(model, b, device, precision)
            terms = resaxial_loss(out, b, loss_mode, rmsf_weight, corr_weight)
            n = int(b["mask"].sum())
            r_p, r_t = out["rmsf"][0, :n].cpu().numpy(), b["rmsf"][0, :n].cpu().numpy()
            c_p, c_t = out["correlation"][0, :n, :n].cpu().numpy(), b["correlation"][0, :n, :n].cpu().numpy()
            per[k] = {**{t: float(terms[t]) for t in ("loss", "rmsf", "correlation")},
                      "rmsf_r": _pearson(r_p, r_t), "corr_r": _pearson(_upper(c_p), _upper(c_t))}
    finally:
        model.train(was)
    return per


def _summarise(per: dict) -> dict:
    res = {t: sum(p[t] for p in per.values()) / max(1, len(per)) for t in ("loss", "rmsf", "correlation")}
    res["rmsf_r"] = float(np.nanmedian([p["rmsf_r"] for p in per.values()])) if per else float("nan")
    corr = [p["corr_r"] for p in per.values() if np.isfinite(p["corr_r"])]  # none for RMSF-only labels
    res["corr_r"] = float(np.median(corr)) if corr else float("nan")
    res["per_chain"] = {k: {"rmsf_r": p["rmsf_r"], "corr_r": p["corr_r"]} for k, p in per.items()}
    return res


def evaluate_resaxial(model: ResAxial, data: ResAxialData, keys=None, loss_mode="joint", rmsf_weight=1.0,
                      corr_weight=1.0, device="cpu", precision="fp32") -> dict:
    """Mean loss terms and per-chain Pearson r (RMSF; correlation over upper-triangle
    entries) over ``keys`` (each chain whole, centre-cropped to crop_size).

    ``precision``: ``fp32`` | ``bf16`` | ``auto`` (see :mod:`.runtime`).
    Returns ``{"loss", "rmsf", "correlation", "rmsf_r", "corr_r", "per_chain": {key: {...}}}``.
    """
    check_precision(precision)
    keys = list(keys if keys is not None else data.keys)
    return _summarise(_per_chain(model, data, keys, loss_mode, rmsf_weight, corr_weight, device, precision))


def _lr_lambda(cfg: ResAxialTrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        if cfg.schedule == "constant":
            return 1.0
        t = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _splits(cfg: ResAxialTrainConfig, all_keys: list) -> dict:
    test = list(cfg.test_keys or [])
    if cfg.val_keys is not None:
        val = list(cfg.val_keys)
    else:
        rest = [k for k in all_keys if k not in test]
        rng = np.random.default_rng(cfg.seed)
        n_val = int(round(cfg.val_fraction * len(rest)))
        n_val = min(n_val, len(rest) - 1) if len(rest) > 1 else 0
        val = sorted(rng.choice(rest, size=n_val, replace=False).tolist()) if n_val else []
    unknown = [k for k in val + test if k not in all_keys]
    if unknown:
        raise InputError(f"val_keys/test_keys not in the label store: {', '.join(unknown[:5])}")
    train = [k for k in all_keys if k not in set(val) | set(test)]
    if not train:
        raise InputError("no chains left for training after the val/test split")
    return {"train": train, "val": val, "test": test}


def export_resaxial_weights(model: ResAxial, path, metadata: dict | None = None) -> Path:
    """Write ``model``'s weights as safetensors (float32) and ``<stem>.json`` beside it
    (``model_config`` + ``metadata``).  Both written atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"model": "resaxial", "model_config": json.dumps(model.config.to_dict())}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    cfg_json = path.with_suffix(".json")
    tmp_json = cfg_json.with_name(f".{cfg_json.name}.tmp")
    tmp_json.write_text(json.dumps({"model": "resaxial", "model_config": model.config.to_dict(),
                                    **(metadata or {})}, indent=1, default=str))
    os.replace(tmp, path)
    os.replace(tmp_json, cfg_json)
    return path


def preview_sources() -> list:
    """The MDAnalysisTests trajectories the ``resaxial-preview`` weights were trained and
    checked on (real MD, tiny), as trajectory sources for
    :func:`~dynaprot_viz.training.ingest.ingest`:
    ``ingest(preview_sources(), "md_labels.h5")``.  Needs MDAnalysisTests."""
    from MDAnalysisTests import datafiles as d

    from .readers import trajectory_source

    folder = Path(d.PSF).parent
    amber = folder / "Amber"
    return [
        trajectory_source(d.PSF, [d.DCD], key="adk_dims"),
        trajectory_source(d.PSF, [d.DCD2], key="adk_dims2"),
        trajectory_source(folder / "adk_closed_NAMD.psf", [folder / "adk_gbis_tmd-fast1_NAMD.dcd"], key="adk_gbis"),
        trajectory_source(d.GRO, [d.XTC], key="adk_oplsaa"),
        trajectory_source(d.TPR_xvf, [folder / "cobrotoxin.xtc"], key="cobrotoxin"),
        trajectory_source(amber / "tz2.truncoct.parm7.bz2", [amber / "tz2.truncoct.nc"], key="tz2"),
    ]


# ----------------------------------------------------------------------------- main loop


def train_resaxial(store_path, config, on_step=None) -> ResAxialTrainResult:
    """Train (or resume) ResAxial on the chains of a label store.

    Parameters
    ----------
    store_path : path or None
        The HDF5 label store (:class:`~dynaprot_viz.training.store.LabelStore`);
        None: ``config.store``.
    config : ResAxialTrainConfig, dict or path to a YAML file
    on_step : callable(step, row), optional
        Called after every optimiser step.

    Returns
    -------
    ResAxialTrainResult
        ``history`` rows have the columns of ``metrics.csv``; ``model`` is the
        trained model (eval mode).
    """
    from tqdm.auto import tqdm

    from .store import LabelStore

    if isinstance(config, (str, os.PathLike)):
        cfg = load_resaxial_config(config)
    elif isinstance(config, dict):
        cfg = ResAxialTrainConfig.from_dict(config)
    elif isinstance(config, ResAxialTrainConfig):
        cfg = config
    else:
        raise TypeError(f"config must be a ResAxialTrainConfig, dict or YAML path, got {type(config).__name__}")
    store_path = Path(store_path if store_path is not None else (cfg.store or ""))
    if not store_path.is_file():
        raise FileNotFoundError(f"{store_path}: no such label store")
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    procs = start_processes(cfg.device)
    device, rank = procs.device, procs.rank
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    model_cfg = ResAxialConfig.from_dict(cfg.architecture)
    with LabelStore(store_path) as store:
        keys = list(store.keys(kind=cfg.kinds or "md"))  # MD labels by default: other kinds lack the maps
    if cfg.keys_file is not None:
        from .train import _read_keys_file

        allowed = _read_keys_file(cfg.keys_file)
        keys = [k for k in keys if k in allowed]
    splits = _splits(cfg, keys)
    data_args = dict(crop_size=cfg.crop_size, correlation_label=cfg.correlation_label,
                     embeddings=cfg.embeddings, multiple=model_cfg.multiple)
    train_ds = ResAxialData(store_path, splits["train"], **data_args)
    val_ds = ResAxialData(store_path, splits["val"], **data_args) if splits["val"] else None

    model = ResAxial(model_cfg).to(device)
    n_params = count_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))

    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / "checkpoints" / "last.pt"
    metrics_path = out_dir / "metrics.csv"
    step = 0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ck["model_config"] != json.dumps(model_cfg.to_dict(), sort_keys=True):
            raise InputError(f"{ckpt_path}: checkpoint was made with a different architecture; "
                             "use another out_dir or delete the checkpoint")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        step = int(ck["step"])
    procs.agree(step, "the step to resume from")
    resumed_from = step
    if procs.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        truncate_metrics(metrics_path, step, _METRIC_FIELDS)
        atomic_write_text(out_dir / "config.json", json.dumps(
            {"train": asdict(cfg), "architecture": model_cfg.to_dict(), "splits": splits,
             "store": str(store_path), "world_size": procs.world}, indent=1, default=str))
    # single-task loss modes leave the other head without a gradient: DDP must be told
    net = procs.wrap(model, find_unused_parameters=cfg.loss_mode != "joint")

    def checkpoint():
        if procs.main:
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                "scheduler": sched.state_dict(), "step": step,
                                "model_config": json.dumps(model_cfg.to_dict(), sort_keys=True)}, ckpt_path)

    def validate(elapsed):
        # each process evaluates its share of the chains (unwrapped model), then all are gathered
        per = {}
        for part in procs.gather(_per_chain(model, val_ds, procs.shard(val_ds.keys), cfg.loss_mode,
                                            cfg.rmsf_weight, cfg.corr_weight, device, cfg.precision)):
            per.update(part)
        ev = _summarise({k: per[k] for k in val_ds.keys})
        return {"step": step, "split": "val", "elapsed_s": elapsed,
                **{k: v for k, v in ev.items() if k != "per_chain"}}

    history: list = []
    t0 = time.perf_counter()
    bar = None
    try:
        if step == 0 and val_ds is not None:
            row = validate(0.0)
            history.append(row)
            if procs.main:
                append_metrics(metrics_path, [row], _METRIC_FIELDS)
        bar = tqdm(total=cfg.max_steps, initial=step, desc="train resaxial", unit="step",
                   disable=not cfg.progress or not procs.main, dynamic_ncols=True)
        model.train()
        while step < cfg.max_steps:
            batch = _to(train_ds.batch(cfg.seed, step, cfg.batch_size, rank), device)
            out = _forward(net, batch, device, cfg.precision)
            terms = resaxial_loss(out, batch, cfg.loss_mode, cfg.rmsf_weight, cfg.corr_weight)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            elapsed = round(time.perf_counter() - t0, 3)
            logged = dict(zip(terms, procs.mean([float(v.detach()) for v in terms.values()])))
            row = {"step": step, "split": "train", "lr": opt.param_groups[0]["lr"], "grad_norm": float(gnorm),
                   "elapsed_s": elapsed, **logged}
            rows = [row]
            if val_ds is not None and (step % cfg.val_every == 0 or step == cfg.max_steps):
                rows.append(validate(elapsed))
            history.extend(rows)
            if procs.main:
                append_metrics(metrics_path, rows, _METRIC_FIELDS)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}", refresh=False)
            if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
                checkpoint()
            if on_step is not None:
                on_step(step, row)
        procs.barrier()  # the last checkpoint is on disk when any process returns
    finally:
        if bar is not None:
            bar.close()
        procs.close()
    model.eval()
    exported = None
    if cfg.export and procs.main:
        exported = export_resaxial_weights(model, cfg.export, {
            "step": step, "splits": splits, "store": str(store_path), "loss_mode": cfg.loss_mode,
            "correlation_label": cfg.correlation_label,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": f"{platform.machine()} {device.type}, torch {torch.__version__}, "
                        f"{torch.get_num_threads()} thread(s) x {procs.world} process(es)",
            "precision": cfg.precision,
            "final_val": {k: v for k, v in (history[-1] if history and history[-1]["split"] == "val" else {}).items()},
        })
    return ResAxialTrainResult(step=step, resumed_from=resumed_from, history=history, out_dir=out_dir,
                               checkpoint=ckpt_path, n_parameters=n_params, splits=splits, model=model,
                               exported=exported)
