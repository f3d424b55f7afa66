"""The method registry through the CLI: `steca-train methods` lists every method; the experiment refuses an unknown
method, bad per-method settings and IPR under rollouts.scope: first_deviation in one line, exit 2, before work."""

from __future__ import annotations

from pathlib import Path

TINY = Path(__file__).resolve().parents[2] / "recipes" / "experiment-tiny.yaml"


def test_registry_lists_every_method_once_with_a_description(cli):
    from steca_train.methods import method, method_names

    names = method_names()
    assert set(names) == {"sft", "rft", "steca-sft", "steca-dpo", "steca", "ipr", "eto", "step"}
    for name in names:
        m = method(name)
        assert m.name == name and m.description and m.trainer in ("none", "weighted", "dpo")
        assert m.starts_from is None or m.starts_from in names
    listed = cli("methods", tool="train")
    assert listed.code == 0 and all(name in listed.out for name in names)


def test_experiment_refuses_bad_methods_in_one_line(cli):
    ipr = cli("experiment", TINY, "--set", "rollouts.scope=first_deviation", tool="train")
    assert ipr.code == 2 and len(ipr.err_lines) == 1 and "rollouts.scope: ipr needs 'all'" in ipr.err
    unknown = cli("experiment", TINY, "--set", "experiment.methods=[sft, ppo]", tool="train")
    assert unknown.code == 2 and "experiment.methods[1]: unknown method 'ppo'" in unknown.err
    bad = cli("experiment", TINY, "--set", "reinforce.methods.ipr.rounds=0", tool="train")
    assert bad.code == 2 and "reinforce.methods.ipr.rounds" in bad.err
    narrow = cli("experiment", TINY, "--set", "reinforce.datasets=[dc, ds]", "--set", "experiment.methods=[rft, steca]",
                 "--set", "datasets=[expert, dc, ds]", tool="train")  # fmt: skip
    assert narrow.code == 2 and "datasets: rft trains on de, which the recipe does not build" in narrow.err
    assert not Path("builds").exists()  # refused before any work (the cli fixture runs in an empty folder)


def test_under_torchrun_the_experiment_and_iterated_methods_refuse_in_one_line(cli, monkeypatch):
    """A launch of 2 processes (torchrun's WORLD_SIZE): the experiment, IPR/ETO with exploration rounds and
    settings that cannot be dealt evenly to the ranks are refused before any work; one DPO round trains."""
    from steca_data.recipe.model import load_recipe
    from steca_train.methods import check_methods

    monkeypatch.setenv("WORLD_SIZE", "2")
    exp = cli("experiment", TINY, tool="train")
    assert exp.code == 2 and len(exp.err_lines) == 1 and "not under torchrun" in exp.err
    assert not Path("builds").exists()
    r = load_recipe(TINY, ["reinforce.dpo.batch_size=4", "reinforce.grad_accum=2"])
    assert "reinforce.methods.ipr.rounds: 2 rounds" in check_methods(r, ["ipr"], where="--method")
    assert check_methods(r, ["steca-dpo", "steca", "rft"], where="--method") is None
    one_round = load_recipe(TINY, ["reinforce.methods.eto.rounds=1", "reinforce.dpo.batch_size=4"])
    assert check_methods(one_round, ["eto"], where="--method") is None
    odd = load_recipe(TINY, ["reinforce.dpo.batch_size=3", "reinforce.grad_accum=3"])
    assert "reinforce.dpo.batch_size (3) must be a multiple" in check_methods(odd, ["steca-dpo"], where="--method")
    assert "reinforce.grad_accum (3) must be a multiple" in check_methods(odd, ["steca"], where="--method")
