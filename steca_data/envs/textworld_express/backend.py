"""TextWorldExpress backend: one JVM, many simulator instances driven from threads.

``TextWorldExpressEnv`` starts a JVM per object and ``clone()`` starts another, which stalls a 2-core
machine. We launch one gateway ourselves (with a capped heap) and create a ``PythonInterface`` per
session on it; py4j gives each Python thread its own socket, so sessions step concurrently.
"""

from __future__ import annotations

import contextlib
import json
import threading

from steca_data.core.schemas import Task
from steca_data.envs.base import EnvError, StepResult
from steca_data.envs.textworld_express.spec import TextWorldExpressSpec
from steca_data.envs.textworld_express.tasks import ENV_NAME, list_twx_tasks, twx_version


class TWXSession:
    """One simulator instance; plays one episode at a time."""

    def __init__(self, backend: TWXBackend):
        self._backend = backend
        self._server = backend.gateway.jvm.textworldexpress.runtime.PythonInterface()
        self._loaded: tuple[str, str] | None = None
        self._admissible: list[str] = []
        self._task: Task | None = None

    def _load(self, game: str, params: str) -> None:
        if self._loaded != (game, params):
            message = self._server.load(game, params)
            if message:
                raise EnvError(f"TextWorldExpress rejected {game} {params!r}: {message.strip()}")
            self._loaded = (game, params)

    def _parse(self, payload: str) -> StepResult:
        info = json.loads(payload)
        obs = info["observation"]
        if obs.startswith("ERROR:"):
            raise EnvError(obs)
        success = bool(info["tasksuccess"]) or info["score"] >= 1.0
        self._admissible = list(info["validActions"])
        return StepResult(
            observation=obs.strip(),
            score=max(0.0, min(1.0, float(info["score"]))),
            done=success or bool(info["taskfailure"]),
            success=success,
            admissible=sorted(self._admissible),
        )

    def reset(self, task: Task, with_gold: bool = False) -> StepResult:
        self._load(task.game, task.params)
        self._task = task
        return self._parse(self._server.generateNewGameJSON(task.seed, task.fold, with_gold))

    def step(self, action: str) -> StepResult:
        was_admissible = action in self._admissible
        result = self._parse(self._server.stepJSON(action))
        result.valid = was_admissible
        return result

    def instruction(self) -> str:
        return str(self._server.getTaskDescription()).strip()

    def gold_actions(self) -> list[str]:
        return [str(a) for a in self._server.getGoldActionSequence()]

    def close(self) -> None:
        self._server = None


class TWXBackend:
    name = ENV_NAME

    def __init__(self, spec: TextWorldExpressSpec):
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from textworld_express.constants import BASEPATH, JAR_PATH

        self.spec = spec
        self.version = twx_version()
        port, proc = launch_gateway(
            classpath=JAR_PATH,
            die_on_exit=True,
            cwd=BASEPATH,
            javaopts=[f"-Xmx{spec.jvm_max_heap}", "-XX:+UseSerialGC", "-Xverify:none"],
            return_proc=True,
        )
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc)
        self._lock = threading.Lock()

    def tasks(self, split_name: str) -> list[Task]:
        return list_twx_tasks(self.spec, split_name)

    def new_session(self) -> TWXSession:
        with self._lock:
            return TWXSession(self)

    def gold_actions(self, session: TWXSession, task: Task) -> list[str]:
        """Gold path, without the redundant leading 'look around'; resets ``session`` to the task start.

        twc/coin redraw the gold path on every reset that asks for one, so callers cache the result
        (the expert stage stores it) and reset without it afterwards.
        """
        session.reset(task, with_gold=True)
        actions = session.gold_actions()
        if actions and actions[0].startswith("ERROR"):
            raise EnvError(actions[0])
        if actions and actions[0] == "look around":
            actions = actions[1:]
        return actions

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the JVM may already be gone
            self.gateway.shutdown()
