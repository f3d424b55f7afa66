"""A vLLM engine (the CPU build) as a Ray replica actor, shared by two episode workers: every episode comes
back, constrained replies are admissible, and the same starts played in other shards (other batches, other
workers) give the same text: placement does not shape a rollout."""

from __future__ import annotations

import pytest

from steca_data.episodes.runner import EpisodeStart, PromptConfig
from steca_data.executors import PlayJob
from steca_data.policies.base import SamplingParams
from steca_data.recipe.executor import ExecutorSpec
from steca_data.stages.agent import agent_handle

pytest.importorskip("ray")
pytest.importorskip("vllm", reason="the engine replica needs the cpu (or vllm) extra")


def test_a_vllm_replica_actor_serves_episode_workers(ray_cluster, tiny_recipe, trained_model_dir):
    from steca_data.envs.registry import list_tasks
    from steca_data.executors.ray_executor import RayExecutor

    spec = tiny_recipe.policy.model_copy(update={"backend": "vllm", "model": str(trained_model_dir)})
    source = agent_handle(spec, str(trained_model_dir))
    tasks = list_tasks(tiny_recipe.env, "seen") + list_tasks(tiny_recipe.env, "unseen")
    starts = [EpisodeStart(t, seed=s) for t in tasks for s in (1, 2)]
    job = PlayJob(source, SamplingParams(temperature=1.0, max_new_tokens=32, constrained=True), 6,
                  PromptConfig.from_recipe(tiny_recipe), "rollout")  # fmt: skip
    ex = RayExecutor(tiny_recipe.env, 2, ExecutorSpec(kind="ray", env_workers=2, engines=1, shard_size=4))
    texts = []
    try:
        for shard_size in (4, 1):  # the same starts in other shards: other batches, other workers
            ex.spec = ex.spec.model_copy(update={"shard_size": shard_size})
            results: dict[int, object] = {}
            ex.play(job, starts, results.__setitem__, None)
            assert len(ex.engines) == 1 and sorted(results) == list(range(len(starts)))
            trajectories = [results[i] for i in range(len(starts))]
            assert all(t.policy_id == source.policy_id and t.policy_id.startswith("vllm") for t in trajectories)
            assert all(s.valid for t in trajectories for s in t.steps), "constrained replies are admissible"
            texts.append([[(s.thought, s.action) for s in t.steps] for t in trajectories])
    finally:
        ex.close()
    assert texts[0] == texts[1]
