"""A GGUF file as an answer source, through llama-cpp-python, keeping llama.cpp's cache of
the prompt prefix neighbouring prompts share without changing any answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from engine.evaluate.sources import Source, SourceError, renderer_for
from engine.records import Record


def row_block(llm: Any) -> int:
    """The cut that keeps a GGUF's answers those of a fresh context, for this llama.cpp build.

    Its CPU kernels take a batch's rows 4 at a time, so a multiple of 4 is enough where they
    do all the work. A build with BLAS (Accelerate on macOS) or a GPU backend hands the
    products of larger batches to those, whose sums depend on the batch's size: there only a
    cut at a batch boundary reads the rest exactly as a fresh context does.
    """
    import re

    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    backends = set(re.findall(r"(\w+) : ", info))
    if backends <= {"CPU"} and not llama_cpp.llama_supports_gpu_offload():
        return 4
    return llm.n_batch


class GGUFSource(Source):
    """A GGUF file through llama-cpp-python: greedy (top-k 1), stop at end of turn."""

    kind = "gguf"

    def __init__(self, path: str | Path, cfg: dict[str, Any], tokenizer: Any = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise SourceError(f"{path}: GGUF file not found")
        super().__init__(f"gguf:{path}")
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise SourceError("llama-cpp-python is not installed (make setup installs it)"
                              ) from exc
        self.cfg = cfg
        if tokenizer is None:  # the chat template travels inside the GGUF
            from transformers import AutoTokenizer
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        self.tok = tokenizer
        self.renderer = renderer_for(tokenizer, cfg)
        self.llm = Llama(model_path=str(path), n_ctx=cfg["eval"]["gguf_context"], seed=0,
                         verbose=False, logits_all=False, n_batch=512, n_ubatch=512)
        from engine.evaluate.generate import stop_token_ids
        self.stop = set(stop_token_ids(tokenizer)) | {self.llm.token_eos()}
        self._last_prompt: list[int] = []

    def _reusable(self, ids: Sequence[int]) -> int:
        """How many cached tokens the next prompt may keep and still get a fresh context's answer.

        llama.cpp reads a prompt in batches from position 0, and its CPU kernels take the rows
        of a batch 4 at a time and the last few one by one, with other float sums. A suffix read
        from a cut that is a multiple of ``eval.gguf_prefix_align`` (or :func:`row_block`) puts
        every row in the block a fresh context puts it in. The cut never reaches into the last
        answer: those tokens were decoded one at a time, unlike a prompt's.
        """
        last, shared = self._last_prompt, 0
        for a, b in zip(last, ids):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(ids) - 1, self.llm.n_tokens)  # one token left to read
        align = self.cfg["eval"]["gguf_prefix_align"] or row_block(self.llm)
        return shared // align * align

    def __call__(self, records: Sequence[Record]) -> list[str]:
        import time

        prompts = [self.renderer.render(r).prompt for r in records]
        self.last_prompts = prompts
        answers: dict[int, str] = {}
        started = time.monotonic()
        limit = self.cfg["eval"]["max_new_tokens"]
        # llama.cpp keeps the KV cache of the longest prefix the next prompt shares with the
        # last one (system prompt, tool listing): prompts run in sorted order so neighbours
        # share the most, and the cache is never reset between them.
        for done, i in enumerate(sorted(range(len(prompts)), key=prompts.__getitem__), 1):
            if self.should_stop():
                break
            ids = self.llm.tokenize(prompts[i].encode("utf-8"), add_bos=False, special=True)
            self.llm.n_tokens = self._reusable(ids)  # llama-cpp-python keeps only these
            self._last_prompt = ids
            out: list[int] = []
            for token in self.llm.generate(ids, top_k=1, top_p=1.0, temp=0.0,
                                           repeat_penalty=1.0, reset=True):
                if token in self.stop or len(out) >= limit:
                    break
                out.append(token)
            answers[i] = self.tok.decode(out, skip_special_tokens=True)
            self._answered(i, answers[i])
            self._tick(done, len(prompts), started)
        # After a stop the stage is cancelled right away; unanswered records are never scored.
        return [answers.get(i, "") for i in range(len(prompts))]
