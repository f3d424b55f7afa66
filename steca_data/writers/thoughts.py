"""Thoughts for expert steps: a deterministic template (offline default) or an OpenAI-compatible model.

Gold paths come as bare actions. The paper had GPT-4o write the ReAct thought of each expert step; the
template writes one from the action and what the environment said, so offline builds still train the
Thought/Action format.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from steca_data.core.schemas import Trajectory
from steca_data.envs.registry import find_plugin

if TYPE_CHECKING:  # recipe sections are a higher layer: used for type hints only
    from steca_data.recipe.model import ThoughtSpec

TEMPLATE_VERSION = "template-v1"

_RULES: list[tuple[str, str]] = [
    (r"^take (?P<x>.+?) from (?P<y>.+)$", "I need the {x}, which is in the {y}. I will take it."),
    (r"^take (?P<x>.+)$", "I see the {x}, which is not where it belongs. I will pick it up."),
    (r"^put (?P<x>.+?) (?P<p>in|on) (?P<y>.+)$", "The {x} belongs {p} the {y}, so I will put it there."),
    (r"^move (?P<x>.+?) to (?P<y>.+)$", "The {x} belongs in or on the {y}, so I will move it there."),
    (r"^open door to (?P<y>.+)$", "The door to the {y} is closed. I will open it so I can go through."),
    (r"^open (?P<x>.+)$", "The {x} is closed. I will open it to see what is inside."),
    (r"^close (?P<x>.+)$", "I am done with the {x}, so I will close it."),
    (r"^(move|go) (?P<d>north|south|east|west)$", "What I need is not here. I will go {d} to search."),
    (r"^(move|go) to (?P<y>.+)$", "I will go to the {y}."),
    (r"^read (?P<x>.+)$", "I should read the {x} to learn what has to be done."),
    (
        (r"^(?P<v>slice|chop|dice) (?P<x>.+?) with (?P<y>.+)$"),
        "The recipe says the {x} must be {v}d, so I will {v} it with the {y}.",
    ),
    (r"^cook (?P<x>.+?) (in|with) (?P<y>.+)$", "The {x} needs to be cooked, so I will use the {y}."),
    (r"^prepare meal$", "I have everything the recipe asks for. Time to prepare the meal."),
    (r"^eat meal$", "The meal is ready. I will eat it to finish the task."),
    (r"^(heat|cool|clean) (?P<x>.+?) with (?P<y>.+)$", "The task needs the {x} treated, so I will use the {y}."),
    (r"^use (?P<x>.+)$", "I will use the {x}."),
    (r"^examine (?P<x>.+)$", "Let me look at the {x} more closely."),
    (r"^look( around)?$", "I will look around to see where I am."),
    (r"^inventory$", "Let me check what I am carrying."),
]


_COMPILED = [(re.compile(p, re.IGNORECASE), text) for p, text in _RULES]


def template_thought(game: str, action: str, observation: str, env: str | None = None) -> str:
    """A short thought that motivates ``action`` from the observation it answers.

    The environment's own rules (its plugin's ``template_thought``) come first, then the generic verbs.
    """
    found = find_plugin(env)
    specific = found.template_thought(game, action, observation) if found else None
    if specific is not None:
        return specific
    for pattern, text in _COMPILED:
        m = pattern.match(action.strip())
        if m:
            return text.format(**{k: v for k, v in m.groupdict().items() if v})
    return f"Next, I will {action.strip()}."


def template_thoughts(trajectory: Trajectory) -> list[str]:
    thoughts, previous = [], trajectory.initial_observation
    for step in trajectory.steps:
        thoughts.append(template_thought(trajectory.task.game, step.action, previous, trajectory.task.env))
        previous = step.observation
    return thoughts


_LINE = re.compile(r"^\s*(\d+)[.):]\s*(.+?)\s*$")

OPENAI_THOUGHTS_PROMPT = """You are annotating an expert demonstration of a text-based game with the \
reasoning behind each action, in the ReAct style.

Task: {instruction}
Initial observation: {initial}

{steps}

For each numbered action, write one short thought (one or two sentences, first person, present tense) \
that an agent would think right before taking that action, using only what it has seen so far. Answer \
with exactly {n} lines, formatted "<number>. <thought>", and nothing else."""


def openai_thought_prompt(trajectory: Trajectory) -> str:
    lines = []
    for i, step in enumerate(trajectory.steps, 1):
        lines.append(f"{i}. Action: {step.action}\n   Observation: {step.observation}")
    return OPENAI_THOUGHTS_PROMPT.format(
        instruction=trajectory.instruction,
        initial=trajectory.initial_observation,
        steps="\n".join(lines),
        n=len(trajectory.steps),
    )


def parse_numbered_thoughts(text: str, n: int) -> list[str] | None:
    found: dict[int, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and 1 <= int(m.group(1)) <= n:
            found.setdefault(int(m.group(1)), m.group(2).removeprefix("Thought:").strip())
    if len(found) != n:
        return None
    return [found[i] for i in range(1, n + 1)]


class OpenAIThoughtWriter:
    """One chat call per trajectory; the ``openai`` client retries 5xx/timeouts with backoff."""

    def __init__(self, spec: ThoughtSpec):
        from steca_data.writers.openai_client import openai_client

        self.spec = spec
        self.client = openai_client(spec, "experts.thoughts")

    @property
    def source(self) -> str:
        return f"openai:{self.spec.model}"

    def __call__(self, trajectory: Trajectory) -> list[str]:
        prompt = openai_thought_prompt(trajectory)
        last = ""
        for _ in range(1 + self.spec.max_retries):
            response = self.client.chat.completions.create(
                model=self.spec.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=self.spec.temperature,
            )
            last = response.choices[0].message.content or ""
            thoughts = parse_numbered_thoughts(last, len(trajectory.steps))
            if thoughts is not None:
                return thoughts
        raise ValueError(f"model gave no usable thoughts after retries; last reply began {last[:120]!r}")
