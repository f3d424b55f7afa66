"""The STeCa engine stages: proposals, Monte Carlo rollouts, reflections.

walk     the expert trajectories of the first ``rollouts.tasks`` train tasks (from the expert stage)
propose  the base agent's own action at every expert position t, from the expert prefix e_{1:t-1}
rollout  N continuations from every scored prefix: expert prefixes e_{1:k} (k = 0 is the start state,
         whose rollouts double as the explorations that give De and Ds) and e_{1:t-1} + proposal
reflect  a reflective thought for the first deviated proposal of each task (delta from the recipe)

Every proposal, rollout and reflection is one row keyed by a hash of what produced it: the policy's
weights digest, the prefix (actions and thoughts), the sampling settings, the prompt and the seed. delta,
eta and the distance are not in any of those keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from steca_data.cache.store import unit_key
from steca_data.core.calibration import judge_proposals
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.envs import SessionPool
from steca_data.policies.base import SamplingParams
from steca_data.stages.base import BuildContext, Stage, StagePlan, StageResult
from steca_data.writers.reflection import ReflectionRequest

PROPOSAL_VERSION = "1"
ROLLOUT_VERSION = "1"
REFLECTION_VERSION = "1"


@dataclass(frozen=True)
class Walk:
    """One expert trajectory the engine walks along."""

    task: Task
    expert: Trajectory

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.expert.steps]


def prefix_key(task_id: str, steps: list[Step]) -> str:
    return unit_key("prefix", "1", task=task_id, steps=[(s.thought, s.action) for s in steps])


def seed_of(key: str) -> int:
    return int(key[:8], 16) % (2**31 - 1)


@dataclass(frozen=True)
class ScoredPrefix:
    key: str  # score key: prefix + policy + sampling; rollouts point at it
    walk: Walk
    kind: str  # expert | proposal
    step: int  # expert: prefix length k; proposal: position t
    steps: tuple[Step, ...]
    samples: int

    def rollout_keys(self) -> list[str]:
        return [unit_key("rollout", ROLLOUT_VERSION, score=self.key, sample=i) for i in range(self.samples)]


class Engine:
    """What the engine stages share within one build: walks, the agent, sampling settings, keys."""

    def __init__(self, ctx: BuildContext):
        self.ctx = ctx
        self.recipe = ctx.recipe

    # ------------------------------------------------------------------------------------------ inputs
    @cached_property
    def walks(self) -> list[Walk]:
        from steca_data.stages.experts import ExpertStage

        units = ExpertStage().units(self.ctx)
        trajectories = self.ctx.cache.get_trajectories([k for _, k in units])
        by_task = {t.task.task_id: t for t in trajectories.values()}
        tasks = self.ctx.tasks["train"][: self.recipe.rollouts.tasks]
        return [Walk(task, by_task[task.task_id]) for task in tasks if task.task_id in by_task]

    @property
    def policy_id(self) -> str:
        return self.ctx.agent.policy_id

    @cached_property
    def prompt(self):
        from steca_data.episodes.runner import PromptConfig

        return PromptConfig.from_recipe(self.recipe)

    def _prompt_config(self) -> dict:
        return {
            "example": self.prompt.include_example,
            "history": self.prompt.history,
            "version": self.prompt.version_for(self.recipe.env.name),
        }

    @property
    def max_steps(self) -> int:
        return self.recipe.rollouts.max_steps or self.recipe.env.max_steps

    def sampling(self, temperature: float) -> SamplingParams:
        spec = self.recipe.policy
        return SamplingParams(
            temperature=temperature, top_p=spec.top_p, max_new_tokens=spec.max_new_tokens, constrained=spec.constrained
        )

    def _sampling_config(self, temperature: float) -> dict:
        p = self.sampling(temperature)
        return {"t": p.temperature, "top_p": p.top_p, "max_new": p.max_new_tokens, "constrained": p.constrained}

    # ------------------------------------------------------------------------------------------- keys
    def proposal_key(self, walk: Walk, t: int) -> str:
        return unit_key(
            "proposal",
            PROPOSAL_VERSION,
            policy=self.policy_id,
            prefix=prefix_key(walk.task.task_id, walk.expert.steps[: t - 1]),
            sampling=self._sampling_config(self.recipe.proposals.temperature),
            prompt=self._prompt_config(),
            seed=self.recipe.rollouts.seed,
        )

    def proposal_units(self) -> list[tuple[Walk, int, str]]:
        return [(w, t, self.proposal_key(w, t)) for w in self.walks for t in range(1, len(w.expert.steps) + 1)]

    def proposals(self) -> dict[tuple[str, int], dict]:
        """(task_id, t) -> stored proposal row, for this build's keys."""
        units = self.proposal_units()
        keys = [k for _, _, k in units]
        rows = self.ctx.cache.sql(
            "SELECT key, task_id, step, thought, action, observation, valid FROM proposals "
            "WHERE key IN (SELECT unnest(?))",
            [keys],
        ).fetchall()
        cols = ("key", "task_id", "step", "thought", "action", "observation", "valid")
        return {(r[1], r[2]): dict(zip(cols, r, strict=True)) for r in rows}

    def score_key(self, walk: Walk, steps: list[Step]) -> str:
        return unit_key(
            "score",
            ROLLOUT_VERSION,
            policy=self.policy_id,
            prefix=prefix_key(walk.task.task_id, steps),
            sampling=self._sampling_config(self.recipe.rollouts.temperature),
            prompt=self._prompt_config(),
            max_steps=self.max_steps,
            seed=self.recipe.rollouts.seed,
        )

    def scored_prefixes(self, proposals: dict[tuple[str, int], dict] | None = None) -> list[ScoredPrefix]:
        """Every prefix to score: expert prefixes k = 0..m, and proposals that differ from the expert."""
        spec = self.recipe.rollouts
        proposals = self.proposals() if proposals is None else proposals
        out = []
        for w in self.walks:
            for k in range(len(w.expert.steps) + 1):
                steps = w.expert.steps[:k]
                samples = max(spec.n, spec.explorations or spec.n) if k == 0 else spec.n
                out.append(ScoredPrefix(self.score_key(w, steps), w, "expert", k, tuple(steps), samples))
            for t in range(1, len(w.expert.steps) + 1):
                p = proposals.get((w.task.task_id, t))
                if p is None or p["action"].strip() == w.actions[t - 1].strip():
                    continue
                steps = [*w.expert.steps[: t - 1], Step(thought=p["thought"], action=p["action"], observation="")]
                out.append(ScoredPrefix(self.score_key(w, steps), w, "proposal", t, tuple(steps), spec.n))
        return out

    def values(self, prefixes: list[ScoredPrefix]) -> dict[str, tuple[float, int, list[str]]]:
        """score key -> (mean outcome, rollouts, rollout keys) for prefixes with all their rollouts."""
        keys = [p.key for p in prefixes]
        rows = self.ctx.cache.sql(
            "SELECT score_key, avg(outcome_reward), count(*), list(key ORDER BY sample_index) FROM rollouts "
            "WHERE score_key IN (SELECT unnest(?)) GROUP BY score_key",
            [keys],
        ).fetchall()
        need = {p.key: p.samples for p in prefixes}
        return {k: (v, n, ks) for k, v, n, ks in rows if n >= need[k]}

    def verdicts(self, delta: float | None = None):
        """Deviation verdicts per task under ``delta`` (default: the recipe's)."""
        delta = self.recipe.deviation.delta if delta is None else delta
        proposals = self.proposals()
        prefixes = self.scored_prefixes(proposals)
        values = self.values(prefixes)
        by_walk: dict[str, dict] = {}
        for p in prefixes:
            if p.key not in values:
                continue
            entry = by_walk.setdefault(p.walk.task.task_id, {"V": {}, "Q": {}})
            entry["V" if p.kind == "expert" else "Q"][p.step] = values[p.key][0]
        out = {}
        for w in self.walks:
            entry = by_walk.get(w.task.task_id, {"V": {}, "Q": {}})
            props = {
                t: (proposals[(w.task.task_id, t)]["thought"], proposals[(w.task.task_id, t)]["action"])
                for t in range(1, len(w.expert.steps) + 1)
                if (w.task.task_id, t) in proposals
            }
            out[w.task.task_id] = judge_proposals(w.actions, entry["V"], props, entry["Q"], delta)
        return out

    def reflection_key(self, walk: Walk, t: int, proposal: dict) -> str:
        spec = self.recipe.reflection
        backend = {"backend": spec.backend}
        if spec.backend == "openai":
            backend |= {"model": spec.model, "base_url": spec.base_url, "temperature": spec.temperature}
        if spec.backend == "self":
            backend |= {"policy": self.policy_id, "temperature": spec.temperature}
        return unit_key(
            "reflection",
            REFLECTION_VERSION,
            reflector=backend,
            prefix=prefix_key(walk.task.task_id, walk.expert.steps[: t - 1]),
            deviated=(proposal["thought"], proposal["action"]),
            expert=walk.actions[t - 1],
        )


def _engine(ctx: BuildContext) -> Engine:
    if getattr(ctx, "engine", None) is None:
        ctx.engine = Engine(ctx)
    return ctx.engine


class ProposalStage(Stage):
    name = "proposals"

    def plan(self, ctx: BuildContext) -> StagePlan:
        engine = _engine(ctx)
        if not engine.walks:
            return StagePlan(self.name, 0, 0, "after the expert stage")
        if ctx.agent is None:
            return StagePlan(self.name, sum(len(w.expert.steps) for w in engine.walks), 0, "after the warm-up")
        units = engine.proposal_units()
        return StagePlan(self.name, len(units), len(ctx.cache.existing("proposals", [k for *_, k in units])))

    def run(self, ctx: BuildContext) -> StageResult:
        from steca_data.episodes.runner import EpisodeStart, run_episodes

        engine = _engine(ctx)
        units = engine.proposal_units()
        done = ctx.cache.existing("proposals", [k for *_, k in units])
        todo = [u for u in units if u[2] not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if not todo:
            return result
        params = engine.sampling(ctx.recipe.proposals.temperature)
        with (
            ctx.reporter.track("proposals", len(todo), "prefixes") as advance,
            SessionPool(ctx.backend, ctx.recipe.env.workers) as pool,
        ):
            # one policy step after each prefix: batch all prefixes of the same length together
            for t in sorted({t for _, t, _ in todo}):
                group = [u for u in todo if u[1] == t]

                def store(i: int, traj: Trajectory, group=group, t=t) -> None:
                    walk, _, key = group[i]
                    step = traj.steps[t - 1] if len(traj.steps) >= t else None
                    ctx.cache.put_rows(
                        "proposals",
                        [
                            {
                                "key": key,
                                "task_id": walk.task.task_id,
                                "step": t,
                                "expert_action": walk.actions[t - 1],
                                "thought": step.thought if step else "",
                                "action": step.action if step else "",
                                "observation": step.observation if step else "",
                                "valid": step.valid if step else False,
                                "unparsable": bool(traj.unparsable_actions),
                                "policy_id": engine.policy_id,
                            }
                        ],
                    )
                    result.computed += 1
                    ctx.unit_done()
                    advance()

                starts = [EpisodeStart(w.task, list(w.expert.steps[: t - 1]), seed=seed_of(k)) for w, _, k in group]
                run_episodes(
                    pool,
                    ctx.agent.policy,
                    starts,
                    params,
                    max_steps=t,
                    prompt=engine.prompt,
                    on_done=store,
                    source="rollout",
                )
        return result


class RolloutStage(Stage):
    name = "rollouts"

    def plan(self, ctx: BuildContext) -> StagePlan:
        engine = _engine(ctx)
        if not engine.walks:
            return StagePlan(self.name, 0, 0, "after the expert stage")
        if ctx.agent is None:
            return StagePlan(self.name, 0, 0, "after the warm-up")
        prefixes = engine.scored_prefixes()
        keys = [k for p in prefixes for k in p.rollout_keys()]
        missing_props = sum(len(w.expert.steps) for w in engine.walks) - len(engine.proposals())
        note = f"+ up to {missing_props * ctx.recipe.rollouts.n} for proposals not made yet" if missing_props else ""
        return StagePlan(self.name, len(keys), len(ctx.cache.existing("rollouts", keys)), note)

    def run(self, ctx: BuildContext) -> StageResult:
        engine = _engine(ctx)
        prefixes = engine.scored_prefixes()
        ctx.cache.put_rows(
            "scored_prefixes",
            [
                {
                    "key": p.key,
                    "prefix_key": prefix_key(p.walk.task.task_id, list(p.steps)),
                    "task_id": p.walk.task.task_id,
                    "kind": p.kind,
                    "step": p.step,
                    "prefix_len": len(p.steps),
                    "action": p.steps[-1].action if p.steps else "",
                    "thought": p.steps[-1].thought if p.steps else "",
                    "policy_id": engine.policy_id,
                    "samples": p.samples,
                }
                for p in prefixes
            ],
        )
        units = [(p, i, k) for p in prefixes for i, k in enumerate(p.rollout_keys())]
        done = ctx.cache.existing("rollouts", [k for *_, k in units])
        todo = [u for u in units if u[2] not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if todo:
            self._play(ctx, engine, todo, result)
        return result

    def _play(self, ctx: BuildContext, engine: Engine, todo, result: StageResult) -> None:
        from steca_data.episodes.runner import EpisodeStart, run_episodes

        starts = [EpisodeStart(p.walk.task, list(p.steps), seed=seed_of(k)) for p, _, k in todo]
        params = engine.sampling(ctx.recipe.rollouts.temperature)
        with (
            ctx.reporter.track("rollouts", len(todo), "rollouts") as advance,
            SessionPool(ctx.backend, ctx.recipe.env.workers) as pool,
        ):

            def store(i: int, traj: Trajectory) -> None:
                p, sample, key = todo[i]
                ctx.cache.put_rows(
                    "rollouts",
                    [
                        {
                            "key": key,
                            "score_key": p.key,
                            "task_id": p.walk.task.task_id,
                            "kind": p.kind,
                            "step": p.step,
                            "sample_index": sample,
                            "seed": seed_of(key),
                            "policy_id": engine.policy_id,
                            "prefix_len": len(p.steps),
                            "num_steps": len(traj.steps),
                            "outcome_reward": traj.outcome_reward,
                            "success": traj.success,
                            "actions": _json([s.action for s in traj.steps[len(p.steps) :]]),
                            "data": traj.model_dump_json(),
                        }
                    ],
                )
                result.computed += 1
                ctx.unit_done()
                advance()

            run_episodes(
                pool,
                ctx.agent.policy,
                starts,
                params,
                max_steps=engine.max_steps,
                prompt=engine.prompt,
                on_done=store,
                source="rollout",
            )


class ReflectionStage(Stage):
    name = "reflections"

    def _units(self, ctx: BuildContext):
        engine = _engine(ctx)
        proposals = engine.proposals()
        walks = {w.task.task_id: w for w in engine.walks}
        units = []
        for task_id, verdicts in engine.verdicts().items():
            first = next((v for v in verdicts if v.first), None)
            if first is None:
                continue
            walk, proposal = walks[task_id], proposals[(task_id, first.step)]
            units.append((walk, first.step, proposal, engine.reflection_key(walk, first.step, proposal)))
        return units

    def plan(self, ctx: BuildContext) -> StagePlan:
        if ctx.agent is None:
            return StagePlan(self.name, 0, 0, "after the warm-up")
        units = self._units(ctx)
        note = "known once rollouts exist" if not units else ""
        return StagePlan(self.name, len(units), len(ctx.cache.existing("reflections", [u[3] for u in units])), note)

    def run(self, ctx: BuildContext) -> StageResult:
        units = self._units(ctx)
        done = ctx.cache.existing("reflections", [u[3] for u in units])
        todo = [u for u in units if u[3] not in done]
        result = StageResult(self.name, cached=len(units) - len(todo))
        if not todo:
            return result
        reflector = make_reflector(ctx)
        requests = [
            ReflectionRequest(
                game=w.task.game,
                instruction=w.expert.instruction,
                initial_observation=w.expert.initial_observation,
                history=list(w.expert.steps[: t - 1]),
                deviated_thought=p["thought"],
                deviated_action=p["action"],
                deviated_observation=p["observation"],
                expert_action=w.actions[t - 1],
            )
            for w, t, p, _ in todo
        ]
        batch = max(1, ctx.recipe.reflection.max_concurrency)
        with ctx.reporter.track("reflections", len(todo), "reflections") as advance:
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                for (w, t, _, key), outcome in zip(
                    chunk, reflector.reflect(requests[start : start + batch]), strict=True
                ):
                    ctx.cache.put_rows(
                        "reflections",
                        [
                            {
                                "key": key,
                                "task_id": w.task.task_id,
                                "step": t,
                                "backend": reflector.name,
                                "model": reflector.model,
                                "prompt": outcome.prompt,
                                "raw_response": outcome.raw_response,
                                "thought": outcome.thought,
                                "status": outcome.status,
                                "attempts": outcome.attempts,
                            }
                        ],
                    )
                    result.computed += outcome.status == "ok"
                    result.failed += outcome.status != "ok"
                    ctx.unit_done()
                    advance()
        return result


def make_reflector(ctx: BuildContext):
    from steca_data.writers.reflection import OpenAIReflector, PolicyReflector, TemplateReflector

    spec = ctx.recipe.reflection
    if spec.backend == "template":
        return TemplateReflector()
    if spec.backend == "openai":
        return OpenAIReflector(spec)
    return PolicyReflector(ctx.agent.policy, spec.max_retries, spec.temperature, seed=ctx.recipe.rollouts.seed)


def _json(value) -> str:
    import json

    return json.dumps(value)
