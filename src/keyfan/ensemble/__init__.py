"""Deep ensembles and shared-parameter vmap: K models as one vmapped program.

``Ensemble.init`` builds K members in one vmapped ``init``; member ``i`` equals the model
initialised alone with ``kf.at(key, i)``. ``Trainer`` trains them in one vmapped, jitted step
with per-member dropout keys derived from (member, step, example id); ``save``/``restore``
checkpoint a run with orbax; ``shard`` lays members and data over a device mesh with results
bitwise equal to one device.
"""

from keyfan.ensemble._checkpoint import latest_step as latest_step
from keyfan.ensemble._checkpoint import restore as restore
from keyfan.ensemble._checkpoint import save as save
from keyfan.ensemble._data import Dataset as Dataset
from keyfan.ensemble._data import make_dataset as make_dataset
from keyfan.ensemble._data import make_moons as make_moons
from keyfan.ensemble._data import make_regression as make_regression
from keyfan.ensemble._ensemble import Ensemble as Ensemble
from keyfan.ensemble._losses import cross_entropy as cross_entropy
from keyfan.ensemble._losses import gaussian_nll as gaussian_nll
from keyfan.ensemble._losses import mse as mse
from keyfan.ensemble._metrics import classification_metrics as classification_metrics
from keyfan.ensemble._metrics import ensemble_report as ensemble_report
from keyfan.ensemble._metrics import regression_metrics as regression_metrics
from keyfan.ensemble._metrics import report_table as report_table
from keyfan.ensemble._models import FunctionalModel as FunctionalModel
from keyfan.ensemble._models import LinenModel as LinenModel
from keyfan.ensemble._models import Model as Model
from keyfan.ensemble._models import NNXModel as NNXModel
from keyfan.ensemble._models import as_model as as_model
from keyfan.ensemble._models import nnx_model as nnx_model
from keyfan.ensemble._per_example import dropout_keys as dropout_keys
from keyfan.ensemble._predict import ClassificationPrediction as ClassificationPrediction
from keyfan.ensemble._predict import RegressionPrediction as RegressionPrediction
from keyfan.ensemble._predict import gaussian_variance as gaussian_variance
from keyfan.ensemble._predict import predict as predict
from keyfan.ensemble._predict import summarize as summarize
from keyfan.ensemble._run import MLP as MLP
from keyfan.ensemble._run import RunConfig as RunConfig
from keyfan.ensemble._run import RunResult as RunResult
from keyfan.ensemble._run import run_ensemble as run_ensemble
from keyfan.ensemble._shard import make_mesh as make_mesh
from keyfan.ensemble._shard import shard_batch as shard_batch
from keyfan.ensemble._shard import shard_members as shard_members
from keyfan.ensemble._shared_vmap import shared_vmap as shared_vmap
from keyfan.ensemble._train import Trainer as Trainer
from keyfan.ensemble._train import TrainState as TrainState
from keyfan.ensemble._train import bootstrap_weights as bootstrap_weights
