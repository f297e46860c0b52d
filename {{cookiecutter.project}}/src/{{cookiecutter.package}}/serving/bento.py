"""Get a bento build ready: the chosen model into BentoML's store, the runtime versions pinned.

`make build` runs this (``{{ cookiecutter.package }} prepare-bento``) and then ``bentoml build``
with the bentofile written here: the service declares the stored model, so the bento carries
it, and the container installs exactly the library versions the model was trained with (a
pickled sklearn pipeline only promises to load in the version that wrote it).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from {{ cookiecutter.package }}.config import (
    BENTO_DIR,
    BENTO_RECORD,
    BENTO_REPLAY,
    BENTOFILE,
    BUILD_BENTOFILE,
    PARAMS_FILE,
    TEST_SPLIT,
)
from {{ cookiecutter.package }}.registry.tracking import RUNTIME_PACKAGES, pins
from {{ cookiecutter.package }}.serving.choice import (
    BENTO_MODEL,
    INFO_FILE,
    Choice,
    ModelInfo,
    export,
)

# What the service imports besides the model's own libraries.
SERVICE_PACKAGES = ["pyarrow", "pyyaml", "threadpoolctl"]
{%- if cookiecutter.deploy == 'kubernetes' %}
# The monitor CronJob runs the command line in the same image, and pods reach the sample sink.
SERVICE_PACKAGES += ["typer"{% if cookiecutter.dvc_remote == 's3' %}, "s3fs"{% elif cookiecutter.dvc_remote == 'gcs' %}, "gcsfs"{% elif cookiecutter.dvc_remote == 'azure' %}, "adlfs"{% endif %}]
{%- endif %}


def write_bentofile(source: Path = BENTOFILE, target: Path = BUILD_BENTOFILE) -> Path:
    """``source`` with python.packages pinned to what is installed here."""
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: run this from the project root")
    config = yaml.safe_load(source.read_text())
    config.setdefault("python", {})["packages"] = pins(
        sorted(set(RUNTIME_PACKAGES + SERVICE_PACKAGES))
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by `make build` from {source}; edit that file instead.\n"
    target.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return target


def prepare(choice: Choice, release: dict[str, Any] | None = None) -> tuple[str, ModelInfo]:
    """Store the chosen model as BentoML model ``BENTO_MODEL``; returns its tag and origin. A
    ``release`` record (registry/release.py) names the model as the release does."""
    import bentoml

    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / "model"
        info = export(choice, exported)
        if release is not None:
            version, run_id = release["version"], release["run_id"]
            info = ModelInfo(release["model_name"], version, "release", info.threshold, "", run_id)
            (exported / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")
        labels = {"source": info.source, "model_version": info.version, "alias": info.alias}
        with bentoml.models.create(BENTO_MODEL, labels=labels, metadata=info.to_dict()) as stored:
            shutil.copytree(exported, stored.path, dirs_exist_ok=True)
            # The settings the model ships with: a monitor next to a served bento reads them.
            if PARAMS_FILE.exists():
                shutil.copy(PARAMS_FILE, Path(stored.path) / PARAMS_FILE.name)
    write_bentofile()
    return str(stored.tag), info


def export_bento(tag: str, release: dict[str, Any]) -> dict[str, Any]:
    """The built bento ``tag`` as one file in BENTO_DIR named by its sha256 digest, the holdout
    the serving host replays beside it, and BENTO_RECORD saying what they are."""
    import bentoml

    bento = bentoml.bentos.get(tag)
    shutil.rmtree(BENTO_DIR, ignore_errors=True)
    BENTO_DIR.mkdir(parents=True)
    scratch = Path(bentoml.bentos.export_bento(bento.tag, str(BENTO_DIR.resolve() / "export")))
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    target = BENTO_DIR / f"{bento.tag.name}-{digest[:12]}.bento"
    scratch.rename(target)
    shutil.copyfile(TEST_SPLIT, BENTO_REPLAY)
    record = {
        "bento": str(bento.tag),
        "file": target.name,
        "digest": f"sha256:{digest}",
        "commit": release["commit"],
        "model": {key: release[key] for key in ("model_name", "version", "run_id")},
    }
    BENTO_RECORD.write_text(json.dumps(record, indent=2) + "\n")
    return record
