"""Preference pairs from one build: the same rows and rollouts, assembled the way each method pairs them.

- ``calibration_pairs`` (STeCa, from Dc): context = history + deviated step; chosen = the reflected step
  and the expert continuation; rejected = what the agent actually did after the deviated step (the first
  rollout behind the Dc row). As STeCa's ``data_cali_alfworld.py``, a deviated continuation that did as
  well as the expert is no pair.
- ``subtrajectory_pairs`` (STeCa, from Ds) and ``explored_pairs`` (STeCa/RFT, from De): the other two
  parts of STeCa's reinforced-training file.
- ``step_pairs`` (IPR): at expert position t, the expert step vs the agent's proposed step from the same
  prefix; the one with the higher Monte Carlo step reward is chosen, the margin is kept.
- ``trajectory_pairs`` (ETO): the expert trajectory vs an exploration of the same task from the start
  state with a different outcome (one pair per distinct action sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

from steca_data.core.keys import unit_key
from steca_data.core.react import format_turn

from .build_dir import BuildDir, ExportError
from .bundle import Bundle
from .chat import Message, continuation, history, plain, split_at_loss


@dataclass(frozen=True)
class Pair:
    id: str
    kind: str  # steca | ipr | eto (DPO kinds); dc | ds | de (STeCa's reinforced-training parts)
    task_id: str
    step: int  # 1-based expert position the pair branches at; 0 = the start state
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    chosen_score: float
    rejected_score: float
    weight: float  # the build's reward weight (r_c, r_s, r_e) where the pair comes from a row, else 1
    distance: float  # nDTW between chosen and rejected actions where the build computed it, else -1

    @property
    def margin(self) -> float:
        return self.chosen_score - self.rejected_score

    def sort_key(self) -> tuple:
        return (self.kind, self.task_id, self.step, self.id)


def _include_example(build: BuildDir) -> bool:
    return build.recipe.prompt.include_example


def _row_pair(row: dict, kind: str, t: int, texts: tuple, chosen_from, rejected_from) -> Pair:
    """A pair made from a built row: its id, reward weight and distance, the two trajectories' outcomes."""
    prompt, chosen, rejected = texts
    return Pair(
        id=row["id"],
        kind=kind,
        task_id=row["provenance"]["task_id"],
        step=t,
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        chosen_score=chosen_from.outcome_reward,
        rejected_score=rejected_from.outcome_reward,
        weight=row["reward_weight"],
        distance=row["distance"],
    )


def _row_sources(build: BuildDir, row: dict):
    """A Dc/Ds row's step, the expert walk and the rollout it was assembled from."""
    prov = row["provenance"]
    return prov["step"], build.engine.walk(prov["task_id"]), build.engine.rollout(prov["rollout_ids"][0])


def calibration_pairs(build: BuildDir, bundle: Bundle, kind: str = "steca") -> list[Pair]:
    pairs = []
    for row in build.rows.get("dc", []):
        t, walk, deviated = _row_sources(build, row)
        if len(deviated.steps) < t or deviated.steps[t - 1].action != row["deviated_action"]:
            raise ExportError(f"{build.path}: Dc row {row['id']}: its rollout does not start with the deviated step")
        prompt, chosen = split_at_loss(row["messages"])
        rejected = continuation(deviated, t)  # after (â_t, its observation): ê_{t+1}, ...
        if not rejected:
            bundle.skip(f"{kind}: the deviated episode ended at the deviated step")
            continue
        if deviated.outcome_reward >= walk.expert.outcome_reward:
            bundle.skip(f"{kind}: the deviated continuation did as well as the expert")
            continue
        pairs.append(_row_pair(row, kind, t, (prompt, chosen, rejected), walk.expert, deviated))
    return pairs


def subtrajectory_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    for row in build.rows.get("ds", []):
        t, walk, exploration = _row_sources(build, row)
        prompt, chosen = split_at_loss(row["messages"])  # expert prefix e_{1:t-1} | e_{t:m}
        rejected = continuation(exploration, t - 1)  # the agent from its first error on
        if not rejected:
            bundle.skip("ds: the exploration has no steps from its first error on")
            continue
        pairs.append(_row_pair(row, "ds", t, (prompt, chosen, rejected), walk.expert, exploration))
    return pairs


def explored_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    for row in build.rows.get("de", []):
        prov = row["provenance"]
        walk = build.engine.walk(prov["task_id"])
        success = build.engine.rollout(row["id"])  # a De row's id is its exploration's rollout key
        messages = plain(row["messages"])
        pairs.append(
            Pair(
                id=row["id"],
                kind="de",
                task_id=prov["task_id"],
                step=0,
                prompt=messages[:2],
                chosen=messages[2:],
                rejected=continuation(walk.expert, 0),
                chosen_score=success.outcome_reward,
                rejected_score=walk.expert.outcome_reward,
                weight=row["reward_weight"],
                distance=row["distance"],
            )
        )
    return pairs


def step_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    include = _include_example(build)
    for c in build.engine.step_comparisons():
        if c.expert_value == c.proposal_value:
            bundle.skip("ipr: expert and proposed step have the same Monte Carlo reward")
            continue
        step = c.walk.expert.steps[c.t - 1]
        expert = [{"role": "assistant", "content": format_turn(step.thought, step.action)}]
        agent = [{"role": "assistant", "content": format_turn(c.proposal["thought"], c.proposal["action"])}]
        pairs.append(
            _ranked_pair(
                unit_key("export-ipr", "1", expert=c.expert_key, proposal=c.proposal_key),
                "ipr",
                c.walk.task.task_id,
                c.t,
                history(c.walk.expert, include, c.t - 1),
                (expert, c.expert_value),
                (agent, c.proposal_value),
            )
        )
    return pairs


def _ranked_pair(pair_id: str, kind: str, task_id: str, step: int, prompt, a: tuple, b: tuple) -> Pair:
    """The pair of two (messages, score) sides, the higher score chosen (the expert's side wins ties)."""
    chosen, rejected = (a, b) if a[1] >= b[1] else (b, a)
    return Pair(pair_id, kind, task_id, step, prompt, chosen[0], rejected[0], chosen[1], rejected[1], 1.0, -1.0)


def trajectory_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    include = _include_example(build)
    for task_id, episodes in build.engine.explorations().items():
        walk = build.engine.walks[task_id]
        expert = walk.expert
        seen: set[tuple[str, ...]] = set()
        for key, episode in episodes:
            actions = tuple(s.action for s in episode.steps)
            if episode.outcome_reward == expert.outcome_reward:
                bundle.skip("eto: the exploration's outcome equals the expert's")
                continue
            if actions in seen or not actions:
                bundle.skip("eto: an exploration repeating an earlier one's actions (or empty)")
                continue
            seen.add(actions)
            ours = (continuation(expert, 0), expert.outcome_reward)
            theirs = (continuation(episode, 0), episode.outcome_reward)
            pairs.append(_ranked_pair(key, "eto", task_id, 0, history(expert, include, 0), ours, theirs))
    return pairs
