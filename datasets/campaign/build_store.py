"""Build the training label store from the simulated chains of this dataset.

    python datasets/campaign/build_store.py [--store runs/campaign/labels.h5]

Ingests every ``md/<key>/`` folder (``training.simulate.ingest_outputs``) into the
store that ``training/configs/campaign.yaml`` and ``resaxial_campaign.yaml`` read,
then prints the validation split that DynaProt's trainer uses: the config's
``val_keys`` when it lists them, else the family-aware split it derives
(``training.dataset.split_keys`` with ``families.tsv``: CATH topology for the ATLAS
chains, 3-mer sequence clusters for the others).  ``resaxial_campaign.yaml`` lists
the same chains as its ``val_keys``.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv=None) -> int:
    import yaml

    from dynaprot_viz.training.dataset import split_keys
    from dynaprot_viz.training.simulate import ingest_outputs
    from dynaprot_viz.training.store import LabelStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", default=str(ROOT / "runs" / "campaign" / "labels.h5"))
    p.add_argument("--config", default=str(ROOT / "training" / "configs" / "campaign.yaml"))
    args = p.parse_args(argv)
    folders = sorted(d for d in (HERE / "md").iterdir() if d.is_dir())
    if not folders:
        print(f"{HERE / 'md'}: no simulated chains", file=sys.stderr)
        return 2
    Path(args.store).parent.mkdir(parents=True, exist_ok=True)
    ingest_outputs(folders, args.store, overwrite=True, progress=False)
    cfg = yaml.safe_load(Path(args.config).read_text())
    with LabelStore(args.store) as store:
        splits = split_keys(store, cfg.get("val_fraction", 0.1), 0.0, cfg.get("seed", 0),
                            HERE / "families.tsv", cfg.get("val_keys"))
        for k in store.keys(kind="md"):  # a mixed store's other label kinds are not split
            n = len(store.metadata(k)["sequence"])
            split = "val" if k in splits["val"] else "train"
            print(f"{k}\t{n}\t{split}")
    print(f"grouping: {splits['grouping']}; val_keys: {splits['val']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
