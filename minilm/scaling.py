"""The k-bit inference scaling-law experiment: the sweep, its on-disk cache, and its table.

Taught in chapter 10. Dettmers & Zettlemoyer (2022, "The case for 4-bit precision: k-bit
inference scaling laws") asked: for a fixed number of *total model bits*, which precision k
gives the best model? We ask the same of the minilm family. Every *cell* of the sweep is one
model stored one way (k bits, a data type, a block size, or a float baseline); its result is
the held-out bits/byte on a fixed slice of the held-out text, and its x-coordinate is
`kbit.total_bits` of the quantized model.

    rows = scaling.sweep(["minilm-s", "minilm-m"], plan=scaling.QUICK, cache="runs/c.jsonl")
    scaling.write_table(rows, "runs/scaling")        # table.csv + table.json
    # figures and the verdict: minilm.scaling_plots;  the command: `minilm scaling`

How a cell is evaluated (`evaluate_cell`): the k-bit model quantizes exactly what
`kbit.quantize_model(..., embeddings=True)` quantizes (the four linear weights of every block,
as W^T, and both embedding tables; LayerNorms and biases stay float32), and bits/byte is
measured with the float32 kernels on the *dequantized* weights ("simulated quantization", as in
the paper). The numbers are those of the fused k-bit matmul up to float rounding, and every
block size works on every model: the fused kernel needs the block to divide d_model, which a
256-block cannot do for a 32-wide model. Baselines: float32 (the checkpoint) and float16 (the
same tensors rounded to float16 and back). `Plan(embeddings=False)` keeps both embedding tables
float32 in every cell instead, as GPTQ and bitsandbytes do.

The cache is a JSON-lines file, one row per computed cell, keyed by the sha256 of the model's
weights and config, k, data type, block size, the held-out text's sha256 and the slice length;
a re-run computes only the missing cells, and another text (or Python version) recomputes all.
Cells run in parallel over fresh ("spawn") processes, each with cores/workers threads; a
script that sweeps with workers > 1 needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .kbit.codebooks import DTYPES, check_bits, check_dtype
from .kbit.model import EMBEDDINGS, LINEAR_WEIGHTS, total_bits
from .kbit.quantize import check_block_size, quantize

FLOAT = "float"  # the data type of the two baselines (float32 and float16)
COLUMNS = ("model", "n_params", "format", "bits", "dtype", "block_size", "total_bits",
           "embeddings", "bits_per_param", "bpb", "seconds", "weights_sha256", "corpus",
           "corpus_sha256", "n_bytes")
KEY_COLUMNS = ("weights_sha256", "bits", "dtype", "block_size", "embeddings", "corpus_sha256",
               "n_bytes")
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


class Cell(NamedTuple):
    """One way of storing a model: k bits of `dtype` in blocks of `block_size` values (None:
    one scale per tensor), or a float baseline (dtype "float", bits 32 or 16)."""

    bits: int
    dtype: str
    block_size: int | None

    @property
    def label(self) -> str:
        """Short name: "nf4 b64", "int3 tensor", "float16"."""
        if self.dtype == FLOAT:
            return f"float{self.bits}"
        block = "tensor" if self.block_size is None else f"b{self.block_size}"
        return f"{self.dtype}{self.bits} {block}"


BASELINES = (Cell(32, FLOAT, None), Cell(16, FLOAT, None))


@dataclass(frozen=True)
class Plan:
    """Which cells to run and on how many held-out bytes: bits x dtypes x block sizes, plus the
    float32 and float16 baselines."""

    bits: tuple = (3, 4, 5, 6, 8)
    dtypes: tuple = DTYPES
    block_sizes: tuple = (None, 256, 64)
    n_bytes: int = 32_768  # the first 32 KiB of the held-out text
    embeddings: bool = True  # quantize tok_emb and pos_emb too (False: keep them float32)

    def __post_init__(self):
        for name in ("bits", "dtypes", "block_sizes"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)) or not value:
                raise ValueError(f"Plan.{name} must be a non-empty tuple, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for bits in self.bits:
            check_bits(bits)
        for dtype in self.dtypes:
            check_dtype(dtype)
        for block_size in self.block_sizes:
            check_block_size(block_size)
        if isinstance(self.n_bytes, bool) or not isinstance(self.n_bytes, int) \
                or self.n_bytes < 2:
            raise ValueError(f"Plan.n_bytes must be an int >= 2, got {self.n_bytes!r}")
        if not isinstance(self.embeddings, bool):
            raise TypeError(f"Plan.embeddings must be True or False, got {self.embeddings!r}")

    def cells(self) -> list[Cell]:
        """The baselines, then every (bits, dtype, block size), widest k first."""
        grid = [Cell(b, d, s) for b in sorted(self.bits, reverse=True) for d in self.dtypes
                for s in self.block_sizes]
        return [*BASELINES, *grid]


# The slices are sized for 2 cores: the biggest model scores 4096 bytes (sliding windows) in ~1 s.
FULL = Plan()  # 47 cells per model on 32 KiB: 8 min for the shipped family on 2 cores
QUICK = Plan(dtypes=("int", "nf"), block_sizes=(None, 64), n_bytes=8_192)  # 22 cells, 8 KiB: 1 min


def evaluate_cell(model, cell: Cell, data: bytes, embeddings: bool = True) -> dict:
    """Store `model` as `cell` says and score it on `data`:
    {"bpb", "total_bits", "seconds"} (seconds: quantization + evaluation)."""
    from .evaluate import evaluate

    started = time.perf_counter()
    simulated, bits = quantized_copy(model, cell, embeddings)
    bpb = evaluate(simulated, data, backend="cpu")
    return {"bpb": bpb, "total_bits": bits, "seconds": time.perf_counter() - started}


def quantized_copy(model, cell: Cell, embeddings: bool = True):
    """(a float32 MiniLM holding the weights the `cell` model computes with, and that model's
    total bits). The cell's precision applies to the linear weights and, with `embeddings`,
    to tok_emb and pos_emb; everything else stays float32 (see the module docstring)."""
    from .model import MiniLM

    if cell.dtype == FLOAT and cell.bits not in (16, 32):
        raise ValueError(f"float baselines have 16 or 32 bits, got {cell.bits}")
    floats, stored, float16_savings = dict(model.params), dict(model.params), 0
    for name, value in model.params.items():
        linear = name.endswith(LINEAR_WEIGHTS)
        if cell.bits == 32 or not (linear or (embeddings and name in EMBEDDINGS)):
            continue
        if cell.dtype == FLOAT:  # float16: a MiniLM holds float32 only, so count 16 bits less
            floats[name] = value.astype(np.float16).astype(np.float32)
            float16_savings += 16 * value.size
            continue
        kept = np.ascontiguousarray(value.T) if linear else value  # linear: W^T (N, K)
        stored[name] = quantize(kept, cell.bits, cell.dtype, cell.block_size)
        values = stored[name].dequantize()
        floats[name] = np.ascontiguousarray(values.T) if linear else values
    bits = total_bits(MiniLM(model.config, stored)) - float16_savings
    return MiniLM(model.config, floats), bits


def weights_sha256(model) -> str:
    """sha256 of a model's config and every parameter (names, shapes and float32 bytes)."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name in sorted(model.params):
        value = np.ascontiguousarray(model.params[name], np.float32)
        digest.update(f"{name}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def heldout(n_bytes: int, corpus=None) -> tuple[bytes, dict]:
    """The first `n_bytes` of the held-out text (`run_record.heldout_slice`), or of `corpus`
    (a `minilm.corpus.Corpus`), with {"name", "sha256", "n_bytes"} of where they came from."""
    if corpus is None:
        from .run_record import heldout_slice

        data, record = heldout_slice(n_bytes)
        name, sha = record["name"], record["sha256"]
    else:
        data, name, sha = corpus.text.encode("utf-8")[:n_bytes], corpus.name, corpus.sha256
    if len(data) < 2:
        raise ValueError(f"the held-out text {name!r} gives only {len(data)} bytes; "
                         "bits/byte needs at least 2")
    return data, {"name": name, "sha256": sha, "n_bytes": len(data)}


def row_key(row: dict) -> tuple:
    return tuple(row[column] for column in KEY_COLUMNS)


def load_cache(path) -> dict[tuple, dict]:
    """The rows of a cache file by key (a missing file is an empty cache; a line cut short by
    an interrupted run, or written by another version, is skipped)."""
    path = Path(path)
    rows = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                row = json.loads(line)
                if set(row) == set(COLUMNS):
                    rows[row_key(row)] = row
    return rows


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")


class _Model(NamedTuple):
    name: str  # as the table shows it
    ref: str  # what `minilm.load` takes in a worker process
    n_params: int
    sha256: str


def _models(models) -> list[_Model]:
    from .model import available_models, load

    if models is None:
        models = available_models()
        if not models:
            raise ValueError("no shipped models yet (minilm/checkpoints/ is empty); train them "
                             "with `minilm train --preset NAME` or pass model .npz paths")
    if isinstance(models, (str, os.PathLike)) or not models:
        raise ValueError(f"models must be a non-empty list of names or .npz paths, "
                         f"got {models!r}")
    found = []
    for ref in models:
        model = load(ref)
        name = Path(ref).stem if Path(ref).is_file() else str(ref)
        found.append(_Model(name, str(ref), model.n_params, weights_sha256(model)))
    names = [m.name for m in found]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must differ (the table is keyed by name), got {names}")
    return found


@functools.lru_cache(maxsize=2)
def _loaded(ref: str, sha256: str):
    """A worker evaluates many cells of one model: read its file once per content (the sha256
    in the key makes a file rewritten since with other weights load again)."""
    from .model import load

    return load(ref)


def _run(model: _Model, cell: Cell, data: bytes, embeddings: bool) -> dict:
    """One cell in a worker process (module-level, so it pickles)."""
    return evaluate_cell(_loaded(model.ref, model.sha256), cell, data, embeddings)


def _start_worker(threads: int) -> None:
    """Give a fresh worker process `threads` Numba/OpenMP/BLAS threads (cores / workers), so
    that the workers do not fight over the cores. Numba reads these variables when it starts,
    which is after this: importing minilm loads NumPy only."""
    from threadpoolctl import threadpool_limits

    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    threadpool_limits(threads)  # NumPy's BLAS is already loaded


def _compute(todo, workers: int, *args):
    """Yield (model, cell, result) as cells finish, `result = _run(model, cell, *args)`: in
    this process for one worker, else in a pool of fresh ("spawn") processes, biggest model
    first so that the workers finish together."""
    if workers == 1:
        for model, cell in todo:
            yield model, cell, _run(model, cell, *args)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    order = sorted(todo, key=lambda job: -job[0].n_params)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_start_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(_run, m, cell, *args): (m, cell) for m, cell in order}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                model, cell = pending.pop(future)
                if future.exception() is not None:
                    pool.shutdown(cancel_futures=True)
                    raise future.exception()
                yield model, cell, future.result()


def check_workers(workers) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int (or None: one per core), "
                         f"got {workers!r}")
    return workers


def sweep(models=None, plan: Plan = FULL, cache=None, workers: int | None = 1,
          progress: bool = True, corpus=None) -> list[dict]:
    """Every model x every cell of `plan`: a list of rows (dicts with the keys `COLUMNS`).

    models: shipped names or .npz paths (default: `available_models()`); cache: a JSON-lines
    file (None: no cache); workers: processes (None: one per core); corpus: a held-out
    `Corpus` instead of the default one. Rows come back in model order, then `plan.cells()`.
    """
    from tqdm.auto import tqdm

    if not isinstance(plan, Plan):
        raise TypeError(f"plan must be a scaling.Plan (e.g. FULL or QUICK), got "
                        f"{type(plan).__name__}")
    workers = check_workers(workers)
    found = _models(models)
    data, text = heldout(plan.n_bytes, corpus)
    cache = Path(cache) if cache is not None else None
    known = load_cache(cache) if cache is not None else {}
    rows, todo = {}, []
    for model in found:
        for cell in plan.cells():
            row = dict.fromkeys(COLUMNS)  # total_bits, bits_per_param, bpb, seconds: to come
            row.update(model=model.name, n_params=model.n_params, format=cell.label,
                       **cell._asdict(), embeddings=plan.embeddings, weights_sha256=model.sha256,
                       corpus=text["name"], corpus_sha256=text["sha256"], n_bytes=text["n_bytes"])
            hit = known.get(row_key(row))
            rows[model.name, cell] = {**hit, "model": model.name} if hit else row
            if not hit:
                todo.append((model, cell))
    workers = min(workers, len(todo) or 1)
    with tqdm(total=len(todo), desc="scaling sweep", unit="cell", disable=not progress) as bar:
        for model, cell, result in _compute(todo, workers, data, plan.embeddings):
            row = rows[model.name, cell]
            row.update(result, bits_per_param=result["total_bits"] / model.n_params)
            if cache is not None:
                _append(cache, row)
            bar.update()
    return list(rows.values())


def write_table(rows: list[dict], out_dir) -> tuple[Path, Path]:
    """Write `rows` as out_dir/table.csv and out_dir/table.json; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "table.csv").open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "table.json").write_text(json.dumps({"columns": COLUMNS, "rows": rows}, indent=1),
                                    encoding="utf-8")
    return out / "table.csv", out / "table.json"


def read_table(path) -> list[dict]:
    """The rows of a table.json written by `write_table` (to plot without re-running)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no scaling table at {path}; run `minilm scaling` first")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]
