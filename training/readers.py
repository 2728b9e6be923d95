"""Trajectory readers for label ingestion: ATLAS folders, mdCATH h5 files, any
topology + trajectory pair that MDAnalysis reads.

Every reader returns :class:`TrajectorySource` objects.  A source is cheap to make
(it only names files); :meth:`TrajectorySource.open` parses the reference and
checks the atom counts, and :meth:`OpenedSource.replicas` yields the C-alpha
coordinates of each replica in chunks of frames, shape (b, N, 3), Å, so that a
long all-atom trajectory never sits in memory.  Errors on one chain (a corrupt
file, a topology that does not match the trajectory) surface when that chain is
opened or read, so ingestion can report and skip it.

Units: MDAnalysis and mdCATH coordinates are in Å; nothing is converted.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.structure import ProteinChain, Residue

__all__ = [
    "TrajectorySource",
    "OpenedSource",
    "atlas_sources",
    "mdcath_sources",
    "trajectory_source",
    "one_letter",
    "ATLAS_PROTOCOL",
    "MDCATH_PROTOCOL",
    "MDCATH_PS_PER_FRAME",
]

#: What the ATLAS paper states about every simulation (Vander Meersche et al., NAR 2024).
ATLAS_PROTOCOL = {"dataset": "ATLAS", "force_field": "CHARMM36m", "water": "TIP3P",
                  "temperature_K": 300.0, "engine": "GROMACS"}
#: What the mdCATH paper states (Mirarchi et al., Sci Data 2024).
MDCATH_PROTOCOL = {"dataset": "mdCATH", "force_field": "CHARMM22*", "water": "TIP3P",
                   "engine": "ACEMD"}
#: mdCATH stores one frame per nanosecond
MDCATH_PS_PER_FRAME = 1000.0

_ALIASES = {
    # CHARMM / AMBER / GROMACS protonation and disulfide variants
    "HSD": "H", "HSE": "H", "HSP": "H", "HID": "H", "HIE": "H", "HIP": "H", "HIS": "H",
    "HISA": "H", "HISB": "H", "HISD": "H", "HISE": "H", "HISH": "H", "HSC": "H",
    "CYX": "C", "CYM": "C", "CYS2": "C", "CYSH": "C", "CYN": "C",
    "ASH": "D", "ASPP": "D", "ASPH": "D", "GLH": "E", "GLUP": "E", "GLUH": "E",
    "LYN": "K", "LSN": "K", "LYSH": "K", "ARN": "R", "TYM": "Y",
    "NLE": "L", "MSE": "M",
}
_NTERM_CTERM = re.compile(r"^[NC](?=[A-Z]{3}$)")  # AMBER NALA / CALA terminal names


def one_letter(resname: str) -> str:
    """One-letter code of a residue name, force-field variants included (``X`` if unknown)."""
    name = resname.strip().upper()
    if name in _ALIASES:
        return _ALIASES[name]
    import gemmi

    for cand in (name, _NTERM_CTERM.sub("", name)):
        if cand in _ALIASES:
            return _ALIASES[cand]
        info = gemmi.find_tabulated_residue(cand)
        if info is not None and info.is_amino_acid():
            letter = info.one_letter_code.upper()
            if letter.strip() and letter != "?":
                return letter
    return "X"


def _require_mda():
    try:
        import MDAnalysis
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "reading trajectories needs MDAnalysis: pip install 'dynaprot-viz[train]' "
            "(or pip install MDAnalysis)"
        ) from exc
    return MDAnalysis


# --------------------------------------------------------------------------- reference


def _chain_name(atoms) -> list[str]:
    """Per-atom chain names as :func:`~dynaprot_viz.core.structure.load_chain` names them, so
    that labels and predictions of one file line up: the PDB chainID when the topology has
    that column (blank stays ``""``, as gemmi reads it), else a short segid (PSF and other
    chain-less topologies), else ``"A"``."""
    n = len(atoms)
    if hasattr(atoms, "chainIDs"):
        ids = [str(c).strip() for c in atoms.chainIDs]
        if any(ids):
            return ids
    if hasattr(atoms, "segids"):
        segs = [str(s).strip() for s in atoms.segids]
        if any(segs) and all(len(s) <= 4 and s != "SYSTEM" for s in segs):
            return segs
    if hasattr(atoms, "chainIDs"):
        return [""] * n  # a PDB topology with a blank chain column
    return ["A"] * n


@dataclass(frozen=True, eq=False)
class _Reference:
    chain: ProteinChain
    ca_indices: np.ndarray  # (N,) indices of the C-alpha atoms in the trajectory's atom order
    n_atoms: int


def _reference_from_universe(u, positions: np.ndarray, name: str, chain: str | None) -> _Reference:
    """Residues, sequence, backbone and C-alpha atom indices of the protein in ``u``.

    ``positions`` (n_atoms, 3) Å are the reference coordinates.
    """
    prot = u.select_atoms("protein")
    if len(prot) == 0:
        raise InputError(f"{name}: no protein atoms found in the topology")
    chain_of_atom = _chain_name(u.atoms)
    residues, letters, bb, ca_idx = [], [], [], []
    for res in prot.residues:
        atoms = res.atoms
        names = list(atoms.names)
        if "CA" not in names:
            continue
        ch = chain_of_atom[atoms[names.index("CA")].index]
        if chain is not None and ch != chain:
            continue
        xyz = np.full((3, 3), np.nan)
        for k, atom_name in enumerate(("N", "CA", "C")):
            if atom_name in names:
                xyz[k] = positions[atoms[names.index(atom_name)].index]
        icode = str(getattr(res, "icode", "") or "").strip()
        residues.append(Residue(ch, int(res.resid), icode, str(res.resname)))
        letters.append(one_letter(str(res.resname)))
        bb.append(xyz)
        ca_idx.append(int(atoms[names.index("CA")].index))
    if chain is not None and not residues:
        found = sorted({chain_of_atom[a.index] for a in prot})
        raise InputError(f"{name}: no protein chain {chain!r}; chains with protein: {', '.join(found)}")
    if len(residues) < 2:
        raise InputError(f"{name}: fewer than 2 protein residues with a C-alpha")
    pc = ProteinChain(source=name, residues=tuple(residues), sequence="".join(letters),
                      backbone=np.array(bb), bfactors=np.zeros(len(residues)))
    return _Reference(pc, np.array(ca_idx, dtype=np.int64), int(u.atoms.n_atoms))


# --------------------------------------------------------------------------- sources


@dataclass
class OpenedSource:
    """A source whose reference is parsed and whose files are checked.

    Attributes
    ----------
    reference : ProteinChain
        The reference structure (superposition target and the label's backbone).
    replicas : callable
        ``replicas(chunk_frames)`` yields ``(replica_name, chunks)`` where
        ``chunks`` yields C-alpha coordinates of shape (b, N, 3), Å.
    provenance : dict
        What is known about the simulations; the ingester adds frame counts and
        time spans from :attr:`replica_info` after reading.
    replica_info : dict
        Filled while reading: ``{replica: {"n_frames", "dt_ps", "t_first_ps", "t_last_ps"}}``.
    """

    reference: ProteinChain
    replicas: Callable[[int], Iterator]
    provenance: dict = field(default_factory=dict)
    replica_info: dict = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class TrajectorySource:
    """One chain to ingest: a key, a description and how to open it.

    ``opener()`` returns an :class:`OpenedSource`; it is called inside the
    ingester's per-chain error handling.
    """

    key: str
    description: str
    opener: Callable[[], OpenedSource]

    def open(self) -> OpenedSource:
        return self.opener()


def _mda_replica_chunks(u, ca_indices, chunk_frames, info: dict, name: str):
    """Yield (b, N, 3) Å C-alpha chunks from the universe's current trajectory."""
    ca = u.atoms[ca_indices]
    buf = []
    traj = u.trajectory
    t_first = t_last = None
    count = 0
    dt = None
    try:
        dt = float(traj.dt)
    except Exception:
        pass
    for ts in traj:
        pos = ca.positions
        if not np.all(np.isfinite(pos)):
            raise InputError(f"{name}: frame {ts.frame} has non-finite C-alpha coordinates")
        buf.append(np.array(pos, dtype=np.float64))
        t = getattr(ts, "time", None)
        if t is not None:
            t_first = float(t) if t_first is None else t_first
            t_last = float(t)
        count += 1
        if len(buf) >= chunk_frames:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)
    info.update(n_frames=count, dt_ps=dt, t_first_ps=t_first, t_last_ps=t_last)


def _open_topology_pair(name: str, topology, trajectories: list, replica_names: list,
                        reference_path=None, chain=None, provenance=None) -> OpenedSource:
    mda = _require_mda()
    topology = Path(topology)
    for p in [topology, *trajectories] + ([Path(reference_path)] if reference_path else []):
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis chatters about missing elements/masses
        try:
            u = mda.Universe(str(topology))
        except Exception as exc:
            raise InputError(f"{topology}: cannot be read as a topology ({_why(exc)})") from None
        # reference coordinates: an explicit file, the topology's own, or frame 0
        positions = None
        if reference_path is not None:
            try:
                ur = mda.Universe(str(reference_path))
            except Exception as exc:
                raise InputError(f"{reference_path}: cannot be read ({_why(exc)})") from None
            if ur.atoms.n_atoms != u.atoms.n_atoms:
                raise InputError(
                    f"{reference_path}: {ur.atoms.n_atoms} atoms, topology {topology.name} has {u.atoms.n_atoms}"
                )
            positions = np.array(ur.atoms.positions, dtype=np.float64)
            ref_note = os.fspath(reference_path)
        else:
            try:
                positions = np.array(u.atoms.positions, dtype=np.float64)
                ref_note = f"{topology.name} coordinates"
            except Exception:
                positions = None
    if positions is None:
        u0 = _load_trajectory(u, trajectories[0], topology)
        u0.trajectory[0]
        positions = np.array(u0.atoms.positions, dtype=np.float64)
        ref_note = f"first frame of {Path(trajectories[0]).name}"
    ref = _reference_from_universe(u, positions, name, chain)
    prov = dict(provenance or {})
    prov.setdefault("source", os.fspath(topology))
    prov["topology"] = os.fspath(topology)
    prov["trajectories"] = [os.fspath(t) for t in trajectories]
    prov["reference"] = ref_note
    opened = OpenedSource(reference=ref.chain, replicas=None, provenance=prov)

    def replicas(chunk_frames):
        for rname, traj in zip(replica_names, trajectories):
            uu = _load_trajectory(u, traj, topology)
            info = opened.replica_info.setdefault(rname, {})
            yield rname, _mda_replica_chunks(uu, ref.ca_indices, chunk_frames, info, os.fspath(traj))

    opened.replicas = replicas
    return opened


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _load_trajectory(u, traj, topology):
    """Attach ``traj`` to universe ``u`` (atom count checked), as InputError on failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u.load_new(str(traj))
        except Exception as exc:
            raise InputError(f"{traj}: cannot be read as a trajectory for {Path(topology).name} ({_why(exc)})") from None
    if u.trajectory.n_atoms != u.atoms.n_atoms:  # pragma: no cover - MDAnalysis already checks
        raise InputError(f"{traj}: {u.trajectory.n_atoms} atoms, topology has {u.atoms.n_atoms}")
    if len(u.trajectory) < 1:
        raise InputError(f"{traj}: no frames")
    return u


def trajectory_source(topology, trajectories, key: str | None = None, reference=None,
                      chain: str | None = None, provenance: dict | None = None) -> TrajectorySource:
    """Any topology + trajectory files that MDAnalysis reads (PDB/GRO/PSF/TPR + XTC/TRR/DCD/...).

    Parameters
    ----------
    topology : path
        Topology (with or without coordinates).
    trajectories : path or list of paths
        One file per replica; replicas are concatenated.
    key : str, optional
        Store key; default the topology's file stem.
    reference : path, optional
        Reference coordinates (same atoms).  Default: the topology's coordinates
        when it has any, else the first frame of the first trajectory.
    chain : str, optional
        Keep only this chain's residues (default: every protein residue).
    provenance : dict, optional
        Known facts (``force_field``, ``temperature_K``, ...) to record.
    """
    if isinstance(trajectories, (str, os.PathLike)):
        trajectories = [trajectories]
    trajectories = [Path(t) for t in trajectories]
    if not trajectories:
        raise InputError("trajectories: at least one trajectory file is needed")
    key = key or Path(topology).stem
    names = [t.stem for t in trajectories]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    return TrajectorySource(
        key=key,
        description=f"{Path(topology).name} + {len(trajectories)} trajectory file(s)",
        opener=lambda: _open_topology_pair(key, topology, trajectories, names, reference, chain, provenance),
    )


_ATLAS_TRAJ = re.compile(r"^(?P<key>.+)_prod_R(?P<rep>\d+)(?P<fit>_fit)?\.xtc$")


def atlas_sources(folder) -> list[TrajectorySource]:
    """Chains of an ATLAS download, one source per ``<chain>.pdb``.

    Accepted layouts (as unpacked from the ATLAS site): ``folder/<chain>/<chain>.pdb``
    with ``<chain>_prod_R{1,2,3}_fit.xtc`` (or ``.xtc`` without ``_fit``; ``_fit``
    preferred when both exist), or the same files directly in ``folder``.  A chain
    folder with a PDB but no trajectory still gives a source, which fails when
    opened (so it is reported, not silently dropped).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected an ATLAS download)")
    candidates = sorted({p.parent for p in folder.glob("*_prod_R*.xtc")}
                        | {p.parent for p in folder.glob("*/*_prod_R*.xtc")}
                        | {p for p in folder.iterdir() if p.is_dir() and (p / f"{p.name}.pdb").exists()})
    sources = []
    for d in candidates:
        by_key: dict[str, dict[int, Path]] = {}
        for xtc in sorted(d.glob("*_prod_R*.xtc")):
            m = _ATLAS_TRAJ.match(xtc.name)
            if not m:
                continue
            reps = by_key.setdefault(m["key"], {})
            rep = int(m["rep"])
            if rep not in reps or m["fit"]:
                reps[rep] = xtc
        if d != folder and (d / f"{d.name}.pdb").exists():
            by_key.setdefault(d.name, {})
        for key in sorted(by_key):
            reps = by_key[key]
            pdb = d / f"{key}.pdb"
            trajs = [reps[r] for r in sorted(reps)]
            names = [f"R{r}" for r in sorted(reps)]
            sources.append(TrajectorySource(
                key=key,
                description=f"ATLAS {key}: {len(trajs)} replica(s)",
                opener=_atlas_opener(key, pdb, trajs, names),
            ))
    if not sources:
        raise InputError(f"{folder}: no ATLAS chains found (expected <chain>/<chain>.pdb with "
                         "<chain>_prod_R1_fit.xtc ...)")
    return sources


def _atlas_opener(key, pdb, trajs, names):
    def opener():
        if not pdb.exists():
            raise FileNotFoundError(f"{pdb}: no such file (the ATLAS reference structure)")
        if not trajs:
            raise InputError(f"{pdb.parent}: no {key}_prod_R*.xtc trajectory beside {pdb.name}")
        prov = dict(ATLAS_PROTOCOL, source=os.fspath(pdb.parent))
        return _open_topology_pair(key, pdb, trajs, names, provenance=prov)
    return opener


# --------------------------------------------------------------------------- mdCATH


def _h5_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        value = value.item() if value.shape == () else value.tobytes()
        return _h5_text(value)
    return str(value)


def mdcath_sources(files, temperatures=(320,), replicas=None) -> list[TrajectorySource]:
    """Domains of mdCATH h5 files (one domain per file, as distributed).

    Layout read (mdCATH ``mdcath-only-protein-v1.0``): ``/<domain>/pdbProteinAtoms``
    (PDB text of the N stored atoms, the reference), ``/<domain>/<T>/<replica>/coords``
    of shape (frames, N, 3) in Å, one frame per ns.

    Parameters
    ----------
    files : path or list of paths
    temperatures : sequence of int
        Which temperature groups to read (K).  One temperature: key = domain id;
        several: one record per temperature, key ``<domain>_<T>K``.
    replicas : sequence of str or int, optional
        Replica names to use (default: all present), concatenated.
    """
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    temps = [int(t) for t in temperatures]
    if not temps:
        raise InputError("temperatures: at least one temperature is needed")
    sources = []
    for f in files:
        f = Path(f)
        domain = _mdcath_domain_guess(f)
        for t in temps:
            key = domain if len(temps) == 1 else f"{domain}_{t}K"
            sources.append(TrajectorySource(
                key=key, description=f"mdCATH {f.name} {t} K",
                opener=_mdcath_opener(f, t, replicas, key),
            ))
    return sources


def _mdcath_domain_guess(path: Path) -> str:
    """The domain id from the file name ``mdcath_dataset_<domain>.h5`` (else the stem)."""
    stem = path.name
    for suffix in (".h5", ".hdf5", ".hdf"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem.removeprefix("mdcath_dataset_")


def _mdcath_opener(path: Path, temperature: int, replicas, key: str):
    def opener():
        import h5py

        mda = _require_mda()
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            h5 = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(f"{path}: cannot be opened as HDF5 ({_why(exc)})") from None
        try:
            domains = [k for k in h5.keys() if isinstance(h5[k], h5py.Group)]
            if len(domains) != 1:
                raise InputError(f"{path}: expected one domain group (mdCATH layout), found {len(domains)}")
            dom = h5[domains[0]]
            if "pdbProteinAtoms" not in dom:
                raise InputError(f"{path}: /{domains[0]}/pdbProteinAtoms missing (not an mdCATH file?)")
            tgroup = dom.get(str(temperature))
            if tgroup is None:
                temps = sorted(k for k in dom.keys() if k.isdigit())
                raise InputError(f"{path}: no {temperature} K simulations; present: {', '.join(temps) or 'none'}")
            pdb_text = _h5_text(dom["pdbProteinAtoms"][()])
            from MDAnalysis.lib.util import NamedStream

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    u = mda.Universe(NamedStream(io.StringIO(pdb_text), f"{domains[0]}.pdb"))
                except Exception as exc:
                    raise InputError(f"{path}: pdbProteinAtoms is not a readable PDB ({_why(exc)})") from None
            ref = _reference_from_universe(u, np.array(u.atoms.positions, dtype=np.float64),
                                           os.fspath(path), None)
            names = sorted(tgroup.keys(), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
            if replicas is not None:
                wanted = [str(r) for r in replicas]
                missing = [r for r in wanted if r not in names]
                if missing:
                    raise InputError(f"{path}: {temperature} K has no replica(s) {', '.join(missing)}")
                names = wanted
            if not names:
                raise InputError(f"{path}: {temperature} K group holds no replicas")
            for r in names:
                if "coords" not in tgroup[r]:
                    raise InputError(f"{path}: /{domains[0]}/{temperature}/{r}/coords missing")
                shape = tgroup[r]["coords"].shape
                if len(shape) != 3 or shape[2] != 3 or shape[1] != ref.n_atoms:
                    raise InputError(
                        f"{path}: /{domains[0]}/{temperature}/{r}/coords has shape {shape}, "
                        f"expected (frames, {ref.n_atoms}, 3) to match pdbProteinAtoms"
                    )
        except BaseException:
            h5.close()
            raise
        prov = dict(MDCATH_PROTOCOL, source=os.fspath(path), domain=domains[0],
                    temperature_K=float(temperature), layout=_h5_text(h5.attrs.get("layout", "unknown")))
        opened = OpenedSource(reference=ref.chain, replicas=None, provenance=prov, close=h5.close)
        ca = ref.ca_indices
        order = np.argsort(ca)
        inverse = np.argsort(order)
        ca_sorted = ca[order]  # h5py fancy indexing needs increasing indices

        def replicas_iter(chunk_frames):
            for r in names:
                dset = tgroup[r]["coords"]
                info = opened.replica_info.setdefault(r, {})

                def chunks(dset=dset, info=info, r=r):
                    n = dset.shape[0]
                    for i in range(0, n, chunk_frames):
                        block = np.asarray(dset[i:i + chunk_frames, ca_sorted, :], dtype=np.float64)[:, inverse]
                        if not np.all(np.isfinite(block)):
                            raise InputError(f"{path}: replica {r} has non-finite coordinates near frame {i}")
                        yield block
                    info.update(n_frames=int(n), dt_ps=MDCATH_PS_PER_FRAME,
                                t_first_ps=MDCATH_PS_PER_FRAME if n else None,
                                t_last_ps=MDCATH_PS_PER_FRAME * n if n else None)
                yield r, chunks()

        opened.replicas = replicas_iter
        return opened
    return opener
