"""The TFLite runtime on the terminal: ai-edge-litert, else tflite-runtime."""

import logging
from typing import Any

import numpy as np

from models.errors import ModelError

log = logging.getLogger(__name__)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "no TFLite runtime: install ai-edge-litert (pip install 'lifecert[edge]') "
                "or tflite-runtime"
            ) from None
    return Interpreter


class TFLiteModel:
    """One TFLite model with fixed input/output tensors; ``run`` feeds one input."""

    def __init__(self, content: bytes, name: str, threads: int = 1) -> None:
        self._content = content  # the interpreter reads the flatbuffer in place
        try:
            self._interp = _interpreter_class()(model_content=content, num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{name}: cannot load TFLite model: {exc}") from None
        detail = self._interp.get_input_details()[0]
        self.input_shape = tuple(int(d) for d in detail["shape"])
        self._input = detail["index"]
        self._outputs = [d["index"] for d in self._interp.get_output_details()]
        self.name = name
        log.debug("loaded %s (%d threads)", name, threads)

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Set the input, invoke, return copies of every output (``get_tensor`` copies)."""
        self._interp.set_tensor(self._input, tensor.astype(np.float32, copy=False))
        self._interp.invoke()
        return [self._interp.get_tensor(i) for i in self._outputs]

    def invoke(self) -> None:
        """A bare ``invoke()`` on whatever input is set (for benchmarks)."""
        self._interp.invoke()
