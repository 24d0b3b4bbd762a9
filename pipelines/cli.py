"""The KFP half of `deep-storage`: compile, run-local, and the `kfp` group (submit, schedule,
backfill), which takes the connection to a KFP API server once, as `kfp --endpoint ... run create`.

`command()` builds the whole `deep-storage` group: the library's commands (deep_storage.cli,
which never imports kfp) and these, registered explicitly. Data flows one way: CLI ->
pipelines/components -> library -> lake.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import asdict, dataclass, field, fields
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
# compiled/ and its pipelines' files, as pipelines/compile.py writes them (not imported from there:
# importing it builds every pipeline, seconds on each command).
COMPILED = Path(__file__).resolve().parent.parent / "compiled"
# What `schedule --pipeline` schedules: (file in compiled/, recurring run name, cron).
SCHEDULES = {
    "lake": ("deep_storage_pipeline.yaml", "deep-storage-hourly", HOURLY),
    "training": ("training_pipeline.yaml", "deep-storage-training-weekly", WEEKLY_TRAINING),
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


# --- deep-storage kfp: the connection once, on the group ------------------------------------------


@dataclass(frozen=True)
class KfpConnection:
    """Where `deep-storage kfp` sends its requests and how it prints their results: the group's
    options, given once. Nothing is contacted until a command calls `client()`, so `--help`
    needs no host."""

    host: str | None
    token: str | None = field(repr=False)  # never printed
    verify_ssl: bool = True
    namespace: str = "kubeflow"
    experiment: str = "deep-storage"
    as_json: bool = False

    def client(self):
        """A `kfp.Client` for the host, once it has answered and accepted the token."""
        from deep_storage_kfp.pipelines import client

        if not self.host:
            raise InputError(
                "--host is not set: expected the KFP API URL, e.g. http://localhost:8888: pass "
                "`deep-storage kfp --host URL ...` or set KFP_HOST"
            )
        return client.connect(self.host, self.token, self.namespace, self.verify_ssl)

    def show(self, result, text: str) -> None:
        import json

        click.echo(json.dumps(result, indent=2, default=str) if self.as_json else text)


@click.group("kfp")
@click.option(
    "--host",
    envvar="KFP_HOST",
    default=None,
    help="KFP API endpoint, e.g. http://127.0.0.1:8888 (env KFP_HOST; needed by every command).",
)
@click.option(
    "--token", envvar="KFP_TOKEN", default=None, help="Bearer token (env KFP_TOKEN); never printed."
)
@click.option(
    "--verify-ssl/--no-verify-ssl",
    default=True,
    show_default=True,
    help="Check the API's TLS certificate (--no-verify-ssl for a self-signed one).",
)
@click.option("--namespace", default="kubeflow", show_default=True)
@click.option("--experiment", default="deep-storage", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print each result as JSON.")
@click.pass_context
def kfp_group(ctx: click.Context, **connection) -> None:
    """Run the pipelines on a Kubeflow Pipelines API server: submit, schedule, backfill.

    The connection is given once, before the command:

    \b
    deep-storage kfp --host URL [--token T] [--json] schedule [--pipeline training] ...
    """
    ctx.obj = KfpConnection(**connection)


pass_connection = click.make_pass_decorator(KfpConnection)


class KfpCommand(click.Command):
    """A command of `deep-storage kfp`: a connection option given after it is pointed before it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            group = {opt for p in kfp_group.params for opt in (*p.opts, *p.secondary_opts)}
            if exc.option_name not in group:
                raise
            name = exc.option_name
            raise InputError(
                f"{name} is an option of `deep-storage kfp`, not of {self.name}: give it before "
                f"the command: deep-storage kfp {name} ... {self.name} ..."
            ) from None


@dataclass(frozen=True)
class PipelineParams:
    """The pipeline's parameters and package, as every `deep-storage kfp` command takes them."""

    package: Path | None
    lake: str
    lookback_days: int
    max_days: int | None
    db_secret: str
    s3_secret: str
    service_account: str | None

    def lake_parameters(self, **extra) -> dict:
        """The lake pipeline's parameters (`extra`: a run's dates)."""
        return {
            "lake_uri": self.lake,
            "lookback_days": self.lookback_days,
            "max_days": self.max_days,  # None: dropped, the pipeline's default applies
            "db_secret": self.db_secret,
            "s3_secret": self.s3_secret,
            **extra,
        }


@dataclass(frozen=True)
class TrainingWindow:
    """`schedule`'s options for the training pipeline only (None: the pipeline's default)."""

    training_set: str | None
    set_version: str | None
    from_day: str | None
    to_day: str | None
    test_from: str | None


def _as_one(cls, name: str, options: list):
    """A decorator: `options` on the command, handed to its function as one `cls` named `name`."""
    keys = [f.name for f in fields(cls)]

    def decorator(func):
        @functools.wraps(func)
        def collected(*args, **kwargs):
            kwargs[name] = cls(**{key: kwargs.pop(key) for key in keys})
            return func(*args, **kwargs)

        for option in reversed(options):
            collected = option(collected)
        return collected

    return decorator


pipeline_params = _as_one(
    PipelineParams,
    "params",
    [
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
    ],
)


def _package(path: Path | None, pipeline: str = "lake") -> Path:
    return path or COMPILED / SCHEDULES[pipeline][0]


@kfp_group.command(cls=KfpCommand)
@pass_connection
@pipeline_params
@click.option(
    "--date",
    "run_date",
    default="",
    metavar="YYYY-MM-DD",
    help="run_date (default: the run's creation date).",
)
@click.option("--until", "until_date", default="", metavar="YYYY-MM-DD")
def submit(kfp: KfpConnection, params: PipelineParams, run_date: str, until_date: str) -> None:
    """Create one run of the pipeline on a KFP API server."""
    from deep_storage_kfp.pipelines import client

    # Checked here, before anything reaches the cluster: the run would fail in its first pod.
    if run_date:
        DayRange.parse(run_date, until_date or None, names=("--date", "--until"))
    elif until_date:
        raise InputError("--until needs --date")

    result = client.submit(
        kfp.client(),
        _package(params.package),
        params.lake_parameters(run_date=run_date, until_date=until_date),
        experiment=kfp.experiment,
        service_account=params.service_account,
    )
    kfp.show(result, f"run {result['run_id']} created ({result['run_name']})")


training_window = _as_one(
    TrainingWindow,
    "training",
    [
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
        click.option(
            "--from-day",
            metavar="YYYY-MM-DD",
            help="First gold day (default: the library's window).",
        ),
        click.option(
            "--to-day",
            metavar="YYYY-MM-DD",
            help="Last gold day, inclusive (default: the library's window).",
        ),
        click.option(
            "--test-from",
            metavar="YYYY-MM-DD",
            help="First day of the test split (default: the start of the range's last fifth).",
        ),
    ],
)


@kfp_group.command(cls=KfpCommand)
@pass_connection
@pipeline_params
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
@training_window
def schedule(
    kfp: KfpConnection,
    params: PipelineParams,
    training: TrainingWindow,
    pipeline: str,
    name: str | None,
    cron: str | None,
    max_concurrency: int,
    catchup: bool,
) -> None:
    """Create or update a recurring run of a pipeline, idempotently by name."""
    from deep_storage_kfp.pipelines import client

    if pipeline == "training":
        parameters = _training_parameters(params, training)
    else:
        parameters = _lake_parameters(params, training)
    _, default_name, default_cron = SCHEDULES[pipeline]
    name, cron = name or default_name, cron or default_cron
    result = client.schedule(
        kfp.client(),
        _package(params.package, pipeline),
        name=name,
        cron=cron,
        params=parameters,
        experiment=kfp.experiment,
        max_concurrency=max_concurrency,
        catchup=catchup,
        service_account=params.service_account,
    )
    kfp.show(
        result, f"recurring run {name!r} {result['action']} ({result['recurring_run_id']}, {cron})"
    )


def _lake_parameters(params: PipelineParams, training: TrainingWindow) -> dict:
    """The lake pipeline's parameters; a training option is refused, not ignored."""
    given = [TRAINING_FLAGS[key] for key, value in asdict(training).items() if value is not None]
    if given:
        raise InputError(
            f"{', '.join(given)}: options of the training pipeline; add --pipeline training "
            "or drop them"
        )
    return params.lake_parameters()


def _training_parameters(params: PipelineParams, training: TrainingWindow) -> dict:
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
    days = {key: getattr(training, key) for key in ("from_day", "to_day", "test_from")}
    for key, value in days.items():
        if value:
            parse_day(value, name=TRAINING_FLAGS[key])
    return {
        "lake_uri": params.lake,
        "s3_secret": params.s3_secret,
        "name": training.training_set,  # None: dropped, the pipeline's default applies
        "version": training.set_version,  # None: dropped, each run picks the next version
        **days,
    }


@kfp_group.command(cls=KfpCommand)
@pass_connection
@pipeline_params
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
    kfp: KfpConnection, params: PipelineParams, first: str, last: str, executors: int
) -> None:
    """Submit one run that covers every UTC day from --from to --to."""
    from deep_storage_kfp.pipelines import client

    days = DayRange.parse(first, last, names=("--from", "--to"))
    connected = kfp.client()
    service_account = _backfill_account(params.service_account, executors)
    runs = client.backfill(
        connected,
        _backfill_package(params.package, executors, params.s3_secret),
        days.first,
        days.last,
        params.lake_parameters(),
        experiment=kfp.experiment,
        service_account=service_account,
    )
    kfp.show(runs, f"{len(runs)} runs created for {days}")


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


def _old_spelling(command: click.Command) -> click.Command:
    """`deep-storage submit --host URL ...`, the spelling before the `kfp` group: hidden, the
    group's options beside the command's, and a note on stderr naming the new spelling."""

    def callback(**options):
        connection = {p.name: options.pop(p.name) for p in kfp_group.params}
        click.get_current_context().obj = KfpConnection(**connection)
        click.echo(
            f"note: `deep-storage {command.name}` is now `deep-storage kfp [--host URL ...] "
            f"{command.name}`",
            err=True,
        )
        return command.callback(**options)

    return click.Command(
        command.name,
        params=[*kfp_group.params, *command.params],
        callback=callback,
        help=command.help,
        hidden=True,
        context_settings=command.context_settings,
    )


KFP_COMMANDS = (compile_cmd, run_local, kfp_group)
OLD_SPELLINGS = tuple(_old_spelling(c) for c in kfp_group.commands.values())


def command() -> click.Group:
    """`deep-storage`: the library's commands and the KFP ones, in one group built here."""
    return click.Group(
        name="deep-storage",
        params=list(library_cli.params),
        callback=library_cli.callback,
        help=library_cli.help,
        context_settings=library_cli.context_settings,
        commands={
            **library_cli.commands,
            **{c.name: c for c in (*KFP_COMMANDS, *OLD_SPELLINGS)},
        },
    )


def main(argv: list[str] | None = None) -> int:
    return _main(argv, command())


if __name__ == "__main__":
    sys.exit(main())
