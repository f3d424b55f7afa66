"""IPR's data: step-level pairs from the engine's Monte Carlo step rewards, trained on beside ETO's trajectory pairs.

At expert position t, the expert step vs the agent's proposed step from the same expert prefix; the one with the
higher Monte Carlo step reward is chosen (the expert's side wins ties, which are left out), the margin kept.
"""

from __future__ import annotations

from steca_data.core.keys import unit_key
from steca_data.core.react import format_turn

from ..build_dir import BuildDir
from ..bundle import Bundle
from ..chat import history
from ..pairs import Pair, include_example, ranked_pair
from . import eto
from .base import MethodData, PairKind

NAME = "ipr"


def step_pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    pairs = []
    include = include_example(build)
    for c in build.engine.step_comparisons():
        if c.expert_value == c.proposal_value:
            bundle.skip(f"{NAME}: expert and proposed step have the same Monte Carlo reward")
            continue
        step = c.walk.expert.steps[c.t - 1]
        expert = [{"role": "assistant", "content": format_turn(step.thought, step.action)}]
        agent = [{"role": "assistant", "content": format_turn(c.proposal["thought"], c.proposal["action"])}]
        pairs.append(
            ranked_pair(
                unit_key(f"export-{NAME}", "1", expert=c.expert_key, proposal=c.proposal_key),
                NAME,
                c.walk.task.task_id,
                c.t,
                history(c.walk.expert, include, c.t - 1),
                (expert, c.expert_value),
                (agent, c.proposal_value),
            )
        )
    return pairs


KIND = PairKind(
    name=NAME,
    assemble=step_pairs,
    card=f"`kind` = `{NAME}`: prompt = the expert prefix e_1..e_{{t-1}}; chosen/rejected = one assistant turn each, "
    "the expert step and the agent's proposed step; scores are their Monte Carlo step rewards (mean outcome of "
    "the rollouts after each), the higher is chosen; `margin` = the difference (ties are left out)",
    sharegpt_file=f"{NAME}_pm.json",
    sharegpt_card=f"`{NAME}_pm.json`: IPR's step-level pairs (`id`, `prompt`, `chosen`, `rejected`; plus `margin`, "
    "the Monte Carlo step-reward difference)",
)

DATA = MethodData(method=NAME, kind=KIND, trains_on=(KIND, eto.KIND))
