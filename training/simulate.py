"""Implicit-solvent MD of single protein chains with OpenMM, for training labels.

Per chain (one structure file, one chain of it):

1. **Preparation** with PDBFixer: other chains, ligands and water removed, existing
   hydrogens stripped (their naming varies between force fields), non-standard
   residues replaced by their parents, missing internal residues and missing heavy
   atoms added (missing terminal residues are not grown), hydrogens added at pH 7.
   The prepared structure is written as ``<key>.reference.pdb``: its C-alpha atoms
   are those of the input, and it is the superposition target for the labels.
2. **System**: Amber ff14SB (``amber14-all.xml``), no cutoff, HBonds constraints,
   hydrogen mass repartitioning to 1.5 amu, and implicit solvent GB-OBC2 through
   OpenMM's dedicated :class:`openmm.GBSAOBCForce` (mbondi2 radii and OBC scales of
   ``implicit/obc2.xml``, ACE surface term, solvent dielectric 78.5).  It gives the
   same energy as ``implicit/obc2.xml``'s custom GB force (tested) and runs several
   times faster on CPU (SIMULATION.md).
3. **Dynamics**: LangevinMiddleIntegrator 300 K, 1/ps, 4 fs; energy minimisation,
   a short equilibration (velocities drawn at 300 K), then production that records
   the C-alpha coordinates every 10 ps.

Outputs in ``OUT/<key>/``:

- ``<key>.ca.npz``: ``ca`` (F, N, 3) int32 in units of 0.01 Å (``ca_scale`` = 0.01,
  so coordinates are exact to the 0.01 Å they were rounded to), ``time_ps`` (F,)
  float64 (production time of each frame), and residue ids (``residue_chain``,
  ``residue_number``, ``residue_icode``, ``residue_name``) of the N C-alpha atoms;
- ``<key>.reference.pdb``: the prepared structure (all atoms, hydrogens);
- ``<key>.provenance.json``: force field, solvent model, temperature, ns, frames,
  platform, OpenMM version, wall time, input file and chain, seed.

Resuming: the state (positions, velocities, time; OpenMM's platform-independent
XML, gzipped) and the frames so far are saved together every
``checkpoint_frames`` frames in ``OUT/<key>/.work/``; a rerun continues from there,
and a rerun with a larger ``ns`` extends a finished chain.  A chain that fails is
logged (``OUT/<key>/error.txt`` and :attr:`CampaignResult.failed`) and skipped.

All coordinates are Å at the interfaces of this module (OpenMM uses nm inside).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import re
import signal
import threading
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError

__all__ = [
    "SimulationConfig",
    "ChainJob",
    "ChainResult",
    "CampaignResult",
    "chain_jobs",
    "prepare_chain",
    "build_system",
    "select_platform",
    "simulate_chain",
    "simulate",
    "load_trajectory",
    "trajectory_source",
    "ingest_outputs",
    "FORCE_FIELD",
    "SOLVENT_MODEL",
    "CA_SCALE",
]

FORCE_FIELD = "amber14-all.xml"
SOLVENT_MODEL = "GB-OBC2 (openmm.GBSAOBCForce, mbondi2 radii, ACE surface term)"
CA_SCALE = 0.01  # Å per integer unit in <key>.ca.npz
NM_TO_A = 10.0
_R_KJ = 0.00831446261815324  # gas constant, kJ/(mol K)
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def _require_openmm():
    try:
        import openmm  # noqa: F401
        import pdbfixer  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "simulate needs OpenMM and PDBFixer: pip install 'dynaprot-viz[md]' "
            "(or pip install openmm pdbfixer)"
        ) from exc
    import openmm

    return openmm


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of one simulation campaign.

    Attributes
    ----------
    ns : float
        Production length per chain, nanoseconds.
    temperature_K : float
        Thermostat temperature, kelvin (300).
    timestep_fs : float
        Integration step, femtoseconds (4, allowed by HMR + HBonds constraints).
    friction_per_ps : float
        Langevin collision rate, 1/ps.
    hydrogen_mass_amu : float
        Hydrogen mass after repartitioning, amu (1.5).
    save_interval_ps : float
        Time between saved C-alpha frames, ps (10); a multiple of the step.
    equilibration_ps : float
        Unrecorded dynamics after minimisation, ps.
    minimize_iterations : int
        L-BFGS iterations (0: until converged).
    ph : float
        pH for protonation states.
    platform : str
        ``"auto"`` (CUDA when it works, else CPU), ``"CPU"`` or ``"CUDA"``.
    threads : int or None
        CPU platform threads (None: OpenMM's default, all cores).
    seed : int or None
        Base random seed (per chain: ``seed + crc32(key)``); None draws one.
    checkpoint_frames : int
        Frames between checkpoints.
    max_wall_s : float or None
        Stop a chain at the first checkpoint after it has run this long (so up to
        ``checkpoint_frames`` frames later); a rerun resumes it.
    """

    ns: float
    temperature_K: float = 300.0
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    hydrogen_mass_amu: float = 1.5
    save_interval_ps: float = 10.0
    equilibration_ps: float = 100.0
    minimize_iterations: int = 0
    ph: float = 7.0
    platform: str = "auto"
    threads: int | None = None
    seed: int | None = None
    checkpoint_frames: int = 10
    max_wall_s: float | None = None

    def __post_init__(self):
        for name in ("ns", "temperature_K", "timestep_fs", "save_interval_ps", "hydrogen_mass_amu"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v > 0):
                raise InputError(f"{name} must be a positive number, got {v!r}")
        if self.equilibration_ps < 0 or self.friction_per_ps <= 0:
            raise InputError("equilibration_ps must be >= 0 and friction_per_ps > 0")
        if int(self.minimize_iterations) < 0:
            raise InputError(f"minimize_iterations must be >= 0, got {self.minimize_iterations!r}")
        if self.platform not in ("auto", "CPU", "CUDA"):
            raise InputError(f"platform must be 'auto', 'CPU' or 'CUDA', got {self.platform!r}")
        if self.threads is not None and int(self.threads) < 1:
            raise InputError(f"threads must be >= 1, got {self.threads!r}")
        if int(self.checkpoint_frames) < 1:
            raise InputError(f"checkpoint_frames must be >= 1, got {self.checkpoint_frames!r}")
        steps = self.save_interval_ps * 1000.0 / self.timestep_fs
        if abs(steps - round(steps)) > 1e-6:
            raise InputError(
                f"save_interval_ps ({self.save_interval_ps}) must be a multiple of the time step "
                f"({self.timestep_fs} fs)"
            )

    @property
    def steps_per_frame(self) -> int:
        return int(round(self.save_interval_ps * 1000.0 / self.timestep_fs))

    @property
    def n_frames(self) -> int:
        """Production frames for ``ns`` (rounded down, at least 1)."""
        return max(1, int(np.floor(self.ns * 1000.0 / self.save_interval_ps + 1e-9)))

    @property
    def equilibration_steps(self) -> int:
        return int(round(self.equilibration_ps * 1000.0 / self.timestep_fs))


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class ChainJob:
    """One chain to simulate: ``key`` (output name), input ``path`` and ``chain`` id
    (None: the first protein chain)."""

    key: str
    path: Path
    chain: str | None = None


def _key_for(path: Path, chain: str | None) -> str:
    stem = path.name
    for suf in (".gz", ".pdb", ".ent", ".cif", ".mmcif"):
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
    key = f"{stem}_{chain}" if chain else stem
    key = _KEY_BAD.sub("_", key).lstrip("_.-") or "chain"
    return key


def chain_jobs(structures, keys=None) -> list[ChainJob]:
    """Turn ``FILE`` or ``FILE:CHAIN`` strings into :class:`ChainJob` s.

    ``FILE:CHAIN`` is read as a chain only when ``FILE`` exists and ``FILE:CHAIN``
    does not.  Keys: ``<stem>_<CHAIN>`` (or ``<stem>``), made unique, unless
    ``keys`` gives them.
    """
    jobs, seen = [], set()
    structures = list(structures)
    if keys is not None and len(keys) != len(structures):
        raise InputError(f"keys: {len(keys)} given for {len(structures)} structures")
    for i, s in enumerate(structures):
        text = os.fspath(s)
        path, chain = Path(text), None
        if ":" in text and not path.exists():
            head, _, tail = text.rpartition(":")
            if Path(head).exists() and re.fullmatch(r"[A-Za-z0-9]{1,4}", tail):
                path, chain = Path(head), tail
        if not path.exists():
            raise FileNotFoundError(f"{text}: no such file")
        key = keys[i] if keys is not None else _key_for(path, chain)
        base, n = key, 2
        while key in seen:
            key = f"{base}-{n}"
            n += 1
        seen.add(key)
        jobs.append(ChainJob(key=key, path=path, chain=chain))
    return jobs


# --------------------------------------------------------------------------- preparation


def _open_fixer(path: Path):
    from pdbfixer import PDBFixer

    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else open
    base = name[:-3] if name.endswith(".gz") else name
    with opener(path, "rt") as fh:
        text = fh.read()
    if not text.strip():
        raise InputError(f"{path}: empty file")
    try:
        if base.endswith((".cif", ".mmcif")):
            return PDBFixer(pdbxfile=io.StringIO(text))
        return PDBFixer(pdbfile=io.StringIO(text))
    except Exception as exc:
        raise InputError(f"{path}: cannot be read by PDBFixer ({_one_line(exc)})") from None


def prepare_chain(path, chain: str | None = None, ph: float = 7.0, seed: int = 0):
    """Prepare one chain for simulation (module docstring, step 1).

    Parameters
    ----------
    path : path
        PDB or mmCIF file, plain or gzipped.
    chain : str, optional
        Chain id; default the first chain with amino-acid residues.
    ph : float
        pH for the hydrogens.
    seed : int
        Seed for PDBFixer's placement of missing atoms.

    Returns
    -------
    (openmm.app.Topology, positions (n_atoms, 3) Å as a float64 ndarray, chain id)
    """
    _require_openmm()
    from openmm.app import Modeller, element
    from pdbfixer.pdbfixer import proteinResidues

    path = Path(path)
    fixer = _open_fixer(path)
    chains = list(fixer.topology.chains())
    fixer.findNonstandardResidues()
    nonstd = {r for r, _ in fixer.nonstandardResidues}
    protein = [c for c in chains
               if sum(1 for r in c.residues() if r.name in proteinResidues or r in nonstd) >= 2]
    if not protein:
        raise InputError(f"{path}: no protein chain found")
    if chain is None:
        target = protein[0]
    else:
        # blank chain ids (MD files) are " " in OpenMM and "" in gemmi: compare them stripped
        named = [c for c in chains if c.id.strip() == chain.strip()]
        if not named:
            raise InputError(f"{path}: no chain {chain!r}; chains: "
                             f"{', '.join(repr(c.id.strip()) for c in chains)}")
        target = named[0]
    fixer.removeChains(chainIndices=[c.index for c in chains if c is not target])
    fixer.removeHeterogens(keepWater=False)
    # strip existing hydrogens: their names differ between force fields (CHARMM's HN, HT1...)
    mod = Modeller(fixer.topology, fixer.positions)
    mod.delete([a for a in mod.topology.atoms() if a.element is element.hydrogen])
    fixer.topology, fixer.positions = mod.topology, mod.positions
    fixer.findMissingResidues()
    chain_lengths = {c.index: len(list(c.residues())) for c in fixer.topology.chains()}
    fixer.missingResidues = {k: v for k, v in fixer.missingResidues.items()
                             if 0 < k[1] < chain_lengths.get(k[0], 0)}  # internal gaps only
    fixer.findNonstandardResidues()
    fixer.replaceNonstandardResidues()
    fixer.removeHeterogens(keepWater=False)
    fixer.findMissingAtoms()
    fixer.addMissingAtoms(seed=int(seed) % (2**31))
    fixer.addMissingHydrogens(ph)
    n_res = sum(1 for r in fixer.topology.residues() if r.name in proteinResidues)
    if n_res < 2:
        raise InputError(f"{path}: chain {target.id!r} has fewer than 2 amino-acid residues")
    pos = np.array([[v.x, v.y, v.z] for v in fixer.positions], dtype=np.float64) * NM_TO_A
    if not np.all(np.isfinite(pos)):
        raise InputError(f"{path}: non-finite coordinates after preparation")
    return fixer.topology, pos, target.id.strip()


def _obc2_force(system, topology):
    """A dedicated :class:`openmm.GBSAOBCForce` with ``implicit/obc2.xml``'s parameters."""
    import openmm
    from openmm.app.internal.customgbforces import GBSAOBC2Force

    nb = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(nb) != 1:
        raise InputError("implicit solvent needs exactly one NonbondedForce in the system")
    nb = nb[0]
    nb.setReactionFieldDielectric(1.0)
    params = GBSAOBC2Force.getStandardParameters(topology)  # (radius nm, scale) per atom, mbondi2
    gb = openmm.GBSAOBCForce()
    gb.setSolventDielectric(78.5)
    gb.setSoluteDielectric(1.0)
    gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
    for i, (radius, scale) in enumerate(params):
        charge = nb.getParticleParameters(i)[0]
        gb.addParticle(charge, float(radius), float(scale))
    return gb


def build_system(topology, hydrogen_mass_amu: float = 1.5, solvent: str = "obc2"):
    """amber14 + implicit solvent, no cutoff, HBonds constraints, HMR.

    ``solvent``: ``"obc2"`` (dedicated GBSAOBCForce, default), ``"obc2-custom"``
    (``implicit/obc2.xml``'s CustomGBForce; slower, for checking) or ``"vacuum"``.
    """
    _require_openmm()
    from openmm import unit
    from openmm.app import HBonds, NoCutoff, ForceField

    kw = dict(nonbondedMethod=NoCutoff, constraints=HBonds,
              hydrogenMass=hydrogen_mass_amu * unit.amu)
    if solvent == "obc2-custom":
        ff = ForceField(FORCE_FIELD, "implicit/obc2.xml")
        return ff.createSystem(topology, **kw)
    ff = ForceField(FORCE_FIELD)
    system = ff.createSystem(topology, **kw)
    if solvent == "obc2":
        system.addForce(_obc2_force(system, topology))
    elif solvent != "vacuum":
        raise InputError(f"solvent must be 'obc2', 'obc2-custom' or 'vacuum', got {solvent!r}")
    return system


def select_platform(name: str = "auto", threads: int | None = None):
    """(openmm.Platform, properties dict): CUDA when asked or, for ``"auto"``, when it
    is present and initialises; CPU otherwise."""
    openmm = _require_openmm()
    if name in ("auto", "CUDA"):
        try:
            plat = openmm.Platform.getPlatformByName("CUDA")
            # a context on a tiny system proves the driver and the plugin work
            s = openmm.System()
            s.addParticle(1.0)
            openmm.Context(s, openmm.VerletIntegrator(0.001), plat, {"Precision": "mixed"})
            return plat, {"Precision": "mixed"}
        except Exception as exc:
            if name == "CUDA":
                raise InputError(f"--platform CUDA: not available ({_one_line(exc)})") from None
    plat = openmm.Platform.getPlatformByName("CPU")
    return plat, ({"Threads": str(int(threads))} if threads else {})


# --------------------------------------------------------------------------- one chain


@dataclass
class ChainResult:
    """What :func:`simulate_chain` did for one chain.

    status : "done" (target reached), "partial" (stopped by the wall limit, resumable),
    "skipped" (already done), "failed" (reason in ``error``).
    """

    key: str
    status: str
    n_frames: int = 0
    ns: float = 0.0
    wall_s: float = 0.0
    folder: Path | None = None
    error: str | None = None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _residue_ids(topology):
    from pdbfixer.pdbfixer import proteinResidues

    ca_idx, ids = [], []
    for res in topology.residues():
        if res.name not in proteinResidues:
            continue
        for a in res.atoms():
            if a.name == "CA":
                ca_idx.append(a.index)
                ids.append((res.chain.id.strip(), int(re.sub(r"[^0-9-]", "", res.id) or 0),
                            (res.insertionCode or "").strip(), res.name))
                break
    return np.array(ca_idx, dtype=np.int64), ids


def _ids_arrays(ids) -> dict:
    return {
        "residue_chain": np.array([i[0] for i in ids], dtype="U4"),
        "residue_number": np.array([i[1] for i in ids], dtype=np.int64),
        "residue_icode": np.array([i[2] for i in ids], dtype="U1"),
        "residue_name": np.array([i[3] for i in ids], dtype="U4"),
    }


def _to_int(ca_A: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(ca_A, dtype=np.float64) / CA_SCALE).astype(np.int32)


def _atomic_save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".part-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".part-{os.getpid()}-{path.name}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _chain_seed(cfg: SimulationConfig, key: str) -> int:
    base = cfg.seed if cfg.seed is not None else int.from_bytes(os.urandom(4), "little")
    return (int(base) + zlib.crc32(key.encode())) % (2**31 - 1)


def simulate_chain(job: ChainJob, out, cfg: SimulationConfig, progress: bool = False) -> ChainResult:
    """Prepare, minimise, equilibrate and run one chain; resumable (module docstring).

    Never raises for a problem of the chain itself: the result's ``status`` is
    ``"failed"`` with a one-line ``error`` and the traceback in ``<key>/error.txt``.
    """
    folder = Path(out) / job.key
    t0 = time.monotonic()
    try:
        return _simulate_chain(job, folder, cfg, progress, t0)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "error.txt").write_text(f"{job.path}:{job.chain or ''}\n{traceback.format_exc()}")
        return ChainResult(job.key, "failed", folder=folder, wall_s=time.monotonic() - t0,
                           error=_one_line(exc) + _kept_frames(folder, job.key))


def _kept_frames(folder: Path, key: str) -> str:
    """Where MD already done for a failed chain lies (never deleted): ``""`` when none."""
    for path in (folder / f"{key}.ca.npz", folder / ".work" / "frames.npz"):
        try:
            with np.load(path) as z:
                n = int(z["ca"].shape[0])
        except Exception:
            continue
        if n:
            return f"; {n} frames of MD kept in {path} (a rerun continues from them)"
    return ""


def _simulate_chain(job: ChainJob, folder: Path, cfg: SimulationConfig, progress: bool, t0: float):
    openmm = _require_openmm()
    from openmm import app, unit

    key = job.key
    work = folder / ".work"
    ca_path = folder / f"{key}.ca.npz"
    ref_path = folder / f"{key}.reference.pdb"
    prov_path = folder / f"{key}.provenance.json"
    state_path = work / "state.xml.gz"
    frames_path = work / "frames.npz"
    meta_path = work / "meta.json"
    target = cfg.n_frames

    if prov_path.exists() and ca_path.exists():
        prov = json.loads(prov_path.read_text())
        done = int(prov.get("n_frames", 0))
        if done >= target and float(prov.get("save_interval_ps", -1)) == cfg.save_interval_ps:
            return ChainResult(key, "skipped", n_frames=done, ns=done * cfg.save_interval_ps / 1000,
                               folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    err = folder / "error.txt"
    if err.exists():
        err.unlink()

    # ---- preparation (once; the reference PDB is the record of it)
    if ref_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if float(meta["save_interval_ps"]) != cfg.save_interval_ps:
            raise InputError(f"{key}: existing run saved every {meta['save_interval_ps']} ps, "
                             f"not {cfg.save_interval_ps}; use another --out")
        pdb = app.PDBFile(str(ref_path))
        topology = pdb.topology
        positions_A = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) * NM_TO_A
        seed = int(meta["seed"])
    else:
        seed = _chain_seed(cfg, key)
        topology, positions_A, chain_id = prepare_chain(job.path, job.chain, ph=cfg.ph, seed=seed)
        buf = io.StringIO()
        app.PDBFile.writeFile(topology, (positions_A / NM_TO_A) * unit.nanometer, buf, keepIds=True)
        _atomic_write(ref_path, buf.getvalue().encode())
        meta = {"seed": seed, "input": os.fspath(job.path), "chain": chain_id,
                "save_interval_ps": cfg.save_interval_ps, "minimized": False,
                "input_sha256": hashlib.sha256(Path(job.path).read_bytes()).hexdigest()}
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
        # re-read so that topology/positions are exactly those of the written file
        pdb = app.PDBFile(str(ref_path))
        topology = pdb.topology
        positions_A = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) * NM_TO_A

    ca_idx, ids = _residue_ids(topology)
    if len(ca_idx) < 2:
        raise InputError(f"{key}: fewer than 2 C-alpha atoms after preparation")

    frames = np.zeros((0, len(ca_idx), 3), dtype=np.int32)
    resume = state_path.exists() and frames_path.exists()
    noise_seed = seed
    if resume:
        with np.load(frames_path) as z:
            frames = np.array(z["ca"])
        n_saved = int(json.loads(meta_path.read_text()).get("frames_at_state", frames.shape[0]))
        frames = frames[:n_saved]
        if frames.shape[1] != len(ca_idx):
            raise InputError(f"{key}: checkpoint has {frames.shape[1]} C-alpha, reference {len(ca_idx)}")
        # a fresh noise stream for the continuation (the same seed would replay segment one's)
        noise_seed = seed + 7919 * (n_saved + 1)

    system = build_system(topology, cfg.hydrogen_mass_amu, "obc2")
    integrator = openmm.LangevinMiddleIntegrator(cfg.temperature_K * unit.kelvin,
                                                 cfg.friction_per_ps / unit.picosecond,
                                                 cfg.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(noise_seed % (2**31 - 1) or 1)  # read at context creation
    platform, props = select_platform(cfg.platform, cfg.threads)
    sim = app.Simulation(topology, system, integrator, platform, props)

    if resume:
        with gzip.open(state_path, "rt") as fh:
            sim.context.setState(openmm.XmlSerializer.deserialize(fh.read()))
    else:
        sim.context.setPositions((positions_A / NM_TO_A) * unit.nanometer)
        sim.minimizeEnergy(maxIterations=int(cfg.minimize_iterations))
        sim.context.setVelocitiesToTemperature(cfg.temperature_K * unit.kelvin, seed % (2**31 - 1) or 1)
        if cfg.equilibration_steps:
            sim.step(cfg.equilibration_steps)
        sim.context.setTime(0.0)
        meta["minimized"] = True
        meta["equilibration_ps"] = cfg.equilibration_ps
        meta["minimize_iterations"] = int(cfg.minimize_iterations)

    def checkpoint():
        state = sim.context.getState(getPositions=True, getVelocities=True, getParameters=True)
        _atomic_write(state_path, gzip.compress(openmm.XmlSerializer.serialize(state).encode(), 6))
        _atomic_save_npz(frames_path, ca=frames)
        meta["frames_at_state"] = int(frames.shape[0])
        meta["wall_s"] = float(meta.get("wall_s", 0.0)) + (time.monotonic() - seg_t0[0])
        seg_t0[0] = time.monotonic()
        meta["platform"] = platform.getName()
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode())

    seg_t0 = [t0]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=target, initial=frames.shape[0], desc=key, unit="frame", leave=False,
                   dynamic_ncols=True)
    stopped = False
    # degrees of freedom for the kinetic temperature: 3 per massive particle, minus
    # constraints, minus 3 for the centre-of-mass motion remover
    dof = 3 * sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0) \
        - system.getNumConstraints() \
        - (3 if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()) else 0)
    temps = []
    try:
        buf = []
        while frames.shape[0] + len(buf) < target:
            sim.step(cfg.steps_per_frame)
            st = sim.context.getState(getPositions=True, getEnergy=True)
            temps.append(2.0 * st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) / (dof * _R_KJ))
            xyz = st.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[ca_idx] * NM_TO_A
            if not np.all(np.isfinite(xyz)) or np.abs(xyz).max() > 1e5:
                raise InputError(f"{key}: simulation blew up at frame {frames.shape[0] + len(buf)}")
            buf.append(_to_int(xyz))
            if bar is not None:
                bar.update(1)
            if len(buf) >= cfg.checkpoint_frames or frames.shape[0] + len(buf) >= target:
                frames = np.concatenate([frames, np.stack(buf)])
                buf = []
                meta["temperature_sum_K"] = float(meta.get("temperature_sum_K", 0.0)) + float(np.sum(temps))
                meta["temperature_sq_sum_K2"] = (float(meta.get("temperature_sq_sum_K2", 0.0))
                                                 + float(np.sum(np.square(temps))))
                meta["temperature_n"] = int(meta.get("temperature_n", 0)) + len(temps)
                temps = []
                checkpoint()
                if cfg.max_wall_s is not None and time.monotonic() - t0 > cfg.max_wall_s \
                        and frames.shape[0] < target:
                    stopped = True
                    break
        if buf:  # not reached: the loop flushes at the target (kept for safety)
            frames = np.concatenate([frames, np.stack(buf)])
            checkpoint()
    finally:
        if bar is not None:
            bar.close()

    n = int(frames.shape[0])
    if n == 0:
        return ChainResult(key, "partial", folder=folder, wall_s=time.monotonic() - t0)
    # the published trajectory and provenance (written also for a partial run, consistently)
    time_ps = (np.arange(n) + 1) * cfg.save_interval_ps
    _atomic_save_npz(ca_path, ca=frames, ca_scale=np.float64(CA_SCALE), time_ps=time_ps, **_ids_arrays(ids))
    prov = {
        "key": key,
        "input": meta["input"],
        "input_sha256": meta.get("input_sha256"),
        "chain": meta["chain"],
        "n_residues": len(ca_idx),
        "n_atoms": topology.getNumAtoms(),
        "force_field": f"{FORCE_FIELD} (Amber ff14SB)",
        "solvent_model": SOLVENT_MODEL,
        "preparation": f"PDBFixer {_pdbfixer_version()}: heterogens and water removed, hydrogens "
                       f"re-added at pH {cfg.ph}, non-standard residues replaced, internal missing "
                       "residues and missing atoms added",
        "temperature_K": cfg.temperature_K,
        "integrator": "LangevinMiddleIntegrator",
        "friction_per_ps": cfg.friction_per_ps,
        "timestep_fs": cfg.timestep_fs,
        "hydrogen_mass_amu": cfg.hydrogen_mass_amu,
        "constraints": "HBonds",
        "nonbonded": "NoCutoff",
        "minimize_iterations": meta.get("minimize_iterations"),
        "equilibration_ps": meta.get("equilibration_ps"),
        "save_interval_ps": cfg.save_interval_ps,
        "n_frames": n,
        "ns": n * cfg.save_interval_ps / 1000.0,
        "complete": n >= target,
        "temperature_mean_K": (round(meta["temperature_sum_K"] / meta["temperature_n"], 2)
                               if meta.get("temperature_n") else None),
        "temperature_sd_K": (round(float(np.sqrt(max(meta["temperature_sq_sum_K2"] / meta["temperature_n"]
                                                     - (meta["temperature_sum_K"] / meta["temperature_n"]) ** 2,
                                                     0.0))), 2) if meta.get("temperature_n") else None),
        "platform": meta.get("platform", platform.getName()),
        "platform_properties": props,
        "openmm_version": openmm.__version__,
        "wall_s": round(float(meta.get("wall_s", 0.0)), 1),
        "seed": seed,
        "coordinates": f"C-alpha, int32 in units of {CA_SCALE} A (ca * ca_scale = A)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(prov_path, json.dumps(prov, indent=1).encode())
    status = "done" if n >= target else "partial"
    return ChainResult(key, status, n_frames=n, ns=prov["ns"], wall_s=time.monotonic() - t0, folder=folder)


def _pdbfixer_version() -> str:
    try:
        from importlib.metadata import version

        return version("pdbfixer")
    except Exception:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------- campaign


@dataclass
class CampaignResult:
    """What :func:`simulate` did.

    chains : dict key -> ChainResult (every chain, in input order)
    failed : dict key -> one-line reason
    ingest : the :class:`~dynaprot_viz.training.ingest.IngestResult` when a store was given
    store_error : one-line reason when storing the labels failed as a whole (the
        trajectories stay on disk: :meth:`unstored` lists them)
    """

    out: Path
    chains: dict = field(default_factory=dict)
    ingest: object = None
    store_error: str | None = None

    @property
    def failed(self) -> dict:
        return {k: r.error for k, r in self.chains.items() if r.status == "failed"}

    @property
    def ok(self) -> bool:
        return not self.failed and self.store_error is None and (self.ingest is None or self.ingest.ok)

    def trajectory(self, key: str) -> Path:
        """The C-alpha trajectory file of chain ``key`` (``OUT/<key>/<key>.ca.npz``)."""
        return self.out / key / f"{key}.ca.npz"

    def unstored(self) -> dict:
        """{key: one-line reason} of the chains whose MD finished (the trajectory is on
        disk) but whose labels did not reach the store."""
        if self.store_error is not None:
            return {k: self.store_error for k, r in self.chains.items()
                    if r.status != "failed" and self.trajectory(k).exists()}
        if self.ingest is None:
            return {}
        return {k: v for k, v in self.ingest.failed.items() if self.trajectory(k).exists()}

    def summary(self) -> str:
        count = {}
        for r in self.chains.values():
            count[r.status] = count.get(r.status, 0) + 1
        ns = sum(r.ns for r in self.chains.values())
        lines = [f"{self.out}: " + ", ".join(f"{v} {k}" for k, v in count.items())
                 + f"; {ns:.3f} ns of production in all"]
        lines += [f"  {k}: {r.status} {r.n_frames} frames ({r.ns:.3f} ns, {r.wall_s:.0f} s)"
                  for k, r in self.chains.items() if r.status != "failed"]
        lines += [f"  failed {k}: {v}" for k, v in self.failed.items()]
        if self.ingest is not None:
            lines.append(self.ingest.summary())
        if self.store_error is not None:
            lines.append(f"  storing labels failed: {self.store_error}")
        lines += [f"  {k}: MD kept in {self.trajectory(k)}, labels not stored" for k in self.unstored()]
        return "\n".join(lines)


def _worker(args):
    job, out, cfg = args
    return simulate_chain(job, out, cfg, progress=False)


def simulate(structures, out, cfg: SimulationConfig, workers: int = 1, store=None, keys=None,
             progress: bool = True) -> CampaignResult:
    """Simulate every chain (in ``workers`` processes) and optionally ingest the labels.

    Parameters
    ----------
    structures : iterable of path or ``"FILE:CHAIN"`` str, or of :class:`ChainJob`
    out : path
        Output folder (one sub-folder per chain).
    cfg : SimulationConfig
    workers : int
        Chains run in parallel processes (a GPU is kept busy by several small systems).
    store : path, optional
        Label store (HDF5) that receives the labels of every chain that has frames.
    keys : list of str, optional
        Output names, one per structure.
    """
    structures = list(structures)
    jobs = [s for s in structures if isinstance(s, ChainJob)]
    if len(jobs) != len(structures):
        jobs = chain_jobs(structures, keys)
    if not jobs:
        raise InputError("no structures given")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = CampaignResult(out=out)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="simulate", unit="chain", disable=not progress, dynamic_ncols=True)
    if int(workers) <= 1:
        for job in jobs:
            bar.set_description_str(f"simulate {job.key}")
            r = simulate_chain(job, out, cfg, progress=progress)
            _record(result, r, bar)
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        # `kill PID` (SIGTERM) would end this process at once and leave the workers
        # running as orphans; as an interrupt it leaves the Pool's `with`, which
        # terminates them (their chains resume from the last checkpoint)
        previous = _sigterm_as_interrupt()
        try:
            with ctx.Pool(int(workers)) as pool:
                for r in pool.imap_unordered(_worker, [(j, out, cfg) for j in jobs]):
                    _record(result, r, bar)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        result.chains = {j.key: result.chains[j.key] for j in jobs}
    bar.close()
    if store is not None:
        ready = [j.key for j in jobs if result.chains[j.key].n_frames >= 3]
        # a failure here must not cost the MD: the trajectories are already on disk, and
        # a rerun skips the finished chains and only stores their labels
        try:
            result.ingest = ingest_outputs([out / k for k in ready], store, progress=progress)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            result.store_error = f"{store}: {_one_line(exc)}"
            warnings.warn(f"simulate: storing labels in {store} failed ({_one_line(exc)}); the MD of "
                          f"{len(ready)} chain(s) is kept in {out}", stacklevel=2)
    return result


def _sigterm_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt in this (main) thread; returns the previous
    handler, or None where signals cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def _record(result, r: ChainResult, bar) -> None:
    result.chains[r.key] = r
    if r.status == "failed":
        warnings.warn(f"simulate: {r.key} failed: {r.error}", stacklevel=3)
    bar.update(1)
    bar.set_postfix_str(f"{sum(c.ns for c in result.chains.values()):.2f} ns", refresh=False)


# --------------------------------------------------------------------------- outputs -> labels


def load_trajectory(folder):
    """Read a chain's outputs.

    Returns
    -------
    dict with ``ca`` (F, N, 3) float64 Å, ``time_ps`` (F,), ``reference`` (the
    :class:`~dynaprot_viz.core.structure.ProteinChain` of ``<key>.reference.pdb``),
    ``provenance`` (dict), ``key``.
    """
    from dynaprot_viz.core.structure import load_chain

    folder = Path(folder)
    key = folder.name
    ca_path = folder / f"{key}.ca.npz"
    ref_path = folder / f"{key}.reference.pdb"
    if not ref_path.exists():
        alt = folder / f"{key}.reference.pdb.gz"
        ref_path = alt if alt.exists() else ref_path
    prov_path = folder / f"{key}.provenance.json"
    for p in (ca_path, ref_path, prov_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
    with np.load(ca_path) as z:
        ca = z["ca"].astype(np.float64) * float(z["ca_scale"])
        time_ps = np.array(z["time_ps"], dtype=np.float64)
        numbers = np.array(z["residue_number"])
    prov = json.loads(prov_path.read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the reference holds one chain; a blank id (" " from OpenMM, "" in gemmi) names none
        ref = load_chain(ref_path, (prov.get("chain") or "").strip() or None)
    if len(ref.residues) != ca.shape[1] or [r.number for r in ref.residues] != numbers.tolist():
        raise InputError(f"{folder}: the reference PDB has {len(ref.residues)} residues, "
                         f"the trajectory {ca.shape[1]} C-alpha (or their numbers differ)")
    return {"ca": ca, "time_ps": time_ps, "reference": ref, "provenance": prov, "key": key}


def trajectory_source(folder, key: str | None = None):
    """A :class:`~dynaprot_viz.training.readers.TrajectorySource` over one chain's
    outputs (in-memory C-alpha frames), for :func:`~dynaprot_viz.training.ingest.ingest`."""
    from .readers import OpenedSource, TrajectorySource

    folder = Path(folder)

    def opener():
        t = load_trajectory(folder)
        prov = t["provenance"]
        info = {}
        opened = OpenedSource(
            reference=t["reference"], replicas=None,
            provenance={"source": f"dynaprot-viz simulate: {prov.get('input')}:{prov.get('chain')}",
                        "force_field": prov.get("force_field"), "temperature_K": prov.get("temperature_K"),
                        "simulation": prov},
            replica_info=info)

        def replicas(chunk_frames):
            ca, tp = t["ca"], t["time_ps"]
            dt = float(tp[1] - tp[0]) if len(tp) > 1 else None
            info["R1"] = {"n_frames": int(ca.shape[0]), "dt_ps": dt,
                          "t_first_ps": float(tp[0]), "t_last_ps": float(tp[-1])}

            def chunks():
                for i in range(0, ca.shape[0], chunk_frames):
                    yield ca[i:i + chunk_frames]

            yield "R1", chunks()

        opened.replicas = replicas
        return opened

    return TrajectorySource(key=key or folder.name, description=f"simulate outputs in {folder}",
                            opener=opener)


def ingest_outputs(folders, store, overwrite: bool = True, progress: bool = True):
    """Labels of simulated chains (folders ``OUT/<key>``) into a label store.

    ``overwrite`` defaults to True: a resumed, longer simulation replaces its labels.
    Returns the :class:`~dynaprot_viz.training.ingest.IngestResult`.
    """
    from .ingest import ingest

    return ingest([trajectory_source(f) for f in folders], store, overwrite=overwrite, progress=progress)
