"""Paths and configuration files of the BMI tests (bundled checkpoint, DRB demo reaches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: Small trained checkpoint (DRB demo, env `test`; tests/bmi/assets/README.md).
CHECKPOINT = Path(__file__).parent / "assets" / "drb_tiny.pt"
REACHES = ROOT / "data" / "01_raw" / "drb" / "reaches.parquet"


def config_dict(processed: Path, start: str, end: str, **sections: Any) -> dict[str, Any]:
    """A component configuration on the processed DRB inputs with the bundled checkpoint."""
    config: dict[str, Any] = {
        "model": {"checkpoint": str(CHECKPOINT)},
        "network": {
            "model_inputs": str(processed / "model_inputs.zarr"),
            "normalization_stats": str(processed / "normalization_stats.json"),
            "reaches": str(REACHES),
        },
        "time": {"start": start, "end": end, "dt": 3600.0},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def write_config(folder: Path, config: dict[str, Any], name: str = "bmi.yaml") -> Path:
    """Write ``config`` as YAML into ``folder``; returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
