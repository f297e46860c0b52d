"""Ground truth: labels that arrive later, checked and joined to the predictions they judge.

`{{ cookiecutter.package }} feedback --labels FILE` (``make feedback LABELS=FILE``) reads a CSV or
Parquet file with exactly three columns:

- ``request_id``: the id the service answered with (serving/ids.py), as kept in the samples;
- the contract's target (params.yaml ``data.target``), one of the values the contract allows
  for it (schema.py ``RawRecord``);
- ``observed_at``: when the outcome was observed (ISO 8601; no zone means UTC).

Every problem is named at once (a missing or unknown column, empty or repeated ids, label values
the contract does not allow, times that are not times or lie in the future) and then nothing is
written. A valid file is joined by id to the samples of the twice ``quality.label_delay_hours``
before its earliest observation, and kept in ``monitoring.labels``::

    <labels>/joined/<UTC time>-<random>.parquet      request_id, label (1 = positive_class),
                                                      observed_at, timestamp, score, model_version
    <labels>/unmatched/<UTC time>-<random>.parquet   request_id, label, observed_at

Nothing is dropped silently: labels matching no sample (a prediction the sampler did not keep,
one older than the search, a mistyped id) are kept apart and counted; labels observed more than
``label_delay_hours`` after their prediction are joined and counted as late; a label for an id
labelled before replaces it (the latest observation wins) and is counted too.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from {{ cookiecutter.package }}.config import DataSettings, MonitoringSettings, Settings
from {{ cookiecutter.package }}.contract.validation import Problem
from {{ cookiecutter.package }}.data import table_format
from {{ cookiecutter.package }}.serving.ids import ID_FIELD, new_id
from {{ cookiecutter.package }}.serving.sampling import sink_of
from {{ cookiecutter.package }}.serving.sink import SCORE, TIMESTAMP, VERSION, read_predictions

OBSERVED = "observed_at"
LABEL = "label"  # 1 for data.positive_class, else 0, as training encodes it (data.labels)
JOINED, UNMATCHED = "joined", "unmatched"
LABELS_ENV = "MONITOR_LABELS"  # the store's place where params.yaml does not say it (a cluster)
FUTURE_SLACK = timedelta(minutes=5)  # clocks of the labelling system and this host may differ


class LabelsError(ValueError):
    """A labels file that cannot be used; ``problems`` names each thing to fix."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(
            f"{source}: {len(problems)} problem(s) in the labels file; nothing was written"
        )


@dataclass(frozen=True)
class Fed:
    """What one labels file brought: its counts, and where they went."""

    source: str
    rows: int
    matched: int
    unmatched: int
    late: int
    relabelled: int
    samples: int  # samples searched
    since: str
    until: str
    joined_file: str | None
    unmatched_file: str | None

    def lines(self) -> list[str]:
        """The counts in words, one line each (the command prints them)."""
        lines = [
            f"{self.rows} labels from {self.source}: {self.matched} joined to their prediction, "
            f"{self.unmatched} matched no sample ({self.samples} samples searched, "
            f"{self.since} to {self.until})"
        ]
        if self.unmatched:
            lines.append(
                f"{self.unmatched} unmatched labels kept in {self.unmatched_file}: predictions "
                "the sampler did not keep (monitoring.sample_rate), older ones, or mistyped ids"
            )
        if self.late:
            lines.append(
                f"{self.late} labels arrived late (over quality.label_delay_hours after their "
                "prediction): joined, but windows judged before they came were judged without them"
            )
        if self.relabelled:
            lines.append(f"{self.relabelled} ids were labelled before: the newest label counts")
        return lines


def store(settings: MonitoringSettings) -> str:
    """Where joined labels live: ``MONITOR_LABELS`` when set, else params.yaml."""
    return os.environ.get(LABELS_ENV) or settings.labels


def target_values(target: str) -> list[str] | None:
    """The values the contract allows for the target column (None: any text)."""
    from {{ cookiecutter.package }}.contract.schema import RawRecord

    column = RawRecord.to_schema().columns.get(target)
    if column is None:
        raise ValueError(
            f"the contract (schema.py RawRecord) has no column {target!r}: data.target in "
            "params.yaml names the label column"
        )
    for check in column.checks:
        allowed = (check.statistics or {}).get("allowed_values")
        if allowed is not None:
            return [str(value) for value in allowed]
    return None


def read_labels(path: Path) -> pd.DataFrame:
    """A labels file, every column as it was written (nothing coerced before it is checked)."""
    if not path.exists():
        raise FileNotFoundError(f"labels file {path} not found")
    if table_format(path) == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


def problems(frame: pd.DataFrame, data: DataSettings, now: datetime) -> list[Problem]:
    """Every problem of a labels frame, one per kind and column (rows are 0-based)."""
    allowed = target_values(data.target)
    columns = [ID_FIELD, data.target, OBSERVED]
    found = [
        Problem(name, "missing column", "a required column", "nothing")
        for name in columns
        if name not in frame.columns
    ]
    found += [
        Problem(str(name), "extra column", f"only the columns {columns}", "an extra column")
        for name in frame.columns
        if name not in columns
    ]
    if frame.empty:
        found.append(Problem("(file)", "rows", "at least one label", "no rows"))
    if ID_FIELD in frame.columns:
        ids = clean_ids(frame[ID_FIELD])
        empty = pc.fill_null(pc.equal(pc.utf8_length(ids), 0), True)
        found += _rows(ID_FIELD, "not_nullable", "an id", empty, frame[ID_FIELD])
        # Hash counts, not a sort: a million ids take a fraction of a second.
        counts = pc.value_counts(ids)
        twice = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        repeated = pc.fill_null(pc.is_in(ids, value_set=twice.drop_null()), False)
        found += _rows(ID_FIELD, "unique", "each id once", repeated, frame[ID_FIELD])
    if data.target in frame.columns:
        values = frame[data.target]
        wrong = values.isna() if allowed is None else ~values.astype("string").isin(allowed)
        wanted = "a value" if allowed is None else f"one of {allowed}"
        found += _rows(data.target, "isin", wanted, wrong.fillna(True).to_numpy(bool), values)
    if OBSERVED in frame.columns:
        times = observed(frame[OBSERVED])
        example = "an ISO 8601 time, e.g. 2026-03-02T14:05:00Z"
        found += _rows(OBSERVED, "datetime", example, times.isna(), frame[OBSERVED])
        future = (times > pd.Timestamp(now) + FUTURE_SLACK).fillna(False)
        found += _rows(
            OBSERVED,
            "not in the future",
            f"a time before {now:%Y-%m-%d %H:%M} UTC",
            future,
            frame[OBSERVED],
        )
    return found


def _rows(column: str, check: str, expected: str, bad: Any, values: pd.Series) -> list[Problem]:
    """One problem naming the rows where ``bad`` holds (none when it holds nowhere)."""
    rows = np.flatnonzero(np.asarray(bad, dtype=bool))
    if not rows.size:
        return []
    examples = [str(value) for value in values.iloc[rows[:5]]]
    received = f"{rows.size} row(s) such as {', '.join(map(repr, examples))}"
    return [Problem(column, check, expected, received, rows[:20].tolist(), examples)]


def clean_ids(values: pd.Series) -> pa.Array:
    """Ids as Arrow text, surrounding blanks removed (what a spreadsheet adds)."""
    return pc.utf8_trim_whitespace(pa.array(values.astype("string"), type=pa.string()))


def observed(values: pd.Series) -> pd.Series:
    """Observation times as UTC timestamps (NaT where a value is not a time)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        times = values
    else:
        times = pd.to_datetime(values.astype("string"), errors="coerce", utc=True, format="ISO8601")
    if times.dt.tz is None:
        return times.dt.tz_localize(UTC)
    return times.dt.tz_convert(UTC)


def join(
    labels: pd.DataFrame, predictions: pd.DataFrame, delay: timedelta
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(joined rows, unmatched labels, late count): each label with its prediction's time, score
    and version. A reused request id keeps its latest sample.

    Arrow's hash lookup (``index_in``) on the ids as they are stored: a pandas index would first
    copy a million strings into Python objects, three times slower."""
    predictions = predictions.dropna(subset=[ID_FIELD]).reset_index(drop=True)
    keys = pa.array(predictions[ID_FIELD], type=pa.string())
    if pc.count_distinct(keys).as_py() < len(keys):  # the latest sample of a reused id
        keep = ~predictions[ID_FIELD].duplicated(keep="last").to_numpy()
        predictions, keys = predictions[keep].reset_index(drop=True), keys.filter(keep)
    wanted = pa.array(labels[ID_FIELD], type=pa.string())
    found = pc.fill_null(pc.index_in(wanted, value_set=keys), -1).to_numpy()
    hit = found >= 0
    joined = labels[hit].reset_index(drop=True)
    source = predictions.iloc[found[hit]].reset_index(drop=True)
    for name in (TIMESTAMP, SCORE, VERSION):
        joined[name] = source[name]
    late = int(((joined[OBSERVED] - joined[TIMESTAMP]) > delay).sum())
    return joined, labels[~hit].reset_index(drop=True), late


def ingest(
    path: Path,
    data: DataSettings,
    settings: MonitoringSettings,
    *,
    now: datetime | None = None,
) -> Fed:
    """Check ``path``; when it holds, join it to the samples and keep both parts in the store.

    Raises LabelsError naming every problem before anything is written.
    """
    now = now or datetime.now(UTC)
    frame = read_labels(path)
    found = problems(frame, data, now)
    if found:
        raise LabelsError(str(path), found)
    labels = pd.DataFrame(
        {
            ID_FIELD: pd.Series(pd.arrays.ArrowStringArray(clean_ids(frame[ID_FIELD]))),
            LABEL: (frame[data.target].astype("string") == str(data.positive_class)).astype("int8"),
            OBSERVED: observed(frame[OBSERVED]),
        }
    )
    delay = timedelta(hours=settings.quality.label_delay_hours)
    since, until = labels[OBSERVED].min() - 2 * delay, labels[OBSERVED].max() + timedelta(seconds=1)
    predictions = read_predictions(sink_of(settings.sink), since, until)
    joined, unmatched, late = join(labels, predictions, delay)
    root = store(settings)
    again = pc.is_in(pa.array(joined[ID_FIELD], type=pa.string()), value_set=labelled_ids(root))
    relabelled = int(pc.sum(again).as_py() or 0)
    stamp = f"{now:%Y%m%dT%H%M%S%fZ}-{new_id()[:12]}"  # sorts by time, never collides
    return Fed(
        source=str(path),
        rows=len(labels),
        matched=len(joined),
        unmatched=len(unmatched),
        late=late,
        relabelled=relabelled,
        samples=len(predictions),
        since=since.isoformat(),
        until=until.isoformat(),
        joined_file=_write(joined, f"{root}/{JOINED}/{stamp}.parquet"),
        unmatched_file=_write(unmatched, f"{root}/{UNMATCHED}/{stamp}.parquet"),
    )


def _write(frame: pd.DataFrame, target: str) -> str | None:
    """Write a part of the store (nothing when empty): aside, then renamed (a reader never sees
    half a file); an object store's put is atomic already."""
    if frame.empty:
        return None
    if "://" in target:
        frame.to_parquet(target, index=False)
        return target
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
    return target


def _parts(root: str, part: str) -> list[str]:
    import fsspec.core

    fs, base = fsspec.core.url_to_fs(f"{root}/{part}")
    try:
        names = sorted(fs.glob(f"{base.rstrip('/')}/*.parquet"))
    except FileNotFoundError:
        return []
    return [fs.unstrip_protocol(name) if "://" in root else name for name in names]


def labelled_ids(root: str) -> pa.Array:
    """Ids that already have a label in the store."""
    parts = _parts(root, JOINED)
    if not parts:
        return pa.array([], type=pa.string())
    return pa.array(pd.read_parquet(parts, columns=[ID_FIELD])[ID_FIELD], type=pa.string())


def read_labelled(root: str) -> pd.DataFrame:
    """Every joined label in the store, the newest observation of each id."""
    parts = _parts(root, JOINED)
    if not parts:
        columns = [ID_FIELD, LABEL, OBSERVED, TIMESTAMP, SCORE, VERSION]
        return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
    frame = pd.read_parquet(parts)
    if frame[ID_FIELD].duplicated().any():
        frame = frame.sort_values(OBSERVED, kind="stable").drop_duplicates(ID_FIELD, keep="last")
    return frame.reset_index(drop=True)


def write_record(feeds: list[Fed], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"feeds": [asdict(fed) for fed in feeds]}, indent=2) + "\n")


def drain(inbox: Path, data: DataSettings, settings: MonitoringSettings) -> list[Fed | LabelsError]:
    """Feed every labels file in ``inbox``, oldest name first: each moves to ``done/``, or to
    ``rejected/`` with its problems in ``<name>.problems.txt``; one bad file stops no other."""
    outcomes: list[Fed | LabelsError] = []
    for path in sorted(p for p in inbox.iterdir() if p.suffix.lower() in (".csv", ".parquet")):
        try:
            outcomes.append(ingest(path, data, settings))
            folder = inbox / "done"
        except ValueError as error:  # LabelsError, or a file pandas cannot read at all
            refused = error if isinstance(error, LabelsError) else _unreadable(path, error)
            outcomes.append(refused)
            folder = inbox / "rejected"
            folder.mkdir(exist_ok=True)
            lines = [str(refused), *(f"- {problem.sentence()}" for problem in refused.problems)]
            (folder / f"{path.name}.problems.txt").write_text("\n".join(lines) + "\n")
        folder.mkdir(exist_ok=True)
        shutil.move(path, folder / path.name)
    return outcomes


def _unreadable(path: Path, error: Exception) -> LabelsError:
    problem = Problem("(file)", "readable", "a CSV or Parquet table", str(error).splitlines()[0])
    return LabelsError(str(path), [problem])


def run(
    settings: Settings, labels: Path | None, inbox: Path | None, record: Path
) -> tuple[list[str], int]:
    """`feedback`: one labels file (a LabelsError when it breaks a rule), or every file of the
    inbox; returns the lines to print and how many files were refused."""
    if labels is not None:
        fed = ingest(labels, settings.data, settings.monitoring)
        write_record([fed], record)
        return fed.lines(), 0
    folder = inbox or (Path(settings.monitoring.inbox) if settings.monitoring.inbox else None)
    if folder is None:
        raise ValueError(
            "no labels to feed: name a file (make feedback LABELS=labels.csv) or set "
            "monitoring.inbox in params.yaml to a folder that receives them"
        )
    if not folder.is_dir():
        raise FileNotFoundError(f"inbox {folder} is no folder: create it, or fix monitoring.inbox")
    outcomes = drain(folder, settings.data, settings.monitoring)
    feeds = [outcome for outcome in outcomes if isinstance(outcome, Fed)]
    write_record(feeds, record)
    lines = [f"inbox {folder}: {len(feeds)} fed, {len(outcomes) - len(feeds)} refused"]
    for outcome in outcomes:
        if isinstance(outcome, Fed):
            lines += outcome.lines()
        else:
            lines.append(f"refused {outcome}: see {folder}/rejected/")
    return lines, len(outcomes) - len(feeds)
