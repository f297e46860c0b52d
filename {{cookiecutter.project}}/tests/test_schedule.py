"""The monitor runs by itself: params.yaml monitoring.schedule, checked and rendered into the
{% if cookiecutter.deploy == 'kubernetes' %}CronJob of deploy/k8s{% else %}systemd timer and service of deploy/local{% endif %}, which the platform's own checks accept."""

from __future__ import annotations
{% if cookiecutter.deploy == 'local' %}
import shutil
import subprocess
{%- endif %}
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.package }}.config import ParamsError, parse_settings
from {{ cookiecutter.package }}.monitoring.schedule import on_calendar, render

ROOT = Path(__file__).resolve().parents[1]


def params(**monitoring: str) -> dict:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["monitoring"] |= monitoring
    return raw


@pytest.mark.parametrize(
    ("cron", "calendar"),
    [
        ("0 * * * *", "*-*-* *:00:00 UTC"),
        ("*/20 6-8 * * *", "*-*-* 06,07,08:00,20,40:00 UTC"),
        ("30 6 * * 1-5", "Mon,Tue,Wed,Thu,Fri *-*-* 06:30:00 UTC"),
        ("15 2 * * 0,7", "Sun *-*-* 02:15:00 UTC"),
        ("0 0 1,15 */6 *", "*-01,07-01,15 00:00:00 UTC"),
    ],
)
def test_a_cron_schedule_becomes_the_same_systemd_calendar(cron: str, calendar: str) -> None:
    assert on_calendar(cron) == calendar


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 * * *", "should match pattern"),  # config/settings.py: five fields
        ("61 * * * *", "minute field '61'"),
        ("0 0 1 * 1", "not both"),
        ("0 9-5 * * *", "hour field '9-5'"),
        ("0 */0 * * *", "hour field '*/0'"),
    ],
)
def test_a_bad_schedule_is_one_line_naming_its_key(cron: str, says: str) -> None:
    with pytest.raises(ParamsError, match=r"monitoring\.schedule") as refused:
        render(parse_settings(params(schedule=cron)))  # parsing, or rendering: both name it
    assert says in str(refused.value) and "\n" not in str(refused.value)
{%- if cookiecutter.deploy == 'local' %}


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
PATH_SETTINGS = ("WorkingDirectory", "ReadWritePaths", "EnvironmentFile", "ExecStart")


@pytest.mark.parametrize("inbox", ["", "monitoring/inbox"])
def test_systemd_accepts_the_timer_and_service(tmp_path: Path, inbox: str) -> None:
    units = render(parse_settings(params(inbox=inbox)))
    service = units["monitor.service"]
    assert ("feedback'" in service) == bool(inbox)  # the drop folder is drained first
    # systemd expands no variables in path settings: a `$` there would be taken literally.
    for line in service.splitlines():
        key, _, value = line.partition("=")
        if key in PATH_SETTINGS:
            assert "$" not in value.split("'")[0], line
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze not found: install systemd to verify the units")
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    files = [str(tmp_path / name) for name in units]
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *files], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    calendar = next(line for line in units["monitor.timer"].splitlines() if "OnCalendar" in line)
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "calendar", calendar.split("=", 1)[1]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_systemd_analyze_catches_a_variable_in_a_path(tmp_path: Path) -> None:
    """Guards the guard: the check above would fail on `WorkingDirectory=${PROJECT_DIR}`."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze not found: install systemd to verify the units")
    units = render(parse_settings(params()))
    (tmp_path / "monitor.service").write_text(
        units["monitor.service"].replace("WorkingDirectory=/srv/", "WorkingDirectory=${ROOT}/")
    )
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(tmp_path / "monitor.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "not absolute" in done.stderr
{%- else %}


def test_the_cronjob_runs_the_services_image_on_the_schedule_and_reads_its_sink() -> None:
    rendered = {
        name: yaml.safe_load(text)
        for name, text in render(parse_settings(params(schedule="*/30 * * * *"))).items()
    }
    cronjob, config = rendered["monitor-cronjob.yaml"], rendered["monitoring-config.yaml"]
    assert cronjob["spec"]["schedule"] == "*/30 * * * *"
    assert cronjob["spec"]["timeZone"] == "Etc/UTC"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    deployment = yaml.safe_load((ROOT / "deploy/k8s/deployment.yaml").read_text())
    served = deployment["spec"]["template"]["spec"]["containers"][0]
    # The same image placeholder: kustomization.yaml `images:` pins both to one release.
    assert pod["containers"][0]["image"] == served["image"]
    # The pods sample to, and the monitor reads from, the one place the ConfigMap names.
    name = config["metadata"]["name"]
    assert {"configMapRef": {"name": name}} in served["envFrom"]
    assert {"configMapRef": {"name": name}} in pod["containers"][0]["envFrom"]
    monitoring = yaml.safe_load((ROOT / "params.yaml").read_text())["monitoring"]
    root = monitoring["cluster_root"]
    assert config["data"]["SERVE_SAMPLE_SINK"] == f"{root}/samples"
    # Pods bound a volume by the retention of params.yaml; a bucket has a lifecycle rule.
    kept = [config["data"].get(f"SERVE_SAMPLE_MAX_{key}") for key in ("AGE_HOURS", "MEGABYTES")]
    wanted = [f"{monitoring['retention'][key]:g}" for key in ("max_age_hours", "max_megabytes")]
    assert kept == ([None, None] if "://" in root else wanted)
    assert "monitor --model-dir" in pod["containers"][0]["command"][-1]
{%- endif %}
