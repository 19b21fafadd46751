"""minilm: a small Transformer language model, its fast kernels, and k-bit inference.

A course package (chapter notebooks in `course/`, exercises in `exercises/`). Importing it
loads neither Numba nor CUDA; kernels compile on first use.

Shape legend used in every docstring and shape comment:
    B batch, T time (sequence length), C channels (d_model), H heads, D head dim (C / H),
    F ffn width, V vocabulary (256 bytes), K in-features, N out-features, k bits per weight.

    import minilm
    model = minilm.MiniLM.init(minilm.ModelConfig(), seed=0)
    logits = model.forward(minilm.ByteTokenizer().encode("Hello"), backend="cpu")  # (T, V)
    text = minilm.generate(model, "Hello", max_new_tokens=50, temperature=0)
"""

from .config import PRESETS, ModelConfig
from .evaluate import evaluate, surprisal
from .generate import generate, generate_stream, generate_tokens
from .model import KVCache, MiniLM, available_models, load
from .tokenizer import ByteTokenizer

__version__ = "0.1.0"

__all__ = [
    "PRESETS", "ByteTokenizer", "KVCache", "MiniLM", "ModelConfig", "available_models",
    "evaluate", "generate", "generate_stream", "generate_tokens", "load", "surprisal",
]
