"""Many structures: ``dynaprot-viz batch`` / :func:`predict_many` on Dask, into a resumable
Zarr store with Parquet summary and failures tables; :func:`open_store` reads it back.

Needs the ``batch`` extra (``pip install 'dynaprot-viz[batch]'``: dask[distributed], zarr,
pandas, pyarrow); importing this package does not import them.
"""

from .engine import BatchResult, auto_batch_size, default_workers, predict_many
from .inputs import WorkItem, entry_name, expand_inputs, read_chains, subset_backbones
from .store import BatchStore, band_taper, open_store, parse_coupling

__all__ = [
    "BatchResult",
    "BatchStore",
    "WorkItem",
    "auto_batch_size",
    "band_taper",
    "default_workers",
    "entry_name",
    "expand_inputs",
    "open_store",
    "parse_coupling",
    "predict_many",
    "read_chains",
    "subset_backbones",
]
