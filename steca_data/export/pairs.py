"""Preference pairs from one build: the same rows and rollouts, assembled the way each method pairs them.

- ``calibration_pairs`` (STeCa, from Dc): context = history + deviated step; chosen = the reflected step
  and the expert continuation; rejected = what the agent actually did after the deviated step (the first
  rollout behind the Dc row). As STeCa's ``data_cali_alfworld.py``, a deviated continuation that did as
  well as the expert is no pair.
- ``subtrajectory_pairs`` (STeCa, from Ds) and ``explored_pairs`` (STeCa/RFT, from De): the other two
  parts of STeCa's reinforced-training file.

The pair kinds of the preference methods (step-level, trajectory-level) are assembled in each method's own data
module (``export/methods/``) from the helpers here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .build_dir import BuildDir, ExportError
from .bundle import Bundle
from .chat import Message, continuation, plain, split_at_loss


@dataclass(frozen=True)
class Pair:
    id: str
    kind: str  # a method's pair kind (``export/methods/``); dc | ds | de (STeCa's reinforced-training parts)
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


def include_example(build: BuildDir) -> bool:
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


def calibration_pairs(build: BuildDir, bundle: Bundle, kind: str) -> list[Pair]:
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


def ranked_pair(pair_id: str, kind: str, task_id: str, step: int, prompt, a: tuple, b: tuple) -> Pair:
    """The pair of two (messages, score) sides, the higher score chosen (the expert's side wins ties)."""
    chosen, rejected = (a, b) if a[1] >= b[1] else (b, a)
    return Pair(pair_id, kind, task_id, step, prompt, chosen[0], rejected[0], chosen[1], rejected[1], 1.0, -1.0)
