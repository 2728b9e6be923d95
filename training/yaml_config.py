"""Reading training configs: one YAML mapping, relative paths resolved against the file's folder."""

from __future__ import annotations

from pathlib import Path

from dynaprot_viz.core.errors import InputError

__all__ = ["read_yaml_mapping", "check_known_keys", "check_at_least_one"]


def read_yaml_mapping(path, path_keys) -> dict:
    """The YAML file at ``path`` as a dict; values of ``path_keys`` made absolute
    (relative ones are relative to the YAML's folder, so a config works from any cwd).

    Raises FileNotFoundError for a missing file and InputError (one line) for bad YAML
    or a document that is not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of training options")
    for key in path_keys:
        if data.get(key) is not None and not Path(str(data[key])).expanduser().is_absolute():
            data[key] = str((path.parent / str(data[key])).resolve())
    return data


def check_known_keys(cls, d: dict, what: str = "training config") -> None:
    """InputError naming every key of ``d`` that is not a field of the dataclass ``cls``."""
    from dataclasses import fields

    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise InputError(f"unknown {what} keys: {', '.join(unknown)}")


def check_at_least_one(cfg, names) -> None:
    """InputError when any of the integer options ``names`` of ``cfg`` is below 1."""
    for name in names:
        if int(getattr(cfg, name)) < 1:
            raise InputError(f"{name} must be >= 1, got {getattr(cfg, name)!r}")
