"""Stock vs cached ALFWorld engine: reset and step cost on a small and a full generated game, in one run.

    python benchmarks/alfworld_env.py [--resets 3] [--out /tmp/alfworld-bench]

Generates one small and one full-size game (same seed, same task type), then for each engine: the first
load + reset of a game (cold: the translation is computed), then repeated resets and walkthrough replays
(warm: what Monte Carlo rollouts pay, since they replay prefixes of the same games). Prints a table and the
stock / cached ratios. Targets (issue 5): warm reset and step "well below" stock (>= 5x here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

TARGET_RATIO = 5.0


def _game(out: Path, size: str, task_type: str) -> Path:
    from steca_data.envs.alfworld.generate import generate_one
    from steca_data.envs.alfworld.problem import TASK_TYPES

    result = generate_one(str(out / size), 1, "train", TASK_TYPES.index(task_type), size, TASK_TYPES)
    if not result.path:
        raise SystemExit(f"could not generate a {size} game: {result.rejected[-1:]}")
    return out / size / result.path / "game.tw-pddl"


def measure(make, game: Path, resets: int) -> dict[str, float]:
    from steca_data.envs.alfworld.engine import clear_caches

    walkthrough = json.loads(game.read_text())["walkthrough"]
    clear_caches()  # cold means cold: generating the game filled the caches
    env = make()
    t = time.perf_counter()
    env.load(str(game))
    env.reset()
    cold = time.perf_counter() - t
    reset_times, step_times = [], []
    for _ in range(resets):
        t = time.perf_counter()
        env.reset()
        reset_times.append(time.perf_counter() - t)
        for action in walkthrough:
            t = time.perf_counter()
            state, _, _ = env.step(action)
            step_times.append(time.perf_counter() - t)
        assert state["won"], "walkthrough did not win"
    return {
        "cold load+reset s": cold,
        "reset ms": 1000 * statistics.median(reset_times),
        "step ms": 1000 * statistics.median(step_times),
        "steps": len(walkthrough),
    }


def main() -> None:
    from steca_data.envs.alfworld.engine import make_env, make_stock_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resets", type=int, default=3)
    parser.add_argument("--task-type", default="pick_cool_then_place_in_recep")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="alfworld-bench-"))
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = []
    for size in ("small", "full"):
        game = _game(out, size, args.task_type)
        stock = measure(lambda: make_stock_env(walkthrough=False), game, args.resets)
        cached = measure(lambda: make_env(walkthrough=False), game, args.resets)
        rows.append((size, stock, cached))
    print(f"{'game':<6} {'engine':<7} {'cold load+reset s':>18} {'reset ms':>10} {'step ms':>9} {'steps':>6}")
    ok = True
    for size, stock, cached in rows:
        for name, m in (("stock", stock), ("cached", cached)):
            print(
                f"{size:<6} {name:<7} {m['cold load+reset s']:>18.2f} {m['reset ms']:>10.1f} "
                f"{m['step ms']:>9.1f} {m['steps']:>6}"
            )
        reset_ratio = stock["reset ms"] / cached["reset ms"]
        step_ratio = stock["step ms"] / cached["step ms"]
        cold_ratio = stock["cold load+reset s"] / cached["cold load+reset s"]
        ok &= reset_ratio >= TARGET_RATIO and step_ratio >= TARGET_RATIO
        print(
            f"{size:<6} ratio   stock/cached: reset {reset_ratio:.1f}x, step {step_ratio:.1f}x, "
            f"cold load+reset {cold_ratio:.1f}x"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"target (warm reset and step >= {TARGET_RATIO:.0f}x): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
