"""Great Expectations (GX Core 1.x, ephemeral context): suites built from rules.py. Row and table
rules run on the gate's flags frame: a cached Spark frame, or a pandas frame of the evidence
columns DuckDB computed (validate.py picks the engine by the day's size); fact rules on a one-row
pandas frame of the commit's facts; an unchanged day is re-judged from its stored result with
only the fact rules run again. GX's own Data Docs page is rendered as one self-contained file."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deep_storage.quality.rule_columns import evidence_column
from deep_storage.quality.rules import FAIL, TIME_RULES, FactRule, RowRule, TableRule
from deep_storage.quality.verdict import RuleResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

SAMPLES = 20
_ROW_RULE_RESULT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLES}
_TABLE_RULE_TYPES = ("expect_table_row_count_to_equal", "expect_table_row_count_to_be_between")


def preload() -> threading.Thread:
    """Import Great Expectations in the background (about 3 s, the gate's largest fixed cost),
    while the caller reads the day: the first suite then finds it loaded. The thread's name
    starts with "preload-": spark_session.build waits for such threads before Spark forks its
    JVM."""

    def load() -> None:
        import great_expectations
        import great_expectations.expectations  # noqa: F401

    thread = threading.Thread(target=load, name="preload-great-expectations", daemon=True)
    thread.start()
    return thread


def _loaded() -> None:
    """Wait for a background import of GX to end before this thread imports from it: two
    threads importing GX's mutually dependent modules at once fail with "partially initialized
    module"."""
    from deep_storage.io.spark_session import wait_for_background_imports

    wait_for_background_imports()


def _context():
    import great_expectations as gx

    # GX logs every expectation's defaults at INFO; the KFP executor runs the root logger at INFO.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _contract_expectations(schema: StructType, extras: list[str]):
    import great_expectations.expectations as gxe

    out = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*schema.fieldNames(), *extras],
            exact_match=True,
            meta=_meta("contract_columns", FAIL),
            description="exactly the contract's columns (plus the validator's _ helpers)",
        )
    ]
    return out


def _type_expectations(expected_types: dict[str, list[str]]):
    """contract_types on the files' own footers (file_types.frame): each column holds the
    contract's Arrow type in every file (or is missing from files older than the column)."""
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=name,
            value_set=arrow_types,
            meta=_meta("contract_types", FAIL),
            description=f"{name} is {arrow_types[0]} in every file",
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 3},
        )
        for name, arrow_types in expected_types.items()
    ]


def _rule_expectations(row_rules, table_rules):
    import great_expectations.expectations as gxe

    out = []
    for rule in row_rules:
        # The rule's evidence column (rule_columns.with_evidence) is NULL for a good row and
        # holds the offending values otherwise: GX samples those values, and bundles every
        # rule's count into one aggregation over the cached frame, not a Spark job per rule.
        out.append(
            gxe.ExpectColumnValuesToBeNull(
                column=evidence_column(rule),
                description=f"{rule.name} ({rule.level}): {rule.description}; a row is good "
                f"when: {rule.ok}",
                meta=_meta(rule.name, rule.level),
                result_format=_ROW_RULE_RESULT,
            )
        )
    for rule in table_rules:
        # GX's own row-count expectations: the same on Spark and on pandas.
        described = {
            "description": f"{rule.name} ({rule.level}): {rule.description}",
            "meta": _meta(rule.name, rule.level),
        }
        if rule.min_rows == rule.max_rows:
            out.append(gxe.ExpectTableRowCountToEqual(value=rule.min_rows, **described))
        else:
            out.append(
                gxe.ExpectTableRowCountToBeBetween(
                    min_value=rule.min_rows, max_value=rule.max_rows, **described
                )
            )
    return out


def _fact_expectations(fact_rules):
    import great_expectations.expectations as gxe

    out = []
    for rule in fact_rules:
        # Two expectations, one rule (folded by the rule named in their meta): GX's range check
        # skips a missing value, which must break the rule.
        described = f"{rule.name} ({rule.level}): {rule.description}"
        meta = _meta(rule.name, rule.level)
        out.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=rule.column, description=described, meta=meta, result_format="COMPLETE"
            )
        )
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=rule.column,
                min_value=rule.min_value,
                description=described,
                meta=meta,
                result_format="COMPLETE",
            )
        )
    return out


_FACT_TYPES = ("expect_column_values_to_be_between", "expect_column_values_to_not_be_null")


def _facts_frame(fact_rules, facts: dict[str, Any]):
    import pandas as pd

    return pd.DataFrame(
        {
            rule.column: pd.Series([facts.get(rule.column)], dtype="datetime64[us, UTC]")
            for rule in fact_rules
        }
    )


def _meta(name: str, level: str) -> dict:
    return {"rule": name, "level": level}


def _run(context, name: str, frame, expectations, engine: str = "spark"):
    import great_expectations as gx

    sources = context.data_sources
    add = sources.add_spark if engine == "spark" else sources.add_pandas
    asset = add(name=f"lake-{name}").add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("day")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    # No run-wide result_format: each expectation carries its own.
    return definition.run(batch_parameters={"dataframe": frame})


def _combined(suite_name: str, parts):
    """One validation result holding every expectation's result, as GX renders and stores it."""
    from great_expectations.core import ExpectationSuiteValidationResult

    results = [r for part in parts for r in part.results]
    passed = sum(bool(r.success) for r in results)
    return ExpectationSuiteValidationResult(
        success=all(part.success for part in parts),
        results=results,
        suite_name=suite_name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": 100.0 * passed / len(results) if results else None,
        },
        meta=parts[0].meta,
    )


def validate(
    frame: DataFrame,
    flags: DataFrame,
    suite_name: str,
    schema: StructType,
    extras: list[str],
    row_rules: tuple[RowRule, ...],
    table_rules: list[TableRule],
    fact_rules: Sequence[FactRule] = (),
    facts: dict[str, Any] | None = None,
    file_types=None,
    expected_types: dict[str, list[str]] | None = None,
    timings: dict[str, float] | None = None,
    engine: str = "spark",
):
    """Run the suite: the contract's columns on `frame` (its schema only: no pass over the
    rows), the contract's types on `file_types` (each file's footer, file_types.frame, against
    `expected_types`), the rules on `flags` (the rules' evidence columns, one row per row of the
    day: cached on Spark, or a pandas frame), the fact rules on `facts` (the commit's). `engine`
    says what `frame` and `flags` are: "spark" frames or "pandas" ones.
    `timings` (when given) receives each part's wall seconds: contract, types, row rules, table
    rules, facts. Returns (GX result, [RuleResult])."""
    _loaded()
    timings = {} if timings is None else timings
    context = _context()
    parts = []

    def timed(part: str, run, *args, **kwargs) -> None:
        started = time.monotonic()
        parts.append(run(context, *args, **kwargs))
        timings[part] = round(time.monotonic() - started, 3)

    _check_contract(timed, suite_name, frame, schema, extras, file_types, expected_types, engine)
    _check_rules(timed, suite_name, flags, row_rules, table_rules, fact_rules, facts, engine)
    result = _combined(suite_name, parts)
    descriptions = {r.name: r.description for r in (*row_rules, *table_rules, *fact_rules)}
    return result, with_facts(fold(result, descriptions), fact_rules, facts or {})


def _check_contract(
    timed: Callable[..., None],
    suite_name: str,
    frame,
    schema: StructType,
    extras: list[str],
    file_types,
    expected_types: dict[str, list[str]] | None,
    engine: str,
) -> None:
    """The contract's parts of the suite: the columns on `frame`, the types on the files'
    footers."""
    timed(
        "contract",
        _run,
        f"{suite_name}-contract",
        frame,
        _contract_expectations(schema, extras),
        engine=engine,
    )
    if file_types is not None and len(file_types):
        timed(
            "types",
            _run,
            f"{suite_name}-types",
            file_types,
            _type_expectations(expected_types or {}),
            engine="pandas",
        )


def _check_rules(
    timed: Callable[..., None],
    suite_name: str,
    flags,
    row_rules: tuple[RowRule, ...],
    table_rules: list[TableRule],
    fact_rules: list[FactRule],
    facts: dict[str, Any] | None,
    engine: str,
) -> None:
    """The rules' parts of the suite: row and table rules on `flags`, fact rules on `facts`."""
    if flags is not None:  # None: the rows cannot be read with the contract's types
        timed(
            "row rules", _run, suite_name, flags, _rule_expectations(row_rules, []), engine=engine
        )
        if table_rules:
            timed(
                "table rules",
                _run,
                f"{suite_name}-table",
                flags,
                _rule_expectations((), table_rules),
                engine=engine,
            )
    if fact_rules:
        timed("facts", _facts_part, suite_name, fact_rules, facts or {})


def _facts_part(context, suite_name: str, fact_rules, facts: dict[str, Any]):
    return _run(
        context,
        f"{suite_name}-facts",
        _facts_frame(fact_rules, facts),
        _fact_expectations(fact_rules),
        engine="pandas",
    )


def rejudge(
    prior_json: str,
    suite_name: str,
    fact_rules: list[FactRule],
    facts: dict[str, Any],
    descriptions: dict[str, str],
):
    """An unchanged day's verdict: its stored GX result (results.json) with the rules that
    depend on the run's time (rules.TIME_RULES) judged again by GX on the commit's `facts`; the
    rows are not read. Returns (GX result, [RuleResult]) as `validate` does, or None when the
    stored result cannot be read back."""
    _loaded()
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResultSchema,
    )
    from marshmallow import ValidationError

    try:
        prior = ExpectationSuiteValidationResultSchema().load(json.loads(prior_json))
    except (ValueError, ValidationError):
        return None
    prior.results = [
        r for r in prior.results if (r.expectation_config.meta or {}).get("rule") not in TIME_RULES
    ]
    prior.success = all(r.success for r in prior.results)
    parts = [prior]
    if fact_rules:
        parts.append(_facts_part(_context(), suite_name, fact_rules, facts))
    result = _combined(suite_name, parts)
    described = {**descriptions, **{r.name: r.description for r in fact_rules}}
    return result, with_facts(fold(result, described), fact_rules, facts)


def fold(result, descriptions: dict[str, str]) -> list[RuleResult]:
    """One RuleResult per rule from GX's results, which come in no particular order and several
    per rule (the contract's types, a fact rule's two checks): a rule passes when all of its
    expectations pass, and shows the first failure's observed values."""
    folded: dict[str, RuleResult] = {}
    for r in result.results:
        m = r.expectation_config.meta or {}
        name, level = m.get("rule", r.expectation_config.type), m.get("level", FAIL)
        prior = folded.get(name)
        success = bool(r.success) and (prior.success if prior else True)
        observed, percent, samples = _shown(r, name, prior)
        folded[name] = RuleResult(
            name,
            level,
            success,
            descriptions.get(name, r.expectation_config.description or ""),
            observed,
            percent,
            samples,
        )
    _describe_contract(folded)
    return list(folded.values())


def _shown(r, name: str, prior: RuleResult | None) -> tuple[Any, float | None, tuple[dict, ...]]:
    """What a rule shows for one of its GX results (observed value, percent, samples): the
    rule's first failure, once it has one."""
    found = r.result or {}
    observed = found.get("observed_value", found.get("unexpected_count"))
    percent = found.get("unexpected_percent")
    samples = _samples(found)
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = f"error: {r.exception_info.get('exception_message')}"
    if prior and not prior.success:
        observed, percent, samples = prior.observed, prior.percent, prior.samples
    elif not r.success and name == "contract_types":
        column = r.expectation_config.kwargs.get("column")
        wrong = sorted({str(v) for v in found.get("partial_unexpected_list") or []})
        count = found.get("unexpected_count")
        observed = (
            f"{column} is {', '.join(wrong) or observed} in {count} file(s): expected "
            f"{(r.expectation_config.kwargs.get('value_set') or ['?'])[0]}"
        )
        samples = ()
    elif not r.success and r.expectation_config.type in _TABLE_RULE_TYPES:
        # What the rule compared: the day's rows against the bound it was held to.
        kwargs = r.expectation_config.kwargs
        bound = kwargs.get("value", [kwargs.get("min_value"), kwargs.get("max_value")])
        samples = ({"lake_rows": observed, "expected_rows": bound},)
    elif r.expectation_config.type in _FACT_TYPES:
        samples = ()  # a fact rule shows the fact itself (with_facts), not GX's one-row frame
    return observed, percent, samples


def with_facts(results: list[RuleResult], fact_rules, facts: dict[str, Any]) -> list[RuleResult]:
    """Each fact rule's result shows the fact it judged, read from the commit's facts (GX's
    result holds a row count, or nothing when the value was in range), beside what it was held
    against."""
    shown = {rule.name: fact_observed(rule, facts) for rule in fact_rules}
    return [replace(r, observed=shown[r.name]) if r.name in shown else r for r in results]


def fact_observed(rule: FactRule, facts: dict[str, Any]) -> str:
    value = facts.get(rule.column)
    held = f"newest event {value.isoformat()}" if value is not None else "no rows"
    return f"{held}; {rule.reference}" if rule.reference else held


def _describe_contract(folded: dict[str, RuleResult]) -> None:
    """The contract's rules described as rules, not by the last of their GX expectations."""
    if "contract_types" in folded:
        folded["contract_types"] = RuleResult(
            "contract_types",
            FAIL,
            folded["contract_types"].success,
            "every column has the contract's type",
            folded["contract_types"].observed,
        )
    if "contract_columns" in folded:
        c = folded["contract_columns"]
        folded["contract_columns"] = RuleResult(
            c.name, c.level, c.success, "exactly the contract's columns", c.observed
        )


def _samples(found: dict) -> tuple[dict, ...]:
    """The offending rows GX sampled: a row rule's evidence JSON."""
    out: list[dict] = []
    for value in found.get("partial_unexpected_list") or []:
        try:
            parsed = json.loads(value, parse_float=Decimal)
        except (TypeError, ValueError):
            parsed = {"value": value}
        out.append(parsed if isinstance(parsed, dict) else {"value": parsed})
    return tuple(out[:SAMPLES])


def render_html(result, title: str, gate_outcome: str, page_uri: str) -> str:
    """GX's own Data Docs page for the suite, as ONE file: its CSS inlined, links to CDNs, the
    logo and the newsletter banner removed (the Kubeflow UI shows it in a sandboxed frame, and
    the cluster may have no internet). GX calls a suite failed when any expectation breaks, warn
    rules included: a banner on top states the gate's own verdict and where its page is."""
    _loaded()
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    html = re.sub(r"<link[^>]*>", "", html)
    html = re.sub(r"<script[^>]*\bsrc=[^>]*>\s*</script>", "", html)
    html = re.sub(r"<img[^>]*>", "", html)
    html = re.sub(r"<nav[^>]*>.*?</nav>", "", html, flags=re.S)
    html = re.sub(r"<footer>.*?</footer>", "", html, flags=re.S)  # the newsletter banner
    import great_expectations.render.view as view

    styles = Path(view.__file__).parent / "static" / "styles" / "data_docs_default_styles.css"
    css = styles.read_text() if styles.exists() else ""
    css += (
        "body{font-family:system-ui,sans-serif;margin:1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}"
        ".text-danger{color:#b00020}.text-success{color:#1b7f3b}"
        ".gate{padding:10px 14px;border-radius:6px;background:#f1f3f6;margin-bottom:12px}"
    )
    head = f"<title>{escape(title)}: Great Expectations</title><style>{css}</style>"
    banner = (
        f'<div class="gate">The gate\'s verdict for {escape(title)}: '
        f"<b>{gate_outcome.upper()}</b>. Great Expectations marks the suite failed when any "
        "expectation breaks, warn-level rules included; the gate fails only on fail-level "
        f"rules. The gate's page: {escape(page_uri)}</div>"
    )
    html = html.replace("<head>", f"<head>{head}", 1) if "<head>" in html else head + html
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, html, count=1)
