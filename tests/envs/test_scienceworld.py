"""The ScienceWorld plugin on the real engine (one JVM for the module): catalog, splits, gold replays,
admissible actions read lazily, invalid actions, template thoughts, constrained decoding on a real set."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("scienceworld")

from steca_data.envs import EnvError, SessionPool, make_backend  # noqa: E402
from steca_data.envs.registry import list_tasks, plugin  # noqa: E402
from steca_data.envs.scienceworld import catalog  # noqa: E402
from steca_data.envs.scienceworld.spec import ScienceWorldSpec  # noqa: E402
from steca_data.stages.experts import play_gold  # noqa: E402

SHORT = "lifespan-longest-lived,find-non-living-thing"  # gold paths of 5-7 steps


def _spec(**splits) -> ScienceWorldSpec:
    return ScienceWorldSpec(game=SHORT, workers=2, splits=splits or {"train": {"fold": "train", "count": 3}})


@pytest.fixture(scope="module")
def backend():
    b = make_backend(_spec(train={"fold": "train", "count": 2}, unseen={"fold": "test", "count": 2}))
    yield b
    b.close()


def test_catalog_holds_the_benchmark_and_listing_starts_no_jvm():
    types = catalog.task_types()
    assert len(types) == 30 and sum(t.variations for t in types.values()) == 7207
    sizes = {f: len(catalog.fold_tasks("all", f)) for f in catalog.FOLDS}
    assert sizes == {"train": 3592, "dev": 1796, "test": 1819, "eto_train": 1429, "eto_dev": 194, "eto_test": 211}
    assert len(catalog.selected_types("eto")) == 24
    first = catalog.fold_tasks("all", "train")[:30]
    assert {n for n, _ in first} == set(types), "a block of a fold covers every task type"
    code = (
        "import sys\nfrom steca_data.envs.registry import list_tasks\n"
        "from steca_data.envs.scienceworld.spec import ScienceWorldSpec\n"
        "s = ScienceWorldSpec(splits={'train': {'fold': 'eto_train', 'count': 50},\n"
        "                             'u': {'fold': 'eto_test', 'count': 9}})\n"
        "print(len(list_tasks(s, 'train')), sum(t.unseen for t in list_tasks(s, 'u')))\n"
        "print(sorted({'py4j', 'scienceworld'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["50 9", "[]"]


def test_recipe_errors_name_the_field():
    with pytest.raises(ValueError, match="game: unknown ScienceWorld task type 'bake'"):
        ScienceWorldSpec(game="bake", splits={"train": {"fold": "train", "count": 1}})
    with pytest.raises(ValueError, match="exceeds the 1429 tasks of fold 'eto_train'"):
        ScienceWorldSpec(splits={"train": {"fold": "eto_train", "count": 2000}})
    with pytest.raises(ValueError, match="splits.seen: shares .* tasks with splits.train"):
        splits = {"train": {"fold": "train", "count": 14}, "seen": {"fold": "eto_train", "count": 3}}
        ScienceWorldSpec(game="boil", splits=splits)
    with pytest.raises(ValueError, match="unknown simplification 'fast'"):
        ScienceWorldSpec(simplifications="fast", splits={"train": {"fold": "train", "count": 1}})


def test_gold_paths_win_in_a_pool_and_scores_are_normalised(backend):
    tasks = list_tasks(backend.spec, "train") + list_tasks(backend.spec, "unseen")
    assert [t.unseen for t in tasks] == [False] * 2 + [True] * 2
    with SessionPool(backend, 2) as pool:
        done = [v for _, v in pool.imap_unordered(lambda s, t: play_gold(backend, s, t, backend.version), tasks)]
    assert all(not isinstance(v, BaseException) for v in done), done
    for traj in done:
        rewards = [s.reward for s in traj.steps]
        assert traj.success and traj.outcome_reward == 1.0 and traj.steps[-1].done
        assert all(0.0 <= r <= 1.0 for r in rewards) and any(0.0 < r < 1.0 for r in rewards), rewards
        assert all(s.valid for s in traj.steps) and traj.instruction.startswith("Your task is to")


def test_admissible_actions_are_real_lazy_and_not_stale(backend):
    task = list_tasks(backend.spec, "train")[0]
    session = backend.new_session()
    gold = backend.gold_actions(session, task)
    unread = session.reset(task)
    assert session.step(gold[0]).valid is True
    with pytest.raises(EnvError, match="after the next step"):
        _ = unread.admissible  # the simulator has moved on: never answer with another state's actions
    admissible = session.reset(task).admissible
    assert len(admissible) > 50 and "look around" in admissible and "go to kitchen" in admissible
    assert any(a.startswith("focus on ") for a in admissible) and admissible == sorted(set(admissible))
    bad = session.step("fly to the moon")
    assert bad.valid is False and not bad.done


def test_template_thoughts_and_prompt_come_from_the_plugin():
    from steca_data.envs import prompting

    sw = plugin("scienceworld")
    assert (
        sw.template_thought("boil", "focus on red wire", "")
        == "The red wire is what the task is about. I will focus on it."
    )
    text = prompting.system_prompt("scienceworld", "boil", False)
    assert text.startswith("Do a science experiment") and "- pour OBJ in OBJ" in text
    assert prompting.system_prompt("textworld_express", "twc", False).startswith("Interact with a household")
    assert [c.name for c in sw.doctor_checks()][0] == "ScienceWorld"


def test_constrained_decoding_on_a_real_admissible_set(backend):
    """The factored pattern accepts exactly a real state's actions, and llguidance decoding under it (a
    seeded random walk over the allowed tokens, as a model would sample) always ends on one of them."""
    import random
    import re

    import llguidance.hf
    from llguidance import LLMatcher
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from steca_data.policies.grammar import ALTERNATION_LIMIT, action_regex, factored_alternation

    spec = ScienceWorldSpec(game="test-conductivity", splits={"train": {"fold": "train", "count": 1}})
    task = list_tasks(spec, "train")[0]
    session = backend.new_session()
    admissible = session.reset(task).admissible  # the workshop's wires, batteries, bulbs: 400+ actions
    assert len(admissible) > ALTERNATION_LIMIT
    choices = factored_alternation(admissible)
    plain = "|".join(re.escape(a) for a in admissible)
    assert len(choices) < len(plain) / 2
    pattern = re.compile(choices)
    assert all(pattern.fullmatch(a) for a in admissible)
    near = {a + " x" for a in admissible} | {a.rsplit(" ", 1)[0] for a in admissible} | {"connect wire"}
    assert not any(pattern.fullmatch(a) for a in near - set(admissible))

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe.train_from_iterator(
        admissible, trainers.BpeTrainer(vocab_size=512, special_tokens=["<eos>"], initial_alphabet=alphabet)
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")
    lltok = llguidance.hf.from_tokenizer(tokenizer)
    grammar = LLMatcher.grammar_from_regex(action_regex(admissible, 20))
    rng, mask = random.Random(0), allocate_token_bitmask(1, lltok.vocab_size)
    for _ in range(5):
        matcher, out = LLMatcher(lltok, grammar), []
        while not matcher.is_stopped():
            fill_next_token_bitmask(matcher, mask, 0)
            bits = mask[0].view("uint32") if hasattr(mask[0], "view") else mask[0]
            allowed = [t for t in range(lltok.vocab_size) if (int(bits[t // 32]) >> (t % 32)) & 1]
            token = rng.choice(allowed)
            assert matcher.consume_token(token)
            if token == lltok.eos_token:
                break
            out.append(token)
        text = tokenizer.decode(out)
        assert text.split("\nAction: ")[1] in admissible, text


class _LookAround:
    """Looks around forever: the episode ends only at its step limit."""

    policy_id = "look-around"

    def generate(self, requests, params):
        return ["Thought: Let me look.\nAction: look around" for _ in requests]


def test_episodes_stop_at_etos_step_limit_unless_the_recipe_says_none(backend):
    from steca_data.episodes.runner import EpisodeStart, PromptConfig, run_episodes
    from steca_data.policies.base import SamplingParams

    eto = _spec()
    none = _spec().model_copy(update={"step_limits": "none"})
    first = {t.game: t for t in reversed(list_tasks(eto, "train"))}
    lifespan, find = first["lifespan-longest-lived"], first["find-non-living-thing"]
    assert [eto.episode_steps(t, 100) for t in (lifespan, find)] == [10, 15]  # ETO's max_steps.json
    assert eto.episode_steps(lifespan, 6) == 6 and none.episode_steps(lifespan, 100) == 100
    starts = [EpisodeStart(lifespan, max_steps=spec.episode_steps(lifespan, 12)) for spec in (eto, none)]
    with SessionPool(backend, 1) as pool:
        played = run_episodes(pool, _LookAround(), starts, SamplingParams(), 12, PromptConfig(include_example=False))
    assert [len(t.steps) for t in played] == [10, 12] and not any(t.steps[-1].done for t in played)
