"""The monitor runs by itself: its schedule rendered from params.yaml ``monitoring.schedule``.

`make monitoring-rules` writes, next to the alert rules,
{%- if cookiecutter.deploy == 'kubernetes' %}
``deploy/k8s/monitor-cronjob.yaml`` (a CronJob running `feedback` and `monitor` in the service's
own image, so a release updates both), ``deploy/k8s/monitoring-config.yaml`` (the ConfigMap the
CronJob and the Deployment share: where samples, labels and the training reference live under
``monitoring.cluster_root``){% if cookiecutter.dvc_remote == 'local' %} and ``deploy/k8s/monitoring-volume.yaml`` (the volume that root
is on){% endif %}.
{%- else %}
``deploy/local/monitor.timer`` and ``deploy/local/monitor.service``: a systemd timer on the
serving host that runs `feedback` (when ``monitoring.inbox`` names a drop folder) and `monitor`
in the checkout of deploy/local/README.md.
{%- endif %}
The schedule is a cron expression (five fields, UTC), as the retraining workflow's;
``on_calendar`` turns it into systemd's calendar syntax.
"""

from __future__ import annotations

import re
from pathlib import Path
{%- if cookiecutter.deploy == 'kubernetes' %}
from typing import Any
{%- endif %}

from {{ cookiecutter.package }}.config import SCHEDULE_DIR, ParamsError, Settings, sync_rendered
{%- if cookiecutter.deploy == 'kubernetes' %}
from {{ cookiecutter.package }}.monitoring.rendered import Block, dump
from {{ cookiecutter.package }}.serving.sink import is_url
{%- endif %}

APP = "{{ cookiecutter.project }}"
PACKAGE = "{{ cookiecutter.package }}"
# (name, lowest, highest) of the five cron fields, in order.
FIELDS = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
]
ATOM = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")
DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
EXAMPLE = "e.g. '0 * * * *' (hourly) or '30 6 * * 1-5' (06:30 UTC on weekdays)"


def _bad(cron: str, why: str) -> ParamsError:
    return ParamsError(f"params.yaml: monitoring.schedule is {cron!r}: {why} ({EXAMPLE})")


def _values(cron: str, field: str, name: str, low: int, high: int) -> list[int] | None:
    """The numbers a cron field matches (None for ``*``: any)."""
    if field == "*":
        return None
    found: set[int] = set()
    for atom in field.split(","):
        match = ATOM.match(atom)
        if not match:
            raise _bad(cron, f"the {name} field {field!r} is not *, a number, a range or a step")
        step = int(match[2] or 1)
        if match[1] == "*":
            first, last = low, high
        else:
            first, *rest = (int(n) for n in match[1].split("-"))
            last = rest[0] if rest else (high if match[2] else first)
        if not low <= first <= last <= high or step == 0:
            raise _bad(cron, f"the {name} field {field!r} is not within {low}-{high}, low to high")
        found.update(range(first, last + 1, step))
    return sorted(found)


def on_calendar(cron: str) -> str:
    """systemd's ``OnCalendar=`` for a five-field cron expression (UTC)."""
    fields = cron.split()
    if len(fields) != len(FIELDS):
        raise _bad(cron, f"it has {len(fields)} fields, cron needs 5")
    minute, hour, day, month, weekday = (
        _values(cron, field, *spec) for field, spec in zip(fields, FIELDS, strict=True)
    )
    if day is not None and weekday is not None:
        # cron runs when either matches, systemd only when both do: refuse the ambiguity.
        raise _bad(cron, "restrict the day of month or the day of week, not both")

    def listed(values: list[int] | None) -> str:
        return "*" if values is None else ",".join(f"{value:02d}" for value in values)

    days = "" if weekday is None else ",".join(DAYS[d] for d in sorted({d % 7 for d in weekday}))
    moment = f"*-{listed(month)}-{listed(day)} {listed(hour)}:{listed(minute)}:00 UTC"
    return f"{days} {moment}".strip()
{%- if cookiecutter.deploy == 'kubernetes' %}


# --- Kubernetes: a CronJob in the service's image -------------------------------------------

CRONJOB_FILE = "monitor-cronjob.yaml"
CONFIG_FILE = "monitoring-config.yaml"
{%- if cookiecutter.dvc_remote == 'local' %}
VOLUME_FILE = "monitoring-volume.yaml"
MOUNT = "/var/lib/{{ cookiecutter.project }}"  # where the volume is mounted in every pod
{%- endif %}
HEADER = (
    "# Rendered from params.yaml (monitoring:) by `make monitoring-rules`: edit params.yaml,\n"
    "# then rerun it. tests/test_alerts.py fails when this file is out of date.\n"
)
LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "monitor"}


def config_map(settings: Settings) -> dict[str, Any]:
    """Where the pods keep samples and the monitor finds labels and its training reference."""
    root = settings.monitoring.cluster_root.rstrip("/")
    kept = settings.monitoring.retention
    # A volume is bounded by the pods themselves; a bucket by its lifecycle rule.
    retention = {
        "SERVE_SAMPLE_MAX_AGE_HOURS": f"{kept.max_age_hours:g}",
        "SERVE_SAMPLE_MAX_MEGABYTES": f"{kept.max_megabytes:g}",
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{APP}-monitoring", "labels": LABELS},
        "data": {
            "SERVE_SAMPLE_RATE": f"{settings.monitoring.sample_rate:g}",
            "SERVE_SAMPLE_SINK": f"{root}/samples",
            **({} if is_url(root) else retention),
            "MONITOR_LABELS": f"{root}/labels",
            "MONITOR_REFERENCE": f"{root}/reference/train.parquet",
        },
    }


def _script(settings: Settings) -> str:
    """The job: the packed model and the settings it was built with, then feedback and monitor
    (exit 3, retraining asked for, is the job doing its work)."""
    lines = [
        "set -eu",
        f'model="$(ls -d "$BENTO_PATH"/models/{PACKAGE}/*/ | head -n 1)"',
        'cp "$model/params.yaml" /work/params.yaml && cd /work',
        'export PYTHONPATH="$BENTO_PATH/src"',
    ]
    if settings.monitoring.inbox:
        root = settings.monitoring.cluster_root.rstrip("/")
        lines.append(f"python -m {PACKAGE} feedback --inbox {root}/inbox || true")
    lines.append(
        f'python -m {PACKAGE} monitor --model-dir "$model" --reference "$MONITOR_REFERENCE" '
        "|| test $? -eq 3"
    )
    return "\n".join(lines) + "\n"


def cronjob(settings: Settings) -> dict[str, Any]:
    """``monitoring.schedule`` as a CronJob of the service's image (kustomize pins both)."""
    on_calendar(settings.monitoring.schedule)  # the same checks as on a serving host
    secret = f"{APP}-monitor"
    mounts = [{"name": "work", "mountPath": "/work"}]
    volumes: list[dict[str, Any]] = [{"name": "work", "emptyDir": {}}]
{%- if cookiecutter.dvc_remote == 'local' %}
    mounts.append({"name": "monitoring", "mountPath": MOUNT})
    claim = {"claimName": f"{APP}-monitoring"}
    volumes.append({"name": "monitoring", "persistentVolumeClaim": claim})
{%- endif %}
    container = {
        "name": "monitor",
        "image": APP,  # the Deployment's placeholder: kustomization.yaml `images:` pins both
        "command": ["/bin/sh", "-c", Block(_script(settings))],
        "envFrom": [{"configMapRef": {"name": f"{APP}-monitoring"}}],
        "env": [
            {
                "name": variable,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
            }
            for variable, key in (("GITHUB_TOKEN", "token"), ("GITHUB_REPOSITORY", "repository"))
        ],
        "volumeMounts": mounts,
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod = {
        "restartPolicy": "Never",
        "imagePullSecrets": [{"name": "ghcr-pull"}],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1034,  # the `bentoml` user of images built by `bentoml containerize`
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"{APP}-monitor", "labels": LABELS},
        "spec": {
            "schedule": settings.monitoring.schedule.strip(),
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": LABELS}, "spec": pod},
                }
            },
        },
    }
{%- if cookiecutter.dvc_remote == 'local' %}


def volume() -> dict[str, Any]:
    """The volume under ``cluster_root``, shared by every pod of the service and the CronJob."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{APP}-monitoring", "labels": LABELS},
        "spec": {
            "accessModes": ["ReadWriteMany"],  # many service pods write, the CronJob reads
            "resources": {"requests": {"storage": "20Gi"}},
        },
    }
{%- endif %}


def _dump(manifest: dict[str, Any]) -> str:
    return dump(manifest, HEADER)


def render(settings: Settings) -> dict[str, str]:
    """File name -> text of each schedule file (deploy/k8s)."""
{%- if cookiecutter.dvc_remote == 'local' %}
    if not settings.monitoring.cluster_root.startswith(MOUNT):
        raise ParamsError(
            f"params.yaml: monitoring.cluster_root is {settings.monitoring.cluster_root!r}: with "
            f"the DVC remote on a local disk the cluster keeps monitoring data on a volume "
            f"mounted at {MOUNT}; use a path under it"
        )
{%- endif %}
    return {
        CRONJOB_FILE: _dump(cronjob(settings)),
        CONFIG_FILE: _dump(config_map(settings)),
{%- if cookiecutter.dvc_remote == 'local' %}
        VOLUME_FILE: _dump(volume()),
{%- endif %}
    }
{%- else %}


# --- a serving host: a systemd timer and service ----------------------------------------------

TIMER_FILE, SERVICE_FILE = "monitor.timer", "monitor.service"
CHECKOUT = Path("/srv/{{ cookiecutter.project }}")  # where deploy/local/README.md checks it out
HEADER = (
    "# Rendered from params.yaml (monitoring:) by `make monitoring-rules`: edit params.yaml,\n"
    "# then rerun it. tests/test_alerts.py fails when this file is out of date.\n"
    "# Install both (deploy/local/README.md):\n"
    f"#   sudo cp monitor.service /etc/systemd/system/{APP}-monitor.service\n"
    f"#   sudo cp monitor.timer /etc/systemd/system/{APP}-monitor.timer\n"
    f"#   sudo systemctl daemon-reload && sudo systemctl enable --now {APP}-monitor.timer\n"
)


def timer(settings: Settings) -> str:
    cron = settings.monitoring.schedule.strip()
    return HEADER + "\n".join(
        [
            "[Unit]",
            f'Description={APP} monitor on params.yaml monitoring.schedule "{cron}" (UTC)',
            "",
            "[Timer]",
            f"OnCalendar={on_calendar(cron)}",
            "# A run missed while the host was down happens at the next boot.",
            "Persistent=true",
            "RandomizedDelaySec=60",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def service(settings: Settings) -> str:
    run = f"/bin/sh -c 'exec .venv/bin/python -m {PACKAGE}"
    feedback = []
    if settings.monitoring.inbox:
        feedback = [
            "# Labels dropped into monitoring.inbox first; a bad file is set aside, not fatal.",
            f"ExecStartPre=-{run} feedback'",
        ]
    return HEADER + "\n".join(
        [
            "[Unit]",
            f"Description={APP} monitor: drift, prediction shift and model quality",
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"User={PACKAGE}",
            f"WorkingDirectory={CHECKOUT}",
            "# GITHUB_TOKEN (fine-grained: Actions read and write, nothing else) and",
            "# GITHUB_REPOSITORY; without them the retraining request is logged, not sent.",
            f"EnvironmentFile=-/etc/{APP}/monitor.env",
            *feedback,
            f"ExecStart={run} monitor'",
            "# 3: drift, a shift or a quality drop; retraining was asked for, the run succeeded.",
            "SuccessExitStatus=3",
            "NoNewPrivileges=true",
            "ProtectSystem=strict",
            f"ReadWritePaths={CHECKOUT}",
            "PrivateTmp=true",
            "",
        ]
    )


def render(settings: Settings) -> dict[str, str]:
    """File name -> text of each schedule file (deploy/local)."""
    return {TIMER_FILE: timer(settings), SERVICE_FILE: service(settings)}
{%- endif %}


def write(settings: Settings, check: bool = False, directory: Path = SCHEDULE_DIR) -> list[Path]:
    """Render the schedule into ``directory``; ``check``: write nothing, fail when stale."""
    rendered = {directory / name: text for name, text in render(settings).items()}
    return sync_rendered(rendered, check, "make monitoring-rules")
