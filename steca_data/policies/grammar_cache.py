"""Reuse vLLM's llguidance work across requests that carry the same grammar.

vLLM validates each request's grammar when it is added and compiles it again for the scheduler: ~2 ms each
on this CPU for an action regex, both holding the GIL, so the driver thread and the episode runner wait.
Rollouts repeat grammars (the same admissible actions in the same state: 79 % of the quickstart bench's
requests), so the validation of a grammar is remembered once it passed, and a compiled matcher is kept per
grammar and handed out as a copy (``LLMatcher.deep_copy``: microseconds, a fresh parser state each time).

The results are those of vLLM's own functions (a copy of a fresh matcher is a fresh matcher); only the
repeated work goes. Installed by ``vllm_policy.engine_for``; on a vLLM whose internals differ it does nothing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

MAX_GRAMMARS = 4096  # distinct grammars remembered (the quickstart bench uses ~700)

_lock = threading.Lock()
_installed = False


class GrammarLRU(OrderedDict):
    """A small LRU map (the engine lives as long as the process, grammars keep coming) that counts hits."""

    hits = misses = 0

    def remember(self, key, value) -> None:
        with _lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > MAX_GRAMMARS:
                self.popitem(last=False)

    def recall(self, key):
        with _lock:
            value = self.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
                self.move_to_end(key)
            return value


def _frozen(value):
    """A hashable stand-in for compile arguments (vLLM passes stop token ids as a set)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return frozenset(value)
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


VALIDATED: GrammarLRU = GrammarLRU()  # grammar keys that passed vLLM's validation
COMPILED: GrammarLRU = GrammarLRU()  # grammar key -> a matcher never advanced, copied for each request


def install() -> bool:
    """Patch vLLM's guidance validation and compilation with the caches; True if installed."""
    global _installed
    if _installed:
        return True
    try:
        from vllm.v1.structured_output import backend_guidance as guidance
        from vllm.v1.structured_output.request import get_structured_output_key
    except ImportError:
        return False
    if not {"ll_matcher", "ll_tokenizer", "vocab_size"} <= {
        f.name for f in dataclasses.fields(guidance.GuidanceGrammar)
    }:
        return False  # a vLLM whose grammar objects are built differently: leave it alone
    validate, compile_grammar = guidance.validate_guidance_grammar, guidance.GuidanceBackend.compile_grammar

    def cached_validate(sampling_params, tokenizer=None) -> None:
        if sampling_params.structured_outputs is None:
            return
        key = (get_structured_output_key(sampling_params.structured_outputs), id(tokenizer))
        if VALIDATED.recall(key) is None:
            validate(sampling_params, tokenizer=tokenizer)  # raises on a bad grammar: nothing remembered
            VALIDATED.remember(key, True)

    def cached_compile(self, request_type, grammar_spec, *args, **kwargs):
        key = (request_type, grammar_spec, _frozen(args), _frozen(kwargs), id(self.ll_tokenizer),
               self.disable_any_whitespace, self.disable_additional_properties)  # fmt: skip
        template = COMPILED.recall(key)
        if template is None:
            grammar = compile_grammar(self, request_type, grammar_spec, *args, **kwargs)
            if grammar.ll_matcher.is_error():  # keep failures uncached: vLLM reports them per request
                return grammar
            COMPILED.remember(key, grammar.ll_matcher.deep_copy())
            return grammar
        return guidance.GuidanceGrammar(
            ll_matcher=template.deep_copy(), ll_tokenizer=self.ll_tokenizer, vocab_size=self.vocab_size
        )

    guidance.validate_guidance_grammar = cached_validate
    guidance.GuidanceBackend.compile_grammar = cached_compile
    _installed = True
    return True
