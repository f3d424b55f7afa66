"""ETO's data: trajectory-level pairs, the expert trajectory vs an exploration of the same task with another outcome.

One pair per distinct action sequence of the explorations from the start state; the higher outcome is chosen.
"""

from __future__ import annotations

from ..build_dir import BuildDir
from ..bundle import Bundle
from ..chat import continuation, history
from ..pairs import Pair, include_example, ranked_pair
from .base import MethodData, PairKind

NAME = "eto"


def trajectory_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    include = include_example(build)
    for task_id, episodes in build.engine.explorations().items():
        walk = build.engine.walks[task_id]
        expert = walk.expert
        seen: set[tuple[str, ...]] = set()
        for key, episode in episodes:
            actions = tuple(s.action for s in episode.steps)
            if episode.outcome_reward == expert.outcome_reward:
                bundle.skip(f"{NAME}: the exploration's outcome equals the expert's")
                continue
            if actions in seen or not actions:
                bundle.skip(f"{NAME}: an exploration repeating an earlier one's actions (or empty)")
                continue
            seen.add(actions)
            ours = (continuation(expert, 0), expert.outcome_reward)
            theirs = (continuation(episode, 0), episode.outcome_reward)
            pairs.append(ranked_pair(key, NAME, task_id, 0, history(expert, include, 0), ours, theirs))
    return pairs


KIND = PairKind(
    name=NAME,
    assemble=trajectory_pairs,
    card=f"`kind` = `{NAME}`: prompt = system + task; chosen/rejected = the expert trajectory and an exploration "
    "from the start state with a different outcome (distinct action sequences only); scores are outcome rewards",
    sharegpt_file=f"{NAME}_pm.json",
    sharegpt_card=f"`{NAME}_pm.json`: ETO's trajectory pairs, expert vs an exploration with a different outcome "
    "(plus `margin`)",
)

DATA = MethodData(method=NAME, kind=KIND, trains_on=(KIND,))
