"""ONNX Runtime runner for ``csi.model_io`` models: numpy in, numpy out, no torch.

``OnnxRunner`` satisfies the ``csi.predictors.Predictor`` protocol (``name``, ``predict``), so the
distillation side can evaluate an ONNX student with the same code as the classical baselines.

Inference goes through IOBinding on pre-allocated buffers: for each batch size the runner keeps a
pool of *slots* (input buffer ``[b, history, a, r, 2]``, output buffers, one bound ``IOBinding``);
a call takes a slot, copies the normalised input into it, runs, copies the outputs out and gives
the slot back. Slots for ``PREALLOCATED_BATCHES`` are created and warmed up on load; others on
first use (at most ``max_batch``). ``InferenceSession.run_with_iobinding`` releases the GIL, so
concurrent calls from gRPC worker threads run in parallel, each on its own slot.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from csi.model_io import INPUT_NAME, OUTPUT_BEAM, OUTPUT_FUTURE, from_model_output, to_model_input
from dapp.artifact import TaskSpec
from dapp.errors import PreconditionFailed

PREALLOCATED_BATCHES: tuple[int, ...] = (1, 16)
WARMUP_RUNS = 3


@dataclass
class _Slot:
    """Pre-allocated buffers of one batch size and the IOBinding pointing at them."""

    inputs: np.ndarray        # float32 [b, history, a, r, 2]
    future: np.ndarray        # float32 [b, horizon, a, r, 2]
    beams: np.ndarray         # float32 [b, n_beams]
    binding: ort.IOBinding


class OnnxRunner:
    """An ONNX Runtime session of a ``csi.model_io`` model with pre-allocated I/O buffers.

    ``path`` is the ONNX file. ``intra_threads``/``inter_threads`` set the session's thread pools
    (1/1: one core per call, the dApp's setting). ``task`` (optional) is checked against the
    model's metadata on load (``PreconditionFailed`` if it does not fit). ``max_batch`` bounds
    the batch size (and so the buffer memory).
    """

    def __init__(self, path: str | Path, intra_threads: int = 1, inter_threads: int = 1,
                 task: TaskSpec | None = None, max_batch: int = 256,
                 preallocate: Sequence[int] = PREALLOCATED_BATCHES) -> None:
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = inter_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._check_io()
        if task is not None:
            task.check(self.metadata)
        shape = self.session.get_inputs()[0].shape
        self.history_len, self.n_ant, self.n_rb = (int(d) for d in shape[1:4])
        self.horizon = self._output_dim(OUTPUT_FUTURE, 1, "horizon")
        self.n_beams = self._output_dim(OUTPUT_BEAM, 1, "n_beams")
        self.version: str = self.metadata.get("version", self.path.stem)
        self.name = f"onnx:{self.version}"
        self.max_batch = max_batch
        self._pools: dict[int, queue.SimpleQueue[_Slot]] = {}
        self._pools_lock = threading.Lock()
        for batch in preallocate:
            if batch <= max_batch:
                self._warm_up(batch)

    # -- public API -----------------------------------------------------------------------
    def predict(self, history: np.ndarray, horizon: int) -> np.ndarray:
        """Complex ``[b, t, a, r]`` (``t >= history_len``, newest ``history_len`` used) ->
        complex64 ``[b, horizon, a, r]``, ``1 <= horizon <= self.horizon``."""
        if not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon {horizon} outside 1..{self.horizon} of this model")
        future, _ = self.predict_with_beams(history)
        return future[:, :horizon]

    def predict_with_beams(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Complex ``[b, t, a, r]`` -> (complex64 future ``[b, horizon, a, r]`` at the input's
        scale, float32 beam logits ``[b, n_beams]``)."""
        window = self._window(history)
        with self._slot(self._checked_batch(window.shape[0])) as slot:
            _, scale = to_model_input(window, out=slot.inputs)   # normalised into the buffer
            self.session.run_with_iobinding(slot.binding)
            return from_model_output(slot.future, scale), slot.beams.copy()

    def run_normalised(self, model_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Float32 ``[b, history, a, r, 2]`` at unit power -> (future ``[b, horizon, a, r, 2]``,
        beam logits ``[b, n_beams]``), both float32 arrays owned by the caller."""
        with self._slot(self._checked_batch(model_in.shape[0])) as slot:
            np.copyto(slot.inputs, model_in)
            self.session.run_with_iobinding(slot.binding)
            return slot.future.copy(), slot.beams.copy()

    def _checked_batch(self, batch: int) -> int:
        if not 1 <= batch <= self.max_batch:
            raise ValueError(f"batch {batch} outside 1..{self.max_batch}")
        return batch

    # -- internals ------------------------------------------------------------------------
    def _window(self, history: np.ndarray) -> np.ndarray:
        if history.ndim != 4 or history.shape[2:] != (self.n_ant, self.n_rb):
            raise ValueError(f"history must be [b, t, {self.n_ant}, {self.n_rb}], "
                             f"got {history.shape}")
        if history.shape[1] < self.history_len:
            raise ValueError(f"history has {history.shape[1]} steps, "
                             f"model needs {self.history_len}")
        return history[:, -self.history_len:]

    def _check_io(self) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT_NAME] or not {OUTPUT_FUTURE, OUTPUT_BEAM} <= set(outputs):
            raise PreconditionFailed(
                f"model I/O {inputs} -> {outputs} is not the csi.model_io contract "
                f"[{INPUT_NAME}] -> [{OUTPUT_FUTURE}, {OUTPUT_BEAM}]")
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 5 or not all(isinstance(d, int) for d in shape[1:]) or shape[4] != 2:
            raise PreconditionFailed(f"model input shape {shape} is not [b, t, a, r, 2]")

    def _output_dim(self, name: str, axis: int, metadata_key: str) -> int:
        """A static output dimension, or the metadata value where the graph leaves it symbolic."""
        dim = next(o.shape for o in self.session.get_outputs() if o.name == name)[axis]
        if isinstance(dim, int):
            return dim
        if metadata_key not in self.metadata:
            raise PreconditionFailed(f"output {name} axis {axis} is symbolic ({dim!r}) and the "
                                     f"metadata has no {metadata_key!r}")
        return int(self.metadata[metadata_key])

    def _new_slot(self, batch: int) -> _Slot:
        inputs = np.zeros((batch, self.history_len, self.n_ant, self.n_rb, 2), np.float32)
        future = np.zeros((batch, self.horizon, self.n_ant, self.n_rb, 2), np.float32)
        beams = np.zeros((batch, self.n_beams), np.float32)
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cpu", 0, np.float32, list(inputs.shape),
                           inputs.ctypes.data)
        binding.bind_output(OUTPUT_FUTURE, "cpu", 0, np.float32, list(future.shape),
                            future.ctypes.data)
        binding.bind_output(OUTPUT_BEAM, "cpu", 0, np.float32, list(beams.shape),
                            beams.ctypes.data)
        return _Slot(inputs, future, beams, binding)

    def _pool(self, batch: int) -> queue.SimpleQueue[_Slot]:
        pool = self._pools.get(batch)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.setdefault(batch, queue.SimpleQueue())
        return pool

    @contextmanager
    def _slot(self, batch: int) -> Iterator[_Slot]:
        pool = self._pool(batch)
        try:
            slot = pool.get_nowait()
        except queue.Empty:
            slot = self._new_slot(batch)
        try:
            yield slot
        finally:
            pool.put(slot)

    def _warm_up(self, batch: int) -> None:
        """Create a slot for ``batch``; run it ``WARMUP_RUNS`` times on random unit-power input."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, self.history_len, self.n_ant, self.n_rb, 2))
        x = (x / np.sqrt(2)).astype(np.float32)
        for _ in range(WARMUP_RUNS):
            self.run_normalised(x)
