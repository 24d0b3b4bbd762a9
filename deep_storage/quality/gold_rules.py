"""Gold's quality rules: what a training set's candidate version must hold to be released, judged
by Great Expectations on pandas frames and reported like the gate's (RuleResult per rule, a
Markdown table). A `fail` rule refuses the release (training_sets.release: nothing committed);
a `warn` is recorded in the version's record.

    label_share_within_range  warn  the label's positive share over both splits within
                                    defaults.LABEL_SHARE_RANGE ([0.1, 0.9])
    outliers_{feature}        warn  per feature: rows whose value is defaults.OUTLIER_SIGMAS (3)
                                    or more sample standard deviations from the feature's mean
                                    (GX's z-score, |z| >= 3; NULLs skipped); observed: the count
    splits_disjoint           fail  no execution_id in both splits (unique over both)
    test_after_train          fail  every test row dated after every train row; observed: the
                                    test rows dated on or before the last train day
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deep_storage.core import defaults
from deep_storage.quality.gx_runner import _context, _loaded, _meta, _run, fold
from deep_storage.quality.rules import FAIL, WARN
from deep_storage.quality.verdict import FAILED, WARNED, RuleResult, rules_table

if TYPE_CHECKING:
    from deep_storage.tables.training_sets import Candidate

LABEL_SHARE = "label_share_within_range"
SPLITS_DISJOINT = "splits_disjoint"
TEST_AFTER_TRAIN = "test_after_train"
_LABEL = "_label"  # the label as 0/1
_LAST_TRAIN = "_last_train_date"


def outlier_rule(feature: str) -> str:
    return f"outliers_{feature}"


def descriptions(candidate: Candidate) -> dict[str, str]:
    low, high = defaults.LABEL_SHARE_RANGE
    label = candidate.spec.label
    out = {
        LABEL_SHARE: f"the share of rows whose {label} is true is within [{low}, {high}]",
        SPLITS_DISJOINT: "no execution is in both splits",
        TEST_AFTER_TRAIN: "every test row is dated after every train row",
    }
    for feature in candidate.spec.features:
        out[outlier_rule(feature)] = (
            f"no {feature} is {defaults.OUTLIER_SIGMAS:g} or more standard deviations from its mean"
        )
    return out


def judge(candidate: Candidate) -> list[RuleResult]:
    """Every gold rule's result for the candidate's rows, in the module docstring's order."""
    _loaded()
    frame = _frame(candidate)
    described = descriptions(candidate)
    context = _context()
    results = fold(
        _run(context, "training-set", frame, _expectations(candidate, described), "pandas"),
        described,
    )
    results.append(_test_after_train(context, frame, described[TEST_AFTER_TRAIN]))
    order = list(described)
    return sorted(results, key=lambda r: order.index(r.name) if r.name in order else len(order))


def _frame(candidate: Candidate):
    """The rows as pandas: ids, split, date (datetime64), the features and the label as 0/1."""
    import pandas as pd

    spec = candidate.spec
    rows = candidate.rows.select(["execution_id", "split", "date", *spec.features, spec.label])
    frame = rows.to_pandas()
    frame["date"] = pd.to_datetime(frame["date"])
    frame[_LABEL] = frame.pop(spec.label).astype("int64")
    return frame


def _expectations(candidate: Candidate, described: dict[str, str]) -> list:
    import great_expectations.expectations as gxe

    low, high = defaults.LABEL_SHARE_RANGE
    out = [
        gxe.ExpectColumnMeanToBeBetween(
            column=_LABEL,
            min_value=low,
            max_value=high,
            meta=_meta(LABEL_SHARE, WARN),
            description=described[LABEL_SHARE],
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="execution_id",
            meta=_meta(SPLITS_DISJOINT, FAIL),
            description=described[SPLITS_DISJOINT],
            result_format="SUMMARY",
        ),
    ]
    for feature in candidate.spec.features:
        name = outlier_rule(feature)
        out.append(
            gxe.ExpectColumnValueZScoresToBeLessThan(
                column=feature,
                threshold=defaults.OUTLIER_SIGMAS,
                double_sided=True,
                meta=_meta(name, WARN),
                description=described[name],
                result_format="SUMMARY",
            )
        )
    return out


def _test_after_train(context, frame, description: str) -> RuleResult:
    """The test rows against the last train day: each must be dated after it. With an empty
    split no pair of rows exists, and the rule holds."""
    train = frame[frame["split"] == "train"]
    test = frame[frame["split"] == "test"].copy()
    if train.empty or test.empty:
        return RuleResult(TEST_AFTER_TRAIN, FAIL, True, description, 0)
    import great_expectations.expectations as gxe

    test[_LAST_TRAIN] = train["date"].max()
    expectation = gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="date",
        column_B=_LAST_TRAIN,
        or_equal=False,
        meta=_meta(TEST_AFTER_TRAIN, FAIL),
        description=description,
        result_format="SUMMARY",
    )
    result = _run(
        context, "training-set-order", test[["date", _LAST_TRAIN]], [expectation], "pandas"
    )
    (found,) = fold(result, {TEST_AFTER_TRAIN: description})
    return found


def markdown(candidate: Candidate, results: list[RuleResult]) -> str:
    """The rules' results as the gate's reports show them: one line of counts, then a table."""
    record = candidate.record
    failed = [r for r in results if r.outcome == FAILED]
    warned = [r for r in results if r.outcome == WARNED]
    lines = [
        f"### training set {candidate.spec.name} {candidate.version}",
        "",
        f"{candidate.rows.num_rows} rows (train {record['rows']['train']}, test "
        f"{record['rows']['test']}); rules: {len(results) - len(failed) - len(warned)} passed, "
        f"{len(failed)} failed, {len(warned)} warned.",
        "",
        *rules_table(results, observed_when_passed=True),
    ]
    return "\n".join(lines) + "\n"
