"""What the engine stages share: the expert walks, the agent, and every key of the method.

``Engine`` is derived once per build from published outputs (the expert trajectories and the base agent)
and answers, from the cache alone, the questions the stages and the assembly ask: which prefixes are
scored, what their Monte Carlo values are, which proposals deviate, which is each task's first deviation.
Keys hash what produced a unit — the policy's weights digest, the prefix (actions and thoughts), the
sampling settings, the prompt and the seed; delta, eta and the distance are in none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

from steca_data.cache.store import Table
from steca_data.core.calibration import AdaptiveRule, Verdict, judge_proposals, positions_to_score
from steca_data.core.keys import prefix_key, unit_key
from steca_data.core.schemas import Step, Task, Trajectory
from steca_data.episodes.runner import PromptConfig
from steca_data.policies.base import SamplingParams, sampling_params
from steca_data.stages.agent import AgentHandle
from steca_data.stages.base import BuildContext, Stage
from steca_data.stages.experts import ExpertTrajectories
from steca_data.stages.imports import ImportedTasks

DEVIATIONS = Table(
    "deviations",
    """CREATE TABLE IF NOT EXISTS deviations (
            task_id VARCHAR, step INTEGER, expert_action VARCHAR, proposed_thought VARCHAR,
            proposed_action VARCHAR, reward_proposal DOUBLE, reward_expert_prev DOUBLE, delta DOUBLE,
            deviated BOOLEAN, first BOOLEAN, policy_id VARCHAR, expert_score_key VARCHAR,
            proposal_score_key VARCHAR, reflection_key VARCHAR, PRIMARY KEY (task_id, step))""",
    "Verdicts of the last build (derived, cheap): one row per judged proposal under the recipe's delta, with "
    "the score keys of the two values compared (V[t-1] and the proposal's; join `rollouts.score_key`) and, for "
    "a first deviation, the key of the reflection this build's recipe asks for (join `reflections.key`).",
    added_columns=("expert_score_key VARCHAR", "proposal_score_key VARCHAR", "reflection_key VARCHAR"),
)


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


@dataclass(frozen=True)
class ScoredPrefix:
    key: str  # score key: prefix + policy + sampling; rollouts point at it
    walk: Walk
    kind: str  # expert | proposal
    step: int  # expert: prefix length k; proposal: position t
    steps: tuple[Step, ...]
    samples: int  # the most rollouts it can get (fixed N: exactly these); units list this many
    floor: int = 0  # the rollouts it gets whatever its verdict needs (fixed N: samples)

    def rollout_keys(self) -> list[str]:
        return [unit_key("rollout", ROLLOUT_VERSION, score=self.key, sample=i) for i in range(self.samples)]


@dataclass(frozen=True)
class FirstDeviation:
    walk: Walk
    step: int
    proposal: dict  # the stored proposal row
    reflection_key: str


class Engine:
    """The STeCa engine's view of one build (see the module docstring)."""

    def __init__(self, ctx: BuildContext):
        self.recipe = ctx.recipe
        self.cache = ctx.cache
        self.agent = ctx.find(AgentHandle)
        self._experts = ctx.get(ExpertTrajectories)
        imported = ctx.find(ImportedTasks)  # imported experts: walk the tasks their records name
        train = list(imported.train) if imported is not None else ctx.tasks["train"]
        self._train = train[: self.recipe.rollouts.tasks]
        self._ctx = ctx

    @property
    def train_tasks(self) -> list[Task]:
        """The tasks this build walks (those with an expert trajectory become ``walks``)."""
        return self._train

    @cached_property
    def walks(self) -> list[Walk]:
        by_task = {t.task.task_id: t for t in self._experts.load(self._ctx).values()}
        return [Walk(task, by_task[task.task_id]) for task in self._train if task.task_id in by_task]

    @property
    def policy_id(self) -> str:
        if self.agent is None:
            raise RuntimeError("the base agent is not known yet (the warm-up has not run)")
        return self.agent.policy_id

    @cached_property
    def prompt(self) -> PromptConfig:
        return PromptConfig.from_recipe(self.recipe)

    def _prompt_config(self) -> dict:
        return {
            "example": self.prompt.include_example,
            "history": self.prompt.history,
            "version": self.prompt.version_for(self.recipe.env.name, self.recipe.env.game),
        }

    @property
    def max_steps(self) -> int:
        return self.recipe.rollouts.max_steps or self.recipe.env.max_steps

    def episode_steps(self, task: Task) -> int:
        """``max_steps``, or the task's own step limit where the environment has a lower one."""
        return self.recipe.env.episode_steps(task, self.max_steps)

    def sampling(self, temperature: float) -> SamplingParams:
        return sampling_params(self.recipe.policy, temperature)

    def _sampling_config(self, temperature: float) -> dict:
        p = self.sampling(temperature)
        return {"t": p.temperature, "top_p": p.top_p, "max_new": p.max_new_tokens, "constrained": p.constrained}

    # ------------------------------------------------------------------------------------- proposals
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
        keys = [k for _, _, k in self.proposal_units()]
        rows = self.cache.sql(
            "SELECT key, task_id, step, thought, action, observation, valid FROM proposals "
            "WHERE key IN (SELECT unnest(?))",
            [keys],
        ).fetchall()
        cols = ("key", "task_id", "step", "thought", "action", "observation", "valid")
        return {(r[1], r[2]): dict(zip(cols, r, strict=True)) for r in rows}

    # -------------------------------------------------------------------------------------- rollouts
    def score_key(self, walk: Walk, steps: list[Step]) -> str:
        return unit_key(
            "score",
            ROLLOUT_VERSION,
            policy=self.policy_id,
            prefix=prefix_key(walk.task.task_id, steps),
            sampling=self._sampling_config(self.recipe.rollouts.temperature),
            prompt=self._prompt_config(),
            max_steps=self.episode_steps(walk.task),
            seed=self.recipe.rollouts.seed,
        )

    def scored_prefixes(
        self, proposals: dict[tuple[str, int], dict] | None = None, walks: list[Walk] | None = None
    ) -> list[ScoredPrefix]:
        """Every prefix to score: expert prefixes k = 0..m, and proposals that differ from the expert."""
        spec = self.recipe.rollouts
        proposals = self.proposals() if proposals is None else proposals
        cap, floor, explore = spec.cap, spec.floor, spec.explorations or spec.floor
        out = []
        for w in self.walks if walks is None else walks:
            for k in range(len(w.expert.steps) + 1):
                steps = w.expert.steps[:k]
                most, least = (max(cap, explore), max(floor, explore)) if k == 0 else (cap, floor)
                out.append(ScoredPrefix(self.score_key(w, steps), w, "expert", k, tuple(steps), most, least))
            for t in range(1, len(w.expert.steps) + 1):
                p = proposals.get((w.task.task_id, t))
                if p is None or p["action"].strip() == w.actions[t - 1].strip():
                    continue
                steps = [*w.expert.steps[: t - 1], Step(thought=p["thought"], action=p["action"], observation="")]
                out.append(ScoredPrefix(self.score_key(w, steps), w, "proposal", t, tuple(steps), cap, floor))
        return out

    def rollout_prefixes(
        self, walks: list[Walk] | None = None, proposals: dict[tuple[str, int], dict] | None = None
    ) -> list[ScoredPrefix]:
        """The prefixes to roll out: all of them (``rollouts.scope: all``), or those the first deviation
        needs given the values stored so far (``first_deviation``: the list grows as values arrive)."""
        walks = self.walks if walks is None else walks
        proposals = self.proposals() if proposals is None else proposals
        prefixes = self.scored_prefixes(proposals, walks)
        counts = self._counts(prefixes)
        prefixes = [replace(p, samples=counts[p.key][0]) for p in prefixes]  # the units wanted so far
        if self.recipe.rollouts.scope == "all":
            return prefixes
        known = _values_by_walk(prefixes, self._values(prefixes, counts))
        by_slot = {(p.walk.task.task_id, p.kind, p.step): p for p in prefixes}
        keep: list[ScoredPrefix] = []
        for w in walks:
            task_id, values = w.task.task_id, known.get(w.task.task_id, {"V": {}, "Q": {}})
            proposed = {t: proposals[(task_id, t)]["action"] for t in range(1, len(w.actions) + 1)
                        if (task_id, t) in proposals}  # fmt: skip
            ks, ts = positions_to_score(w.actions, proposed, values["V"], values["Q"], self.recipe.deviation.delta)
            keep += [by_slot[(task_id, "expert", k)] for k in sorted(ks)]
            keep += [by_slot[(task_id, "proposal", t)] for t in sorted(ts)]
        return keep

    def explorations(self) -> list[ScoredPrefix]:
        """The start-state prefixes: their rollouts are the agent's own explorations (De and Ds)."""
        return [p for p in self.scored_prefixes() if p.kind == "expert" and p.step == 0]

    def values(self, prefixes: list[ScoredPrefix]) -> dict[str, tuple[float, int, list[str]]]:
        """score key -> (mean outcome, rollouts, rollout keys) for prefixes whose rollouts are settled: the
        first ``samples`` of them (fixed N), or as many as the adaptive rule's verdict needs."""
        return self._values(prefixes, self._counts(prefixes))

    def _values(self, prefixes: list[ScoredPrefix], counts: dict) -> dict[str, tuple[float, int, list[str]]]:
        out = {}
        for p in prefixes:
            n, settled, rewards, keys = counts[p.key]
            if settled:
                out[p.key] = (math.fsum(rewards[:n]) / n, n, keys[:n])
        return out

    def _counts(self, prefixes: list[ScoredPrefix]) -> dict[str, tuple[int, bool, list[float], list[str]]]:
        """score key -> (rollouts its value uses or needs next, settled, stored rewards, stored keys); the
        stored ones by sample index, up to the first missing index. Read from stored rewards alone, so a
        verdict never depends on what else a batch held or on a cache shared with a bigger build."""
        rows = self.cache.sql(
            "SELECT score_key, list(sample_index ORDER BY sample_index), list(outcome_reward ORDER BY sample_index),"
            " list(key ORDER BY sample_index) FROM rollouts WHERE score_key IN (SELECT unnest(?)) GROUP BY score_key",
            [[p.key for p in prefixes]],
        ).fetchall()
        stored: dict[str, tuple[list[float], list[str]]] = {}
        for key, indices, rewards, keys in rows:
            run = next((i for i, j in enumerate(indices) if i != j), len(indices))  # contiguous from sample 0
            stored[key] = (rewards[:run], keys[:run])
        counts = {}
        for p in prefixes:
            rewards, keys = stored.get(p.key, ([], []))
            counts[p.key] = (p.floor, len(rewards) >= p.floor, rewards, keys)
        spec = self.recipe.rollouts.adaptive
        if spec is None:
            return counts
        rule = AdaptiveRule(spec.n_min, spec.n_max, spec.confidence)
        slots = {(p.walk.task.task_id, p.kind, p.step): p for p in prefixes}
        for p in prefixes:
            e = slots.get((p.walk.task.task_id, "expert", p.step - 1)) if p.kind == "proposal" else None
            if e is None:
                continue  # an expert prefix no verdict reads keeps its floor
            a, b, settled = rule.stop(
                counts[e.key][2], counts[p.key][2], (e.floor, p.floor), (e.samples, p.samples),
                self.recipe.deviation.delta,
            )  # fmt: skip
            counts[e.key] = (a, settled, *counts[e.key][2:])
            counts[p.key] = (b, settled, *counts[p.key][2:])
        return counts

    # ------------------------------------------------------------------------------------- deviations
    def verdicts(self, delta: float | None = None) -> dict[str, list[Verdict]]:
        """Deviation verdicts per task under ``delta`` (default: the recipe's)."""
        delta = self.recipe.deviation.delta if delta is None else delta
        proposals = self.proposals()
        prefixes = self.scored_prefixes(proposals)
        by_walk = _values_by_walk(prefixes, self.values(prefixes))
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

    def first_deviations(self) -> list[FirstDeviation]:
        """Each task's first deviated proposal, in task order: what reflections and Dc are made from."""
        proposals = self.proposals()
        walks = {w.task.task_id: w for w in self.walks}
        out = []
        for task_id, verdicts in sorted(self.verdicts().items()):
            first = next((v for v in verdicts if v.first), None)
            if first is not None:
                walk, proposal = walks[task_id], proposals[(task_id, first.step)]
                out.append(FirstDeviation(walk, first.step, proposal, self.reflection_key(walk, first.step, proposal)))
        return out

    def reflection_key(self, walk: Walk, t: int, proposal: dict) -> str:
        spec = self.recipe.reflection
        backend = {"backend": spec.backend}
        if spec.backend == "openai":
            backend |= {"model": spec.model, "base_url": spec.base_url, "temperature": spec.temperature}
        if spec.backend == "self":
            backend |= {"policy": self.policy_id, "temperature": spec.temperature}
        if spec.backend == "template" and spec.template != "notice":  # the default keeps the keys it always had
            backend |= {"template": spec.template}
        return unit_key(
            "reflection",
            REFLECTION_VERSION,
            reflector=backend,
            prefix=prefix_key(walk.task.task_id, walk.expert.steps[: t - 1]),
            deviated=(proposal["thought"], proposal["action"]),
            expert=walk.actions[t - 1],
        )


def _values_by_walk(prefixes: list[ScoredPrefix], values: dict) -> dict[str, dict[str, dict[int, float]]]:
    """task id -> {"V": expert prefix length k -> value, "Q": proposal position t -> value}, for the
    prefixes whose rollouts are all stored (what the deviation rule reads)."""
    by_walk: dict[str, dict[str, dict[int, float]]] = {}
    for p in prefixes:
        if p.key in values:
            entry = by_walk.setdefault(p.walk.task.task_id, {"V": {}, "Q": {}})
            entry["V" if p.kind == "expert" else "Q"][p.step] = values[p.key][0]
    return by_walk


def engine_waiting(ctx: BuildContext) -> str | None:
    """Why engine units cannot be listed yet: no expert walks, or no base agent (for ``plan``)."""
    if not engine_of(ctx).walks:
        return "after the expert stage"
    if ctx.find(AgentHandle) is None:
        return "after the warm-up"
    return None


# what the engine view is derived from: the experts, the base agent (once warmed up), the imported walks
ENGINE_NEEDS: tuple[type, ...] = (ExpertTrajectories, AgentHandle)
ENGINE_MAY_READ: tuple[type, ...] = (ImportedTasks,)


class EngineStage(Stage):
    """A stage whose units are keyed by the engine (walks and the base agent): listed once both exist."""

    needs = ENGINE_NEEDS
    may_read = ENGINE_MAY_READ

    def waiting_for(self, ctx: BuildContext) -> str | None:
        return engine_waiting(ctx)


def engine_of(ctx: BuildContext) -> Engine:
    """The build's one engine view, derived on first use from the published outputs."""
    return ctx.derive(Engine, Engine)
