"""Pydantic models for everything the engine stores or emits.

These models are the contract between the builder, the DuckDB cache, the Hugging Face datasets and the
trainer. Their JSON Schemas are exported to ``schemas/`` (``steca-data schemas export``) and a test fails
when the files drift from the models, so downstream users can validate rows without importing us.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Task(_Model):
    """One playable task: an environment, a game with its parameters, a seed and a fold."""

    task_id: str = Field(description="Stable id, e.g. 'twx/twc/numItemsToPutAway=2,numLocations=1/train/17'.")
    env: str = Field(description="Environment backend name, e.g. 'textworld_express' or 'alfworld'.")
    game: str = Field(description="Game or task type inside the environment, e.g. 'twc'.")
    params: str = Field(default="", description="Canonical game parameters, 'key=value' joined by commas.")
    seed: int | None = Field(default=None, description="Generator seed (None for file-based games).")
    fold: str = Field(description="The environment's own fold: train / dev / test, or a data folder.")
    split: str = Field(description="The recipe's split this task belongs to: train, seen, unseen, ...")
    unseen: bool = Field(description="True when the task's objects/scenes never occur in training folds.")


class Step(_Model):
    """One ReAct turn: the agent's thought and action, and the environment's answer."""

    thought: str = ""
    action: str
    observation: str
    reward: float = Field(default=0.0, description="Environment score after this step, in [0, 1].")
    done: bool = False
    valid: bool | None = Field(default=None, description="Whether the action was admissible; None if unknown.")


class Trajectory(_Model):
    """A whole episode (or the tail of one) on one task."""

    trajectory_id: str
    source: Literal["expert", "explored", "rollout", "eval", "imported"]
    task: Task
    instruction: str = Field(description="Task description as the environment states it.")
    initial_observation: str
    steps: list[Step]
    outcome_reward: float = Field(ge=0.0, le=1.0, description="Final reward r_o in [0, 1].")
    success: bool
    env_name: str
    env_version: str
    policy_id: str | None = Field(default=None, description="Which policy produced the actions, if any.")
    prompt_version: str | None = None
    constrained_actions: bool | None = Field(
        default=None, description="Whether the Action span was restricted to admissible actions."
    )
    thought_source: str | None = Field(default=None, description="template / openai:<model> / policy / file")
    unparsable_actions: int | None = Field(
        default=None, description="Policy replies without a parsable Action (sent to the env as invalid actions)."
    )


class Rollout(_Model):
    """One Monte Carlo continuation from a trajectory prefix that ends with the action being scored."""

    rollout_id: str
    task_id: str
    prefix_actions: list[str] = Field(description="Actions replayed before the continuation, scored one last.")
    sample_index: int
    seed: int
    policy_id: str
    actions: list[str]
    observations: list[str]
    outcome_reward: float = Field(ge=0.0, le=1.0)
    success: bool


class StepReward(_Model):
    """Monte Carlo step reward r_s(s_t, a_t): the mean outcome of N rollouts after a prefix."""

    task_id: str
    prefix_len: int = Field(description="Number of actions in the scored prefix (the scored action included).")
    action: str
    kind: Literal["expert", "proposal"]
    n: int
    successes: int
    reward: float = Field(ge=0.0, le=1.0)
    rollout_ids: list[str]


class Deviation(_Model):
    """The verdict on one proposal: deviated when r(proposal) - r(previous expert step) < delta."""

    task_id: str
    step: int = Field(description="1-based index t of the expert action the proposal competes with.")
    expert_action: str
    proposed_thought: str
    proposed_action: str
    reward_proposal: float
    reward_expert_prev: float
    delta: float
    deviated: bool
    first: bool = Field(description="True for the first deviated step of this exploration (the one calibrated).")


class Reflection(_Model):
    """A reflective thought that notices the deviated action and leads back to the expert action."""

    task_id: str
    step: int
    backend: str
    model: str
    prompt: str
    raw_response: str
    thought: str
    status: Literal["ok", "failed"]
    attempts: int


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: str
    loss: bool = Field(default=False, description="True for the assistant turns that carry training loss.")


class Provenance(_Model):
    task_id: str
    split: str
    step: int | None = Field(default=None, description="Step at which the sample starts (Dc/Ds), if any.")
    trajectory_ids: list[str] = Field(default_factory=list)
    rollout_ids: list[str] = Field(default_factory=list)
    recipe_hash: str
    prompt_version: str


class SampleRow(_Model):
    """A training row: chat messages, which turns bear loss, a reward weight and where it came from."""

    id: str
    dataset: str
    messages: list[ChatMessage]
    reward_weight: float = Field(description="Per-example weight of the likelihood objective (r_c, r_s, r_e or 1).")
    provenance: Provenance


class ExpertRow(SampleRow):
    """A full expert trajectory (the warm-up SFT data)."""

    dataset: Literal["expert"] = "expert"
    outcome_reward: float
    num_steps: int


class CalibrationRow(SampleRow):
    """Dc: history e_{1:t-1} + deviated action as context, target e_c(t:m)."""

    dataset: Literal["dc"] = "dc"
    deviated_action: str
    expert_action: str
    reflection: str
    distance: float


class ExploredRow(SampleRow):
    """De: a trajectory the base agent completed on its own, paired with the expert's."""

    dataset: Literal["de"] = "de"
    expert_actions: list[str]
    distance: float


class ExpertSubRow(SampleRow):
    """Ds: the expert continuation e_{t:m} after the first erroneous step of a failed exploration."""

    dataset: Literal["ds"] = "ds"
    agent_actions: list[str]
    distance: float


ROW_MODELS: dict[str, type[SampleRow]] = {
    "expert": ExpertRow,
    "dc": CalibrationRow,
    "de": ExploredRow,
    "ds": ExpertSubRow,
}

EXPORTED_MODELS: dict[str, type[BaseModel]] = {
    "task": Task,
    "step": Step,
    "trajectory": Trajectory,
    "rollout": Rollout,
    "step_reward": StepReward,
    "deviation": Deviation,
    "reflection": Reflection,
    **{f"row_{name}": model for name, model in ROW_MODELS.items()},
}
