"""What a GGUF says about chatting with it: its chat template, and which tokens end generation.

Read through llama.cpp itself (llama-cpp-python, vocabulary only: well under a second even for
a 150k-token vocabulary), so "ends generation" means exactly what llama-server — and so
Ollama — will do with the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class GGUFError(ValueError):
    """The GGUF cannot be read; the message names the file."""


@dataclass(frozen=True)
class GGUFChat:
    path: Path
    chat_template: str
    metadata: dict[str, str]
    end_of_generation: frozenset[str]  # of the texts asked about, those the vocabulary ends on


def read(path: Path, texts: list[str] | tuple[str, ...] = ()) -> GGUFChat:
    """The chat template and metadata of ``path``; of ``texts``, the ones that are a single
    end-of-generation token in its vocabulary."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: GGUF file not found")
    try:
        import llama_cpp
        from llama_cpp import Llama
    except ImportError as exc:
        raise GGUFError("llama-cpp-python is not installed (make setup installs it)") from exc
    try:
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise GGUFError(f"{path}: llama.cpp cannot read it ({exc})") from None
    try:
        vocab = llm._model.vocab
        ends = set()
        for text in texts:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if len(ids) == 1 and llama_cpp.llama_vocab_is_eog(vocab, ids[0]):
                ends.add(text)
        meta = dict(llm.metadata)
    finally:
        llm.close()
    return GGUFChat(path, meta.get("tokenizer.chat_template", ""), meta, frozenset(ends))


def tokenizer(path: Path) -> object:
    """The Hugging Face tokenizer a GGUF carries (vocabulary, special tokens, chat template)."""
    from transformers import AutoTokenizer

    path = Path(path)
    try:
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except (OSError, ValueError, KeyError) as exc:
        raise GGUFError(f"{path}: its tokenizer cannot be read ({exc})") from None
