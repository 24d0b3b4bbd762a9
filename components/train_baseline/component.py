from kfp import dsl
from kfp.dsl import ClassificationMetrics, Metrics, Model, Output

from deep_storage_kfp.components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_baseline(
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    model: Output[Model],
    name: str,
    version: str,
    lake_uri: str = "",
):
    """Fits the baseline (median imputation, scaling, logistic regression) on a training set.

    Trains on the version's train split and judges on its test split. Needs the
    AWS_*/S3_BUCKET variables (the object-storage secret).

    Args:
        metrics: ROC AUC, precision and recall on the test split; rows of each split.
        classification: The ROC curve and the confusion matrix, drawn by the KFP UI.
        model: The fitted scikit-learn pipeline (joblib), with the set, its version, the
            features, the label and the metrics in its metadata.
        name: The training set, e.g. stop_outcome.
        version: Its released version, X.Y.Z.
        lake_uri: s3a://BUCKET[/prefix] or file:///path; empty means s3a://$S3_BUCKET.
    """
    from deep_storage import steps

    out = steps.baseline(lake_uri, name, version)
    for key, value in out.metrics.items():
        metrics.log_metric(key, value)
    classification.log_roc_curve(out.fpr, out.tpr, out.thresholds)
    classification.log_confusion_matrix(out.categories, out.confusion_matrix)
    out.save(model.path)
    model.metadata.update(out.model_metadata)
