"""STeCa-DPO's data (the paper's SFT+DPO ablation): calibrated vs deviated continuations of Dc.

The prompt is Dc's context (history and the deviated step with its observation); chosen = the reflected step
and the expert continuation; rejected = the agent's own continuation after the deviated step. A deviated
continuation that did as well as the expert is no pair (as STeCa's ``data_cali_alfworld.py``).
"""

from __future__ import annotations

from ..build_dir import BuildDir
from ..bundle import Bundle
from ..pairs import Pair, calibration_pairs
from .base import MethodData, PairKind

NAME = "steca-dpo"
KIND_NAME = "steca"  # the ``kind`` value (named for the method family, as exported since the first version)


def pairs(build: BuildDir, bundle: Bundle) -> list[Pair]:
    return calibration_pairs(build, bundle, KIND_NAME)


KIND = PairKind(
    name=KIND_NAME,
    assemble=pairs,
    card=f"`kind` = `{KIND_NAME}`: prompt = Dc's context (history e_1..e_{{t-1}}, the deviated step and its "
    "observation); chosen = the reflected step and the expert continuation; rejected = the agent's continuation "
    "after the deviated step (the rollout behind the Dc row); scores are outcome rewards; `weight` = r_c",
)

DATA = MethodData(method=NAME, kind=KIND, trains_on=(KIND,))
