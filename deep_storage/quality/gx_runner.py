"""Great Expectations (GX Core 1.x, ephemeral context, Spark dataframe source): suites built from
rules.py, run on a cached frame, rendered to one self-contained HTML page."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deep_storage.quality.rules import FAIL, RowRule, TableRule

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleResult:
    name: str
    level: str
    success: bool
    description: str
    observed: Any = None

    @property
    def outcome(self) -> str:
        if self.success:
            return "passed"
        return "failed" if self.level == FAIL else "warned"


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
    for field in schema.fields:
        out.append(
            gxe.ExpectColumnValuesToBeOfType(
                column=field.name,
                type_=type(field.dataType).__name__,
                meta=_meta("contract_types", FAIL),
                description=f"{field.name} is {field.dataType.simpleString()}",
            )
        )
    return out


def _rule_expectations(row_rules, table_rules):
    import great_expectations.expectations as gxe

    out = []
    for rule in row_rules:
        # A flag column per rule (helpers.with_rule_flags): GX bundles these column metrics into
        # one aggregation over the cached flags instead of a Spark job per rule.
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=f"_ok_{rule.name}",
                value_set=[True],
                description=f"{rule.name} ({rule.level}): {rule.description}; a row is good "
                f"when: {rule.ok}",
                meta=_meta(rule.name, rule.level),
            )
        )
    for rule in table_rules:
        out.append(
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=rule.unexpected,
                description=f"{rule.name} ({rule.level}): {rule.description}",
                meta=_meta(rule.name, rule.level),
            )
        )
    return out


def _meta(name: str, level: str) -> dict:
    return {"rule": name, "level": level}


def _run(context, name: str, frame: DataFrame, expectations):
    import great_expectations as gx

    asset = context.data_sources.add_spark(name=f"lake-{name}").add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("day")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    return definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")


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
):
    """Run the suite: the contract's columns and types on `frame` (its schema only: no pass over
    the rows), the rules on `flags` (the rule flags and the columns the table rules read,
    cached: one small frame for every rule). Returns (GX result, [RuleResult])."""
    context = _context()
    result = _combined(
        suite_name,
        [
            _run(context, f"{suite_name}-contract", frame, _contract_expectations(schema, extras)),
            _run(context, suite_name, flags, _rule_expectations(row_rules, table_rules)),
        ],
    )
    # GX returns results in no particular order: fold them by the rule named in their meta.
    folded: dict[str, RuleResult] = {}
    descriptions = {r.name: r.description for r in (*row_rules, *table_rules)}
    for r in result.results:
        m = r.expectation_config.meta or {}
        name, level = m.get("rule", r.expectation_config.type), m.get("level", FAIL)
        found = r.result or {}
        observed = found.get("observed_value", found.get("unexpected_count"))
        if r.exception_info and r.exception_info.get("raised_exception"):
            observed = f"error: {r.exception_info.get('exception_message')}"
        prior = folded.get(name)
        success = bool(r.success) and (prior.success if prior else True)
        if prior and not prior.success:
            observed = prior.observed
        elif not r.success and name == "contract_types":
            observed = f"{r.expectation_config.kwargs.get('column')} is {observed}"
        folded[name] = RuleResult(
            name,
            level,
            success,
            descriptions.get(name, r.expectation_config.description or ""),
            observed,
        )
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
    return result, list(folded.values())


def render_html(result, title: str) -> str:
    """GX's validation page as ONE file: its own CSS inlined, links to CDNs removed (the
    Kubeflow UI shows it in a sandboxed frame, and the cluster may have no internet)."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    html = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result))
    html = re.sub(r"<link[^>]*>", "", html)
    html = re.sub(r"<script[^>]*\bsrc=[^>]*>\s*</script>", "", html)
    import great_expectations.render.view as view

    styles = Path(view.__file__).parent / "static" / "styles" / "data_docs_default_styles.css"
    css = styles.read_text() if styles.exists() else ""
    css += (
        "body{font-family:system-ui,sans-serif;margin:1rem}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top}"
        ".text-danger{color:#b00020}.text-success{color:#1b7f3b}"
    )
    head = f"<title>{title}</title><style>{css}</style>"
    return html.replace("<head>", f"<head>{head}", 1) if "<head>" in html else head + html
