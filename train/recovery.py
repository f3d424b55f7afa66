"""The calibration analysis of the paper's Figures 4-5: can an agent recover once its history holds a mistake?

Cases come from held-out tasks: walk the expert trajectory, let the *base agent* propose its next action
from every expert prefix (greedy), and take the first step t whose proposal is *deviated*. Under the default
rule (``experiment.calibration.rule: monte_carlo``) that is STeCa's own rule, the one the build applies to the
train tasks: the proposal differs from the expert action and Q[t] - V[t-1] < delta, both values the mean
outcome of ``rollouts.n`` Monte Carlo continuations by the base agent (``core.calibration``). Under
``first_difference`` it is any proposal that differs from the expert action, which also counts harmless
alternatives (another order of two put-aways) as mistakes. Each method then plays the task from two starts,
sampled as in evaluation:
    with deviation     e_{1:t-1} + â_t   (the deviated action is already in the history)
    deviation removed  e_{1:t-1}         (same state, clean history)
STeCa trains exactly the first situation (Dc), so it should lose less success than the baselines when the
deviated action is present.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from steca_data.core.calibration import judge_proposals
from steca_data.core.keys import prefix_key, seed_of, unit_key
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs import SessionPool
from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes
from steca_data.policies.base import SamplingParams, sampling_params


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


def find_cases(
    recipe, policy, walks: list[Trajectory], backend, max_new_tokens: int, rule: str = "monte_carlo"
) -> list[Case]:
    """The base agent's first deviated greedy proposal per walk, under ``rule`` (see the module's docstring)."""
    proposals = greedy_proposals(recipe, policy, walks, backend, max_new_tokens)
    if rule == "first_difference":
        firsts = {i: ts[0] for i, w in enumerate(walks) if (ts := _differing(w, proposals, i))}
    else:
        firsts = first_deviations(recipe, policy, walks, proposals, backend)
    cases = []
    for i, t in sorted(firsts.items()):
        cases.append(Case(walks[i].task, t, list(walks[i].steps[: t - 1]), _as_taken(proposals[(i, t)])))
    return cases


def _as_taken(proposal: Step) -> Step:
    """A proposal as a history step (its observation comes from the replay)."""
    return Step(thought=proposal.thought, action=proposal.action, observation="")


def _differing(walk: Trajectory, proposals: dict[tuple[int, int], Step], i: int) -> list[int]:
    """Positions t (in order) where walk i's proposal differs from the expert action."""
    return [
        t
        for t in range(1, len(walk.steps) + 1)
        if (p := proposals.get((i, t))) is not None and p.action.strip() != walk.steps[t - 1].action.strip()
    ]


def first_deviations(
    recipe, policy, walks: list[Trajectory], proposals: dict[tuple[int, int], Step], backend
) -> dict[int, int]:
    """Walk i -> t of its first proposal that the Monte Carlo rule judges deviated (walks without one: absent).

    Rounds like the build's ``scope: first_deviation``: each round scores, for every walk still open, its next
    differing proposal (Q[t]) and the expert prefix before it (V[t-1]) with ``rollouts.n`` sampled base-agent
    continuations each, seeded by the prefix, so a case does not depend on which other walks share the batch.
    The verdict is the build's own (``core.calibration.judge_proposals``).
    """
    prompt = PromptConfig.from_recipe(recipe)
    params = sampling_params(recipe.policy, recipe.rollouts.temperature)
    max_steps = recipe.rollouts.max_steps or recipe.env.max_steps
    n, delta = recipe.rollouts.n, recipe.deviation.delta
    todo = {i: _differing(w, proposals, i) for i, w in enumerate(walks)}
    found: dict[int, int] = {}
    with SessionPool(backend, recipe.env.workers) as pool:
        while open_ := [i for i, ts in todo.items() if ts]:
            prefixes = []  # (walk, kind, steps)
            for i in open_:
                t, w = todo[i][0], walks[i]
                prefixes.append((i, "expert", list(w.steps[: t - 1])))
                prefixes.append((i, "proposal", [*w.steps[: t - 1], _as_taken(proposals[(i, t)])]))
            starts = [
                EpisodeStart(walks[i].task, steps, seed=seed_of(unit_key("calibration-rollout", "1", p=prefix_key(
                    walks[i].task.task_id, steps), sample=k)), max_steps=max_steps)
                for i, _, steps in prefixes for k in range(n)
            ]  # fmt: skip
            trajs = run_episodes(pool, policy, starts, params, max_steps=max_steps, prompt=prompt, source="rollout")
            value = {
                (i, kind): statistics.fmean(t.outcome_reward for t in trajs[j * n : (j + 1) * n])
                for j, (i, kind, _) in enumerate(prefixes)
            }
            for i in open_:
                t = todo[i].pop(0)
                p, actions = proposals[(i, t)], [s.action for s in walks[i].steps]
                (verdict,) = judge_proposals(actions, {t - 1: value[(i, "expert")]}, {t: (p.thought, p.action)},
                                             {t: value[(i, "proposal")]}, delta)  # fmt: skip
                if verdict.deviated:
                    found[i], todo[i] = t, []
    return found


def greedy_proposals(
    recipe, policy, walks: list[Trajectory], backend, max_new_tokens: int
) -> dict[tuple[int, int], Step]:
    """(walk, t) -> the base agent's greedy step from the expert prefix e_{1:t-1}."""
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
    return proposals


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
                # per case (one per task), for paired intervals over cases and seeds (train/results.py)
                "tasks": {c.task.task_id: {"success": t.success, "reward": t.outcome_reward}
                          for c, t in zip(cases, trajs, strict=True)},
            }  # fmt: skip
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


__all__ = [
    "Case",
    "asdict",
    "case_dicts",
    "cases_from_dicts",
    "expert_walks",
    "find_cases",
    "first_deviations",
    "greedy_proposals",
    "play_cases",
]
