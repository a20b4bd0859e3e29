"""Deep ensembles and shared-parameter vmap: K models as one vmapped program.

``Ensemble.init`` builds K members in one vmapped ``init``; member ``i`` equals the model
initialised alone with ``kf.at(key, i)``. ``Trainer`` trains them in one vmapped, jitted step
with per-member dropout keys derived from (member, step, example id); ``save``/``restore``
checkpoint a run with orbax; ``shard`` lays members and data over a device mesh with results
bitwise equal to one device.

This package needs the ``flax`` extra (flax, optax, orbax-checkpoint):
``pip install 'keyfan[flax]'``. Importing it without them raises an ImportError that says so.
"""

from keyfan._extras import require as _require

for _module in ("flax", "optax"):
    _require(_module, "keyfan.ensemble", at_floor=True)

from keyfan.ensemble._checkpoint import latest_step as latest_step  # noqa: E402
from keyfan.ensemble._checkpoint import restore as restore  # noqa: E402
from keyfan.ensemble._checkpoint import save as save  # noqa: E402
from keyfan.ensemble._ensemble import Ensemble as Ensemble  # noqa: E402
from keyfan.ensemble._losses import cross_entropy as cross_entropy  # noqa: E402
from keyfan.ensemble._losses import gaussian_nll as gaussian_nll  # noqa: E402
from keyfan.ensemble._losses import mse as mse  # noqa: E402
from keyfan.ensemble._metrics import EnsembleReport as EnsembleReport  # noqa: E402
from keyfan.ensemble._metrics import classification_metrics as classification_metrics  # noqa: E402
from keyfan.ensemble._metrics import ensemble_report as ensemble_report  # noqa: E402
from keyfan.ensemble._metrics import regression_metrics as regression_metrics  # noqa: E402
from keyfan.ensemble._metrics import report_table as report_table  # noqa: E402
from keyfan.ensemble._models import FunctionalModel as FunctionalModel  # noqa: E402
from keyfan.ensemble._models import LinenModel as LinenModel  # noqa: E402
from keyfan.ensemble._models import Model as Model  # noqa: E402
from keyfan.ensemble._models import NNXModel as NNXModel  # noqa: E402
from keyfan.ensemble._models import as_model as as_model  # noqa: E402
from keyfan.ensemble._models import nnx_model as nnx_model  # noqa: E402
from keyfan.ensemble._per_example import dropout_keys as dropout_keys  # noqa: E402
from keyfan.ensemble._predict import ClassificationPrediction as ClassificationPrediction  # noqa: E402
from keyfan.ensemble._predict import RegressionPrediction as RegressionPrediction  # noqa: E402
from keyfan.ensemble._predict import gaussian_variance as gaussian_variance  # noqa: E402
from keyfan.ensemble._predict import predict as predict  # noqa: E402
from keyfan.ensemble._predict import summarize as summarize  # noqa: E402
from keyfan.ensemble._shard import make_mesh as make_mesh  # noqa: E402
from keyfan.ensemble._shard import shard_batch as shard_batch  # noqa: E402
from keyfan.ensemble._shard import shard_members as shard_members  # noqa: E402
from keyfan.ensemble._shared_vmap import shared_vmap as shared_vmap  # noqa: E402
from keyfan.ensemble._train import Trainer as Trainer  # noqa: E402
from keyfan.ensemble._train import TrainState as TrainState  # noqa: E402
from keyfan.ensemble._train import bootstrap_weights as bootstrap_weights  # noqa: E402

__all__ = [
    "ClassificationPrediction",
    "Ensemble",
    "EnsembleReport",
    "FunctionalModel",
    "LinenModel",
    "Model",
    "NNXModel",
    "RegressionPrediction",
    "TrainState",
    "Trainer",
    "as_model",
    "bootstrap_weights",
    "classification_metrics",
    "cross_entropy",
    "dropout_keys",
    "ensemble_report",
    "gaussian_nll",
    "gaussian_variance",
    "latest_step",
    "make_mesh",
    "mse",
    "nnx_model",
    "predict",
    "regression_metrics",
    "report_table",
    "restore",
    "save",
    "shard_batch",
    "shard_members",
    "shared_vmap",
    "summarize",
]
