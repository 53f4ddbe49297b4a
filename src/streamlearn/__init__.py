"""streamlearn: a production feedback loop for online models on Apache Kafka."""

from streamlearn.exceptions import StreamlearnError
from streamlearn.settings import Settings

__all__ = ["Settings", "StreamlearnError", "__version__"]

__version__ = "0.1.0"
