"""The calibration analysis of the paper's Figures 4-5: can an agent recover once its history holds a mistake?

Cases come from held-out tasks: walk the expert trajectory, let the *base agent* propose its next action
from every expert prefix (greedy), and take the first step t where the proposal differs from the expert
action. Each method then plays the task from two starts, sampled as in evaluation:
    with deviation     e_{1:t-1} + â_t   (the deviated action is already in the history)
    deviation removed  e_{1:t-1}         (same state, clean history)
STeCa trains exactly the first situation (Dc), so it should lose less success than the baselines when the
deviated action is present.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs import SessionPool
from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import SamplingParams


@dataclass
class Case:
    task: Task
    t: int  # 1-based step of the deviation
    expert: list[Step]  # e_{1:t-1}
    deviated: Step  # â_t with its thought (observation unknown until replayed)


def expert_walks(recipe, tasks: list[Task], backend) -> list[Trajectory]:
    """Gold trajectories (template thoughts) of held-out tasks; tasks whose gold fails are skipped."""
    from steca_data.stages.experts import play_gold
    from steca_data.writers.thoughts import template_thoughts

    def work(session, task):
        try:
            gold = play_gold(backend, session, task, backend.version)
        except Exception:  # noqa: BLE001 - an unplayable task just yields no case
            return None
        thoughts = template_thoughts(gold)
        return gold.model_copy(
            update={"steps": [s.model_copy(update={"thought": th}) for s, th in zip(gold.steps, thoughts, strict=True)]}
        )

    with SessionPool(backend, recipe.env.workers) as pool:
        return [t for t in pool.map(work, tasks) if t is not None]


def find_cases(recipe, policy, walks: list[Trajectory], backend, max_new_tokens: int) -> list[Case]:
    """The base agent's first greedy proposal that differs from the expert action, per walk."""
    prompt = PromptConfig.from_recipe(recipe)
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, constrained=recipe.policy.constrained)
    proposals: dict[tuple[int, int], Step] = {}
    with SessionPool(backend, recipe.env.workers) as pool:
        for t in range(1, max(len(w.steps) for w in walks) + 1):
            group = [i for i, w in enumerate(walks) if len(w.steps) >= t]
            starts = [EpisodeStart(walks[i].task, list(walks[i].steps[: t - 1]), seed=i) for i in group]
            trajs = run_episodes(pool, policy, starts, params, max_steps=t, prompt=prompt, source="rollout")
            for i, traj in zip(group, trajs, strict=True):
                if len(traj.steps) >= t:
                    proposals[(i, t)] = traj.steps[t - 1]
    cases = []
    for i, w in enumerate(walks):
        for t in range(1, len(w.steps) + 1):
            p = proposals.get((i, t))
            if p is not None and p.action.strip() != w.steps[t - 1].action.strip():
                deviated = Step(thought=p.thought, action=p.action, observation="")
                cases.append(Case(w.task, t, list(w.steps[: t - 1]), deviated))
                break
    return cases


def play_cases(recipe, policy, cases: list[Case], params: SamplingParams, seed: int, backend) -> dict:
    """Success and reward from both starts of every case."""
    prompt = PromptConfig.from_recipe(recipe)
    max_steps = recipe.eval.max_steps or recipe.env.max_steps
    out = {}
    with SessionPool(backend, recipe.env.workers) as pool:
        for name, prefix in (("with_deviation", lambda c: [*c.expert, c.deviated]), ("removed", lambda c: c.expert)):
            starts = [EpisodeStart(c.task, prefix(c), seed=seed * 100_003 + i) for i, c in enumerate(cases)]
            trajs = run_episodes(pool, policy, starts, params, max_steps=max_steps, prompt=prompt, source="eval")
            out[name] = {
                "episodes": len(trajs),
                "success_rate": sum(t.success for t in trajs) / max(1, len(trajs)),
                "avg_reward": sum(t.outcome_reward for t in trajs) / max(1, len(trajs)),
            }
    return out


def case_dicts(cases: list[Case]) -> list[dict]:
    return [
        {
            "task": c.task.model_dump(mode="json"),
            "t": c.t,
            "expert": [s.model_dump(mode="json") for s in c.expert],
            "deviated": c.deviated.model_dump(mode="json"),
        }
        for c in cases
    ]


def cases_from_dicts(rows: list[dict]) -> list[Case]:
    return [Case(Task(**r["task"]), r["t"], [Step(**s) for s in r["expert"]], Step(**r["deviated"])) for r in rows]


__all__ = ["Case", "asdict", "case_dicts", "cases_from_dicts", "expert_walks", "find_cases", "play_cases"]
