"""ScienceWorld backend: one JVM, many simulator instances driven from threads.

``ScienceWorldEnv`` starts a JVM (and a py4j callback server) per object and rebuilds its 100-2,000-entry
valid-action list through one py4j call per entry at every step. We launch one gateway with a capped
heap and create a ``PythonInterface`` per session on it, and read the valid actions as one JSON string.

The simulator shares state across the worlds of one JVM: driven from two threads at once, 47 of 320
gold paths failed on replay (and a load died with a NullPointerException), all of which replay when run
alone. So calls into the JVM take the backend's lock: sessions stay many and cheap, their simulator
steps run one at a time (the policy, not the ~10-60 ms step, is what a rollout waits for).
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass

from steca_data.core.schemas import Task
from steca_data.envs.base import EnvError, StepResult
from steca_data.envs.scienceworld.spec import ScienceWorldSpec
from steca_data.envs.scienceworld.tasks import ENV_NAME, list_sciworld_tasks, sciworld_version

FIRST_ACTION = "look around"  # what ScienceWorld's own reset plays, and ETO's first observation
UNKNOWN_ACTION = "No known action matches that input."


def launch(max_heap: str):
    """A py4j gateway to a fresh ScienceWorld JVM with a capped heap (it grows to GBs without one)."""
    from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
    from scienceworld.constants import BASEPATH, JAR_PATH

    port, proc = launch_gateway(
        classpath=JAR_PATH,
        die_on_exit=True,
        cwd=BASEPATH,
        javaopts=[f"-Xmx{max_heap}", "-XX:+UseSerialGC"],
        return_proc=True,
    )
    return JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc)


def normalised(score: float) -> float:
    """ScienceWorld scores 0..1 (the Python wrapper shows 0..100; a failed task scores below 0) -> [0, 1].

    A step's score is the best of the episode so far, as ETO scores an episode (its ``reward`` keeps the
    maximum): focusing on a wrong object ends a task at -100, and the episode keeps the credit it earned.
    The mean outcome reward over tasks is then ETO's "average reward" / 100; success is a score of 100.
    """
    return max(0.0, min(1.0, float(score)))


@dataclass
class LazyStepResult(StepResult):
    """A step whose admissible actions are asked of the simulator only when read.

    ScienceWorld computes them by trying every template on every visible object: 70-300 ms a state on
    this CPU, 5-20 times a step. Gold replays never read them; a policy reads them before the next step.
    """

    session: SciWorldSession | None = None
    moves: int = -1

    def __post_init__(self) -> None:
        self._admissible: list[str] | None = None

    @property  # type: ignore[override]
    def admissible(self) -> list[str]:
        if self._admissible is None:
            if self.session is None:
                return []
            self._admissible = self.session.admissible_at(self.moves)
        return self._admissible

    @admissible.setter
    def admissible(self, value: list[str]) -> None:
        self._admissible = value if value else None


class SciWorldSession:
    """One simulator instance; plays one episode at a time."""

    def __init__(self, backend: SciWorldBackend):
        self._jvm = backend.jvm_lock
        self._server = backend.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
        self._simplifications = backend.spec.simplifications
        self._moves = 0  # steps since the last reset, so a stale admissible read is caught
        self._best = 0.0  # the episode's score as ETO counts it: the best reached so far

    def _load(self, task: Task, gold: bool) -> None:
        with self._jvm:
            self._server.load(task.game, int(task.seed), self._simplifications, gold)

    def admissible_at(self, moves: int) -> list[str]:
        """The valid action-object combinations of the current state (one py4j call, one JSON string)."""
        if moves != self._moves:
            raise EnvError("admissible actions of an earlier state were read after the next step")
        with self._jvm:
            data = json.loads(self._server.getValidActionObjectCombinationsJSON())
        return sorted({a["action"] for a in data["validActions"]})

    def _play(self, action: str) -> StepResult:
        with self._jvm:
            observation = str(self._server.step(action)).strip()
            raw = float(self._server.getScore())
            completed = bool(self._server.getCompleted())
        success = raw >= 1.0
        self._best = max(self._best, normalised(raw))
        return LazyStepResult(
            observation=observation,
            score=self._best,
            done=success or raw < 0 or completed,
            success=success,
            valid=observation != UNKNOWN_ACTION,
            session=self,
            moves=self._moves,
        )

    def reset(self, task: Task) -> StepResult:
        """Load the variation afresh (a reset of a loaded one is not always the same start) and look around."""
        self._load(task, gold=False)
        self._moves, self._best = 0, 0.0
        result = self._play(FIRST_ACTION)
        result.valid = None
        return result

    def step(self, action: str) -> StepResult:
        """One action; ``valid`` is False when ScienceWorld matched no action template to it."""
        self._moves += 1
        return self._play(action)

    def instruction(self) -> str:
        with self._jvm:
            return str(self._server.getTaskDescription()).strip()

    def gold_actions(self, task: Task, random) -> list[str]:
        """The gold agent's path: a function of the task *and of what the JVM ran before* (the cache keeps
        the first one, so a build is reproducible from its cache, not from a fresh one).

        Measured (scienceworld 1.2.3, 40 ETO train variations): two fresh JVMs that load the same variations
        in the same order give identical paths (40/40); one JVM loading them again in reverse order gave
        23/40 different paths (other wires, objects or rooms visited in another order). ``load`` already
        resets the object-id counter and seeds Scala's Random with the variation (so does this method); what
        remains is JVM state the API cannot reset: ``EnvObject`` has no ``hashCode``, so the simulator's
        ``mutable.Set`` iteration order follows identity hash codes, drawn from a per-thread generator that
        every earlier object advanced. With ``-XX:hashCode=2`` (every identity hash equal) 2/12 still
        differed (wire choices in conductivity tasks): a second history-dependent source inside the JAR."""
        with self._jvm:
            random.setSeed(int(task.seed))
            self._load(task, gold=True)
            actions = [str(a) for a in self._server.getGoldActionSequence()]
        if not actions or actions[0].startswith("ERROR"):
            raise EnvError(f"no gold path for {task.task_id}: {actions[:1]}")
        return actions

    def close(self) -> None:
        self._server = None


class SciWorldBackend:
    name = ENV_NAME

    def __init__(self, spec: ScienceWorldSpec):
        self.spec = spec
        self.version = sciworld_version()
        self.gateway = launch(spec.jvm_max_heap)
        self.jvm_lock = threading.RLock()  # one call into the simulator at a time (see the module docstring)
        self._random = getattr(getattr(self.gateway.jvm.scala.util, "Random$"), "MODULE$")

    def tasks(self, split_name: str) -> list[Task]:
        return list_sciworld_tasks(self.spec, split_name)

    def new_session(self) -> SciWorldSession:
        with self.jvm_lock:
            return SciWorldSession(self)

    def gold_actions(self, session: SciWorldSession, task: Task) -> list[str]:
        """ScienceWorld's gold path (``get_gold_action_sequence``); leaves ``session`` at the task start."""
        actions = session.gold_actions(task, self._random)
        session.reset(task)
        return actions

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the JVM may already be gone
            self.gateway.shutdown()
