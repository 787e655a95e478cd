"""The one model store: checkpoint format and run attempts (:mod:`.checkpoints`), loading a model
from a file, run name or MLflow URI (:mod:`.loader`), the logged MLflow model (:mod:`.mlflow_model`)."""
