import pytest

from lstmgan.config import PalindromeConfig, SweepConfig, build, parse_sets
from lstmgan.errors import UserError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_seed_studys_settings():
    cfg = SweepConfig()
    assert cfg.lengths == [5, 10, 15, 20] and cfg.models == ["rnn", "lstm"]
    run = cfg.run
    assert (run.hidden, run.epochs, run.batch_size, run.lr, run.max_grad_norm, run.samples) == \
        (128, 100, 128, 1e-3, 10.0, 2048)


def test_precedence_is_defaults_then_yaml_then_flags_then_set(tmp_path):
    path = write(tmp_path, "epochs: 30\nhidden: 64\nlr: 0.01\nseeds: [1, 2]\n")
    cfg = build(SweepConfig, yaml_path=path, flags={"epochs": 40, "seeds": None},
                sets=["hidden=32", "run.lr=0.5"])
    assert cfg.run.epochs == 40  # flag beats YAML
    assert cfg.run.hidden == 32  # --set beats YAML
    assert cfg.run.lr == 0.5  # dotted keys reach the wrapped per-run config
    assert cfg.seeds == [1, 2]  # a flag that was not given does not override
    assert cfg.run.batch_size == 128  # untouched default


def test_the_sweep_yaml_in_jobs_loads(tmp_path):
    cfg = build(SweepConfig, yaml_path="jobs/palindrome-sweep.yaml", flags={}, sets=None)
    assert cfg == SweepConfig()  # the file spells out the defaults


@pytest.mark.parametrize("text, fragment", [
    ("epochz: 3\n", "unknown key 'epochz'"),
    ("epochs: many\n", "epochs must be an integer"),
    ("epochs: [1\n", "not valid YAML"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("lengths: [5, x]\n", "lengths must be a list of an integer"),
    ("model: gru\n", None),  # a SweepConfig has no single model: 'model' belongs to the run; checked below
])
def test_bad_yaml_is_a_user_error_naming_the_problem(tmp_path, text, fragment):
    path = write(tmp_path, text)
    if fragment is None:
        with pytest.raises(UserError, match="unknown model 'gru'"):
            build(PalindromeConfig, yaml_path=path, flags={}, sets=None)
        return
    with pytest.raises(UserError, match=fragment):
        build(SweepConfig, yaml_path=path, flags={}, sets=None)


def test_set_values_are_parsed_as_yaml_scalars():
    assert parse_sets(["epochs=30", "seeds=[0, 1]", "name=a=b"]) == {"epochs": 30, "seeds": [0, 1], "name": "a=b"}
    assert build(PalindromeConfig, yaml_path=None, flags={}, sets=["lr=1e-3"]).lr == 1e-3  # YAML 1.1 says '1e-3'
    with pytest.raises(UserError, match="key=value"):
        parse_sets(["epochs"])


@pytest.mark.parametrize("sets, fragment", [
    (["length=0"], "length must be at least 1"),
    (["epochs=-1"], "epochs must be at least 0"),
    (["encoding=binary"], "unknown encoding"),
    (["val_fraction=1.5"], "val_fraction"),
    (["epochs=true"], "must be an integer"),
])
def test_semantic_checks(sets, fragment):
    with pytest.raises(UserError, match=fragment):
        build(PalindromeConfig, yaml_path=None, flags={}, sets=sets)
