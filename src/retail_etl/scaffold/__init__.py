"""``retail-etl init``: a working project with configuration and sample data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from retail_etl.errors import ConfigError, from_os_error

SAMPLE_SEED = 42
SAMPLE_DAYS = 30


def create_project(directory: Path, *, rows: int = 10_000, force: bool = False) -> list[Path]:
    """Write ``retail-etl.yaml``, ``README.md`` and ``data/{sales,products}.csv`` into ``directory``."""
    from retail_etl.sample.generator import generate

    directory = Path(directory)
    try:
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not force:
            raise ConfigError(f"{directory} exists and is not an empty folder",
                              hint="choose a new folder, or pass --force to write into a folder")
        directory.mkdir(parents=True, exist_ok=True)
        created = []
        for name in ("retail-etl.yaml", "README.md"):
            target = directory / name
            target.write_text(resources.files(__package__).joinpath(name).read_text(encoding="utf-8"),
                              encoding="utf-8")
            created.append(target)
    except OSError as exc:
        raise from_os_error(exc, action="create the project in", path=directory) from exc
    data = generate(directory / "data", rows, SAMPLE_DAYS, seed=SAMPLE_SEED)
    return [*created, data.sales_path, data.products_path]
