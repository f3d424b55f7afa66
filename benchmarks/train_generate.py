"""Throughput of the trainer and the local policy backend (not a test: numbers depend on the machine).

    python benchmarks/train_generate.py --recipe recipes/agent-twc.yaml --model builds/agent-twc/models/init

Training: optimizer steps on the recipe's real windows, reported as tokens/s (padded tokens processed).
Generation: one lock-step batch of real prompts (expert states of the seen split), generated tokens/s for
greedy, sampled and constrained decoding, with and without the shared-prefix KV cache. Prints a table and
the machine load (``os.getloadavg``), since this 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def bench_train(recipe, model: Path, steps: int, threads: int) -> dict:
    from transformers import AutoTokenizer

    from steca_data.training.data import load_rows, rows_to_examples
    from steca_data.training.trainer import train
    from steca_train.paths import RecipePaths

    tok = AutoTokenizer.from_pretrained(str(model))
    rows = load_rows(RecipePaths(recipe).dataset, recipe.sft.datasets)
    examples, _ = rows_to_examples(rows, tok, recipe.prompt.history, recipe.sft.max_seq_len)
    spec = recipe.sft.model_copy(update={"max_steps": steps, "threads": threads, "save_every": 10**9})
    out = Path("/tmp/steca-bench-train")
    result = train(spec, model, examples, out, tok, pad_id=tok.pad_token_id)
    return {"steps": result.steps, "tokens": result.tokens, "s": round(result.seconds, 2),
            "tok_per_s": round(result.tokens / result.seconds, 1)}  # fmt: skip


def real_prompts(recipe, n: int):
    """Prompts at every depth of gold episodes of the seen split, with their admissible actions."""
    from steca_data.core.prompts import window_messages
    from steca_data.core.schemas import Step
    from steca_data.envs import make_backend
    from steca_data.envs.prompting import history_messages
    from steca_data.episodes.runner import PromptConfig
    from steca_data.policies.base import PolicyRequest

    backend = make_backend(recipe.env)
    prompt = PromptConfig.from_recipe(recipe)
    session = backend.new_session()
    requests = []
    try:
        for task in backend.tasks("seen"):
            gold = backend.gold_actions(session, task)
            first = session.reset(task)
            instruction = session.instruction()
            steps, result = [], first
            for depth in range(len(gold) + 1):
                messages = history_messages(task.env, task.game, instruction, first.observation, steps, False)
                msgs = [{"role": m.role, "content": m.content} for m in window_messages(messages, prompt.history)]
                requests.append(PolicyRequest(msgs, list(result.admissible), seed=len(requests)))
                if depth < len(gold):
                    result = session.step(gold[depth])
                    steps.append(Step(thought="", action=gold[depth], observation=result.observation))
            if len(requests) >= n:
                break
    finally:
        backend.close()
    return requests[:n]


def bench_generate(model: Path, requests, max_new_tokens: int, threads: int) -> list[dict]:
    from steca_data.policies.base import SamplingParams
    from steca_data.policies.transformers_policy import TransformersPolicy

    policy = TransformersPolicy(model, batch_size=len(requests), threads=threads)
    rows = []
    for name, temperature, constrained, prefix in [
        ("greedy", 0.0, False, False),
        ("greedy", 0.0, False, True),
        ("sampled T=1", 1.0, False, True),
        ("sampled T=1, constrained", 1.0, True, True),
    ]:
        policy.prefix_cache = prefix
        policy._prefix = None
        params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, constrained=constrained)
        policy.generate(requests[:2], params)  # warm-up
        start = time.monotonic()
        replies = policy.generate(requests, params)
        seconds = time.monotonic() - start
        new_tokens = sum(len(policy.tokenizer(r, add_special_tokens=False)["input_ids"]) + 1 for r in replies)
        prompt_tokens = sum(len(policy.encode(r.messages)) for r in requests)
        rows.append({"mode": name, "prefix_cache": prefix, "batch": len(requests), "prompt_tokens": prompt_tokens,
                     "new_tokens": new_tokens, "s": round(seconds, 2),
                     "gen_tok_per_s": round(new_tokens / seconds, 1)})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/agent-twc.yaml")
    ap.add_argument("--model", required=True, help="Model dir (init or trained).")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="Write the results as JSON here.")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from steca_data.recipe.model import load_recipe

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    model = Path(args.model)
    load_before = os.getloadavg()
    train_row = bench_train(recipe, model, args.train_steps, args.threads) if args.train_steps else None
    gen_rows = bench_generate(model, real_prompts(recipe, args.batch), args.max_new_tokens, args.threads)
    result = {"threads": args.threads, "load_before": load_before, "load_after": os.getloadavg(),
              "train": train_row, "generate": gen_rows}  # fmt: skip
    if train_row:
        print(f"train: {train_row['tok_per_s']:.0f} tok/s ({train_row['steps']} steps, {train_row['s']} s)")
    for r in gen_rows:
        print(f"generate {r['mode']:<26} prefix_cache={r['prefix_cache']!s:<5} batch {r['batch']}: "
              f"{r['gen_tok_per_s']:.0f} new tok/s ({r['new_tokens']} tokens, {r['s']} s)")  # fmt: skip
    print(f"load average before {load_before[0]:.2f}, after {result['load_after'][0]:.2f} ({os.cpu_count()} cores)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
