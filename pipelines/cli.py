"""The KFP half of `deep-storage`: compile, run-local, submit, schedule, backfill.

`command()` builds the whole `deep-storage` group: the library's commands (deep_storage.cli,
which never imports kfp) and these, registered explicitly. Data flows one way: CLI ->
pipelines/components -> library -> lake.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deep_storage.cli import cli as library_cli
from deep_storage.cli import lake_option, until_option
from deep_storage.cli import main as _main
from deep_storage.core import defaults
from deep_storage.core.config import resolve_lake
from deep_storage.core.dates import DayRange, parse_day
from deep_storage.core.errors import InputError, LakeStateError

# Hourly at :05: each run ingests today so far and yesterday until it seals, so an event reaches
# silver within the hour. Daily at 01:15 stays available for lakes without that SLA.
HOURLY = "0 5 * * * *"
DAILY = "0 15 1 * * *"
# The training pipeline: Mondays at 06:00, after the weekend's days have reached silver.
WEEKLY_TRAINING = "0 0 6 * * 1"
# What `schedule --pipeline` schedules: (compiled file attribute, recurring run name, cron).
SCHEDULES = {
    "lake": ("PIPELINE_FILE", "deep-storage-hourly", HOURLY),
    "training": ("TRAINING_FILE", "deep-storage-training-weekly", WEEKLY_TRAINING),
}
# The training pipeline's own options, by parameter, and the lake pipeline's that it lacks.
TRAINING_FLAGS = {
    "training_set": "--training-set",
    "set_version": "--set-version",
    "from_day": "--from-day",
    "to_day": "--to-day",
    "test_from": "--test-from",
}
LAKE_ONLY_FLAGS = {
    "lookback_days": "--lookback-days",
    "max_days": "--max-days",
    "db_secret": "--db-secret",
}


@click.command("compile")
@click.option("--check", is_flag=True, help="Fail when compiled/ differs from a fresh compile.")
def compile_cmd(check: bool) -> None:
    """Write compiled/ (the pipeline and each component as KFP YAML)."""
    from deep_storage_kfp.pipelines import compile as compiling

    if check:
        problems = compiling.stale()
        if problems:
            raise LakeStateError(
                f"compiled/ is stale: {'; '.join(problems)[:400]}: run `make compile` and commit"
            )
        click.echo("compiled/ is up to date")
        return
    for path in compiling.compile_all():
        click.echo(f"wrote {path.relative_to(compiling.REPO)}")


@click.command("run-local")
@click.option("--date", "date", required=True, metavar="YYYY-MM-DD", help="Run date.")
@until_option
@lake_option
@click.option(
    "--lookback-days", type=click.IntRange(0, 60), default=defaults.LOOKBACK_DAYS, show_default=True
)
@click.option(
    "--pipeline-root",
    type=click.Path(path_type=Path),
    default=Path(".cache/kfp-local"),
    show_default=True,
    help="Where kfp.local keeps each task's outputs.",
)
@click.option(
    "--image",
    default="",
    metavar="IMAGE",
    help="Run each task in this image as the cluster does (KFP's executor, user 185, read-only "
    "root) through Docker, e.g. the tag `make spark-image-build` builds (default: this venv).",
)
@click.option(
    "--network",
    default="host",
    show_default=True,
    help="With --image: the tasks' Docker network (host: they reach this machine's services).",
)
def run_local(date, until, lake, lookback_days, pipeline_root, image, network) -> None:
    """Run the whole pipeline here through kfp.local (SubprocessRunner; with --image, Docker)."""
    from deep_storage_kfp.pipelines import local

    days = DayRange.parse(date, until, names=("--date", "--until"))
    if network != "host" and not image:
        raise InputError(f"--network {network}: only for tasks in an image: add --image IMAGE")
    result = local.run(
        days.first,
        days.last if until else None,
        resolve_lake(lake),
        pipeline_root.resolve(),
        lookback_days,
        image=image,
        network=network,
    )
    labels = {"report": "HTML report", "summary": "Markdown summary"}
    click.echo(f"pipeline run finished: {result.root}")
    for name, path in result.outputs.items():
        click.echo(f"  {labels.get(name, name)}: {path}")
    for task, metrics in result.metrics.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in metrics.items())
        click.echo(f"  {task} metrics: {shown}")


def _kfp_options(func):
    options = [
        click.option(
            "--host",
            envvar="KFP_HOST",
            required=True,
            help="KFP API endpoint, e.g. http://127.0.0.1:8888 (env KFP_HOST).",
        ),
        click.option(
            "--token",
            envvar="KFP_TOKEN",
            default=None,
            help="Bearer token (env KFP_TOKEN); never printed.",
        ),
        click.option(
            "--verify-ssl/--no-verify-ssl",
            default=True,
            show_default=True,
            help="Check the API's TLS certificate (--no-verify-ssl for a self-signed one).",
        ),
        click.option("--namespace", default="kubeflow", show_default=True),
        click.option("--experiment", default="deep-storage", show_default=True),
        click.option(
            "--package",
            type=click.Path(path_type=Path),
            default=None,
            help="Compiled pipeline YAML (default compiled/deep_storage_pipeline.yaml; schedule "
            "--pipeline training: compiled/training_pipeline.yaml).",
        ),
        click.option(
            "--lake",
            "lake",
            default="",
            help="lake_uri parameter (default: the bucket from the S3 secret).",
        ),
        click.option(
            "--lookback-days",
            type=click.IntRange(0, 60),
            default=defaults.LOOKBACK_DAYS,
            show_default=True,
        ),
        click.option(
            "--max-days",
            type=click.IntRange(1, defaults.MAX_BACKFILL_DAYS),
            default=None,
            help=f"max_days parameter: at most this many days per run, the next run continues "
            f"(default: the pipeline's, {defaults.MAX_DAYS}; backfill: the whole range).",
        ),
        click.option("--db-secret", default="django-db-credentials", show_default=True),
        click.option("--s3-secret", default="contabo-s3-credentials", show_default=True),
        click.option("--service-account", default=None, help="Run the pods as this account."),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _package(path: Path | None, pipeline: str = "lake") -> Path:
    from deep_storage_kfp.pipelines import compile as compiling

    return path or compiling.COMPILED / getattr(compiling, SCHEDULES[pipeline][0])


def _params(lake, lookback_days, max_days, db_secret, s3_secret, **extra) -> dict:
    return {
        "lake_uri": lake,
        "lookback_days": lookback_days,
        "max_days": max_days,  # None: dropped, the pipeline's default applies
        "db_secret": db_secret,
        "s3_secret": s3_secret,
        **extra,
    }


def _show(result, as_json: bool, text: str) -> None:
    import json

    click.echo(json.dumps(result, indent=2, default=str) if as_json else text)


@click.command()
@_kfp_options
@click.option(
    "--date",
    "run_date",
    default="",
    metavar="YYYY-MM-DD",
    help="run_date (default: the run's creation date).",
)
@click.option("--until", "until_date", default="", metavar="YYYY-MM-DD")
def submit(
    host,
    token,
    verify_ssl,
    namespace,
    experiment,
    package,
    lake,
    lookback_days,
    max_days,
    db_secret,
    s3_secret,
    service_account,
    as_json,
    run_date,
    until_date,
) -> None:
    """Create one run of the pipeline on a KFP API server."""
    from deep_storage_kfp.pipelines import client

    # Checked here, before anything reaches the cluster: the run would fail in its first pod.
    if run_date:
        DayRange.parse(run_date, until_date or None, names=("--date", "--until"))
    elif until_date:
        raise InputError("--until needs --date")

    kfp = client.connect(host, token, namespace, verify_ssl)
    result = client.submit(
        kfp,
        _package(package),
        _params(
            lake,
            lookback_days,
            max_days,
            db_secret,
            s3_secret,
            run_date=run_date,
            until_date=until_date,
        ),
        experiment=experiment,
        service_account=service_account,
    )
    _show(result, as_json, f"run {result['run_id']} created ({result['run_name']})")


def _training_options(func):
    day = {"metavar": "YYYY-MM-DD", "default": None}
    options = [
        click.option(
            "--training-set",
            default=None,
            metavar="NAME",
            help="Training set name (default: the pipeline's, stop_outcome).",
        ),
        click.option(
            "--set-version",
            default=None,
            metavar="VERSION",
            help="A fixed training set version (X.Y.Z) for every run (default: each run releases "
            "the next patch version when the rows moved, and changes nothing when they did not).",
        ),
        click.option("--from-day", **day, help="First gold day (default: the library's window)."),
        click.option(
            "--to-day", **day, help="Last gold day, inclusive (default: the library's window)."
        ),
        click.option(
            "--test-from",
            **day,
            help="First day of the test split (default: the start of the range's last fifth).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command()
@_kfp_options
@click.option(
    "--pipeline",
    type=click.Choice(sorted(SCHEDULES)),
    default="lake",
    show_default=True,
    help="lake: bronze -> silver -> gate -> retention (compiled/deep_storage_pipeline.yaml); "
    "training: gold features -> training set -> baseline (compiled/training_pipeline.yaml).",
)
@click.option(
    "--name",
    default=None,
    help="Recurring run name, the key that makes this idempotent (default: "
    f"{SCHEDULES['lake'][1]}; with --pipeline training: {SCHEDULES['training'][1]}).",
)
@click.option(
    "--cron",
    default=None,
    help=f"KFP's 6-field cron, seconds first, in UTC (default: {HOURLY!r}, hourly at :05, which "
    f"meets the 1 h silver SLA; daily: {DAILY!r}; with --pipeline training: "
    f"{WEEKLY_TRAINING!r}, Mondays 06:00).",
)
@click.option("--max-concurrency", type=click.IntRange(1, 10), default=1, show_default=True)
@click.option(
    "--catchup/--no-catchup",
    default=False,
    show_default=True,
    help="Let KFP start missed runs (bronze already re-ingests unsealed days).",
)
@_training_options
def schedule(
    host,
    token,
    verify_ssl,
    namespace,
    experiment,
    package,
    lake,
    lookback_days,
    max_days,
    db_secret,
    s3_secret,
    service_account,
    as_json,
    pipeline,
    name,
    cron,
    max_concurrency,
    catchup,
    **training,
) -> None:
    """Create or update a recurring run of a pipeline, idempotently by name."""
    from deep_storage_kfp.pipelines import client

    if pipeline == "training":
        params = _training_params(lake, s3_secret, **training)
    else:
        params = _lake_params(lake, lookback_days, max_days, db_secret, s3_secret, training)
    _, default_name, default_cron = SCHEDULES[pipeline]
    name, cron = name or default_name, cron or default_cron
    kfp = client.connect(host, token, namespace, verify_ssl)
    result = client.schedule(
        kfp,
        _package(package, pipeline),
        name=name,
        cron=cron,
        params=params,
        experiment=experiment,
        max_concurrency=max_concurrency,
        catchup=catchup,
        service_account=service_account,
    )
    _show(
        result,
        as_json,
        f"recurring run {name!r} {result['action']} ({result['recurring_run_id']}, {cron})",
    )


def _lake_params(lake, lookback_days, max_days, db_secret, s3_secret, training: dict) -> dict:
    """The lake pipeline's parameters; a training option is refused, not ignored."""
    given = [TRAINING_FLAGS[key] for key, value in training.items() if value is not None]
    if given:
        raise InputError(
            f"{', '.join(given)}: options of the training pipeline; add --pipeline training "
            "or drop them"
        )
    return _params(lake, lookback_days, max_days, db_secret, s3_secret)


def _training_params(lake, s3_secret, training_set, set_version, **days) -> dict:
    """The training pipeline's parameters; an option only the lake pipeline takes is refused."""
    from click.core import ParameterSource

    context = click.get_current_context()
    given = [
        flag
        for param, flag in LAKE_ONLY_FLAGS.items()
        if context.get_parameter_source(param) not in (None, ParameterSource.DEFAULT)
    ]
    if given:
        raise InputError(
            f"{', '.join(given)}: not a parameter of the training pipeline: drop it, or "
            "schedule the lake pipeline (--pipeline lake)"
        )
    for key, value in days.items():
        if value:
            parse_day(value, name=TRAINING_FLAGS[key])
    return {
        "lake_uri": lake,
        "s3_secret": s3_secret,
        "name": training_set,  # None: dropped, the pipeline's default applies
        "version": set_version,  # None: dropped, each run picks the next version
        **days,
    }


@click.command()
@_kfp_options
@click.option("--from", "first", required=True, metavar="YYYY-MM-DD")
@click.option("--to", "last", required=True, metavar="YYYY-MM-DD")
@click.option(
    "--executors",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    help="Run silver and the gate with this many Spark executor pods on Kubernetes (client "
    "mode, the same image); 0: local mode in the task pod, as the schedule runs.",
)
def backfill(
    host,
    token,
    verify_ssl,
    namespace,
    experiment,
    package,
    lake,
    lookback_days,
    max_days,
    db_secret,
    s3_secret,
    service_account,
    as_json,
    first,
    last,
    executors,
) -> None:
    """Submit one run that covers every UTC day from --from to --to."""
    from deep_storage_kfp.pipelines import client

    days = DayRange.parse(first, last, names=("--from", "--to"))
    kfp = client.connect(host, token, namespace, verify_ssl)
    service_account = _backfill_account(service_account, executors)
    runs = client.backfill(
        kfp,
        _backfill_package(package, executors, s3_secret),
        days.first,
        days.last,
        _params(lake, lookback_days, max_days, db_secret, s3_secret),
        experiment=experiment,
        service_account=service_account,
    )
    _show(runs, as_json, f"{len(runs)} runs created for {days}")


def _backfill_account(service_account: str | None, executors: int) -> str | None:
    """The account the backfill's pods run as: with `executors`, one that may create pods."""
    if not executors:
        return service_account
    # The driver manages its executor pods with this account's Role (deploy/rbac.yaml); the
    # scheduled runs' account may not create pods.
    from deep_storage_kfp.pipelines.platform import BACKFILL_SERVICE_ACCOUNT, SERVICE_ACCOUNT

    if service_account == SERVICE_ACCOUNT:
        raise InputError(
            f"--service-account {SERVICE_ACCOUNT} cannot create the executor pods that "
            f"--executors starts: expected {BACKFILL_SERVICE_ACCOUNT} (deploy/rbac.yaml); "
            "drop --service-account to use it"
        )
    return service_account or BACKFILL_SERVICE_ACCOUNT


def _backfill_package(package: Path | None, executors: int, s3_secret: str) -> Path:
    """The compiled pipeline to backfill with; with `executors`, a variant compiled here."""
    if not executors:
        return _package(package)
    if package is not None:
        raise InputError("--executors compiles its own variant of the pipeline: drop --package")
    import tempfile

    from kfp import compiler

    from deep_storage_kfp.pipelines.deep_storage_pipeline import build

    compiled = Path(tempfile.mkdtemp()) / "deep_storage_executors.yaml"
    compiler.Compiler().compile(
        build(executors=executors, s3_secret_name=s3_secret),
        str(compiled),
    )
    return compiled


KFP_COMMANDS = (compile_cmd, run_local, submit, schedule, backfill)


def command() -> click.Group:
    """`deep-storage`: the library's commands and the KFP ones, in one group built here."""
    return click.Group(
        name="deep-storage",
        params=list(library_cli.params),
        callback=library_cli.callback,
        help=library_cli.help,
        context_settings=library_cli.context_settings,
        commands={**library_cli.commands, **{c.name: c for c in KFP_COMMANDS}},
    )


def main(argv: list[str] | None = None) -> int:
    return _main(argv, command())


if __name__ == "__main__":
    sys.exit(main())
