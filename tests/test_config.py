import dataclasses
import os
import pickle

import pytest
import yaml

from lstmgan.choices import SWEEP_AXES
from lstmgan.config import (
    AblationConfig,
    GanConfig,
    PalindromeConfig,
    StudyConfig,
    SweepConfig,
    TrackingConfig,
    absent_defaults,
    apply,
    from_dict,
    run_config_dict,
    to_dict,
)
from lstmgan.errors import UserError
from lstmgan.overrides import build, load_yaml, parse_grid, parse_sets, refuse_owned_sets


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
    ("lengths: [5, x]\n", "lengths must be a list of integers, got \\[5, .x.\\]"),
    ("models: [rnn, gru]\n", "unknown model 'gru'; choose one of: rnn, lstm"),
])
def test_bad_yaml_is_a_user_error_naming_the_problem(tmp_path, text, fragment):
    with pytest.raises(UserError, match=fragment):
        build(SweepConfig, yaml_path=write(tmp_path, text), flags={}, sets=None)


def test_set_values_are_parsed_as_yaml_scalars():
    assert parse_sets(["epochs=30", "seeds=[0, 1]", "name=a=b"]) == {"epochs": 30, "seeds": [0, 1], "name": "a=b"}
    assert build(PalindromeConfig, yaml_path=None, flags={}, sets=["lr=1e-3"]).lr == 1e-3  # YAML 1.1 says '1e-3'
    with pytest.raises(UserError, match="key=value"):
        parse_sets(["epochs"])


@pytest.mark.parametrize("sets, fragment", [
    (["length=0"], "length must be at least 1, got 0"),
    (["epochs=-1"], "epochs must be at least 1, got -1"),
    (["encoding=binary"], "unknown encoding"),
    (["val_fraction=1.5"], "val_fraction"),
    (["epochs=true"], "must be an integer"),
    (["epochs=3.0"], "--set: epochs must be an integer, got 3.0"),
    (["lr=true"], "--set: lr must be a number, got True"),
    (["lr=nan"], "lr must be a positive finite number, got nan"),
    (["val_fraction=1"], r"val_fraction must be in \(0, 1\), got 1.0"),
])
def test_semantic_checks(sets, fragment):
    with pytest.raises(UserError, match=fragment):
        build(PalindromeConfig, yaml_path=None, flags={}, sets=sets)


# --- every number has a rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls, key, value, message", [
    # a run of 0 epochs trains nothing and leaves no checkpoint for later commands: refused everywhere
    (PalindromeConfig, "epochs", 0, "epochs must be at least 1, got 0"),
    (SweepConfig, "epochs", 0, "epochs must be at least 1, got 0"),
    (GanConfig, "epochs", 0, "epochs must be at least 1, got 0"),
    (PalindromeConfig, "seed", -1, "seed must be at least 0, got -1"),
    (GanConfig, "seed", 2**63, "seed must be at most 9,223,372,036,854,775,807, got 9223372036854775808"),
    (SweepConfig, "seeds", [0, -3], "seed must be at least 0, got -3"),
    # sizes that would only fail later, in the allocator
    (PalindromeConfig, "hidden", 100_000, "hidden must be at most 8,192, got 100000"),
    (PalindromeConfig, "samples", 10**9, "samples must be at most 10,000,000"),
    (SweepConfig, "lengths", [5, 1_000_000], "length must be at most 10,000, got 1000000"),
    (PalindromeConfig, "batch_size", 10**7, "batch_size must be at most 1,000,000"),
    (GanConfig, "batch_size", 1, "batch_size must be at least 2, got 1"),
    (GanConfig, "eval_samples", 10**9, "eval_samples must be at most 1,000,000"),
    (GanConfig, "latent_dim", 10**6, "latent_dim must be at most 65,536"),
    (GanConfig, "grid", 1000, "grid must be at most 100"),
])
def test_every_number_is_bounded_with_a_one_line_rule(cls, key, value, message):
    with pytest.raises(UserError) as e:
        build(cls, yaml_path=None, flags={key: value}, sets=None)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_data_that_would_not_fit_in_memory_is_refused_by_its_product():
    with pytest.raises(UserError, match=r"samples × \(length \+ 1\) must be at most 500,000,000 digits"):
        build(PalindromeConfig, yaml_path=None, flags={"samples": 10_000_000, "length": 1000}, sets=None)


def test_a_sweep_lists_each_length_model_and_seed_once():
    with pytest.raises(UserError, match="seeds lists 1 twice; give each value once"):
        build(SweepConfig, yaml_path=None, flags={"seeds": [0, 1, 1]}, sets=None)


# --- configs that are not text -----------------------------------------------------------------------------


@pytest.mark.parametrize("content, message", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a UTF-8 text file; give a YAML file"),
    ("epochs: 3  # é\n".encode("latin-1"), "is not a UTF-8 text file; give a YAML file"),
    (b"epochs: 3\x00\n", "is not a UTF-8 text file; give a YAML file"),  # valid UTF-8, but binary
    (b"epochs: 3\x07\n", "is not valid YAML"),  # a control character YAML refuses
    (b"a: " + b"[" * 20_000, "nested too deeply"),
    (b"# " + b"x" * (5 * 2**20), "is larger than 4 MB; give a YAML file of settings"),
])
def test_a_config_that_is_not_a_yaml_text_file_is_one_line(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(UserError) as e:
        load_yaml(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_a_folder_or_missing_file_as_config_is_one_line(tmp_path):
    with pytest.raises(UserError, match="is a folder; give a YAML file"):
        load_yaml(tmp_path)
    with pytest.raises(UserError, match="cannot read config .*No such file"):
        load_yaml(tmp_path / "missing.yaml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_config_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\n")
    path.chmod(0)
    with pytest.raises(UserError, match="cannot read config .*Permission denied"):
        load_yaml(path)


# --- --set keys a command owns --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["model", "run.model", "seed", "length"])
def test_a_set_key_owned_by_a_flag_is_refused_naming_the_flag(key):
    flag = SWEEP_AXES[key.rpartition(".")[2]]
    with pytest.raises(UserError) as e:
        refuse_owned_sets({key: 5}, SWEEP_AXES, "sweep")
    assert str(e.value) == f"--set {key}=5 is refused under sweep: {key.rpartition('.')[2]} is set with {flag}; " \
                           f"use {flag} instead"


@pytest.mark.parametrize("text, message", [
    ("model: rnn\n", r"model: rnn is ignored by a sweep, which sets models with --models \(models: \[\.\.\.\] in"),
    ("seed: 3\n", "seed: 3 is ignored by a sweep, which sets seeds with --seeds"),
])
def test_a_sweep_file_with_a_single_model_or_seed_is_refused_not_ignored(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        build(SweepConfig, yaml_path=write(tmp_path, text), flags={}, sets=None)


def test_set_keys_a_command_does_not_own_pass():
    refuse_owned_sets({"epochs": 3, "models": ["rnn"], "seeds": [1]}, SWEEP_AXES)  # the sweep's own lists are fine


# --- grids --------------------------------------------------------------------------------------------------


def test_grid_items_become_lists_of_checked_values():
    assert parse_grid(["hidden=64,128", "lr=1e-3,3e-3"]) == {"hidden": [64, 128], "lr": [0.001, 0.003]}
    assert parse_grid(["run.encoding=onehot,scalar"]) == {"encoding": ["onehot", "scalar"]}
    assert parse_grid(None) == {}


@pytest.mark.parametrize("items, message", [
    (["hidden"], "--grid 'hidden' needs the form key=value,value, e.g. --grid hidden=64,128"),
    (["hidden="], "--grid 'hidden=' has an empty value"),
    (["hidden=64,,128"], "--grid 'hidden=64,,128' has an empty value"),
    (["hiden=64"], "--grid: unknown grid key 'hiden'; grid keys are per-run settings: batch_size,"),
    (["model=rnn,lstm"], "--grid: model cannot be a grid key: a sweep sets model with --models"),
    (["run.seed=1,2"], "--grid: run.seed cannot be a grid key: a sweep sets seed with --seeds"),
    (["hidden=64,0x40"], "--grid hidden lists 64 twice; give each value once"),  # YAML reads 0x40 as 64
    (["lr=1e-3,0.001"], "--grid lr lists 0.001 twice"),
    (["hidden=64", "hidden=128"], "--grid hidden is given twice; list its values once: --grid hidden=a,b"),
    (["hidden=64,big"], "--grid hidden: hidden must be an integer, got 'big'"),
    (["epochs=0,5"], "--grid epochs=0: epochs must be at least 1, got 0"),
])
def test_bad_grid_items_are_one_line_errors(items, message):
    with pytest.raises(UserError) as e:
        parse_grid(items)
    assert str(e.value).startswith(message)


def test_a_grid_from_yaml_is_checked_like_one_from_the_command_line(tmp_path):
    path = write(tmp_path, "lengths: [5]\nmodels: [lstm]\ngrid: {hidden: [16, 32], lr: 1e-3}\n")
    cfg = build(SweepConfig, yaml_path=path, flags={}, sets=None)
    assert cfg.grid_points() == [{"hidden": 16, "lr": 0.001}, {"hidden": 32, "lr": 0.001}]
    for text, message in [("grid: {hidden: []}\n", "grid: grid key hidden has no values"),
                          ("grid: {seed: [1, 2]}\n", "grid: seed cannot be a grid key"),
                          ("grid: [hidden]\n", r"grid must be a mapping of setting: \[values\], got \['hidden'\]")]:
        with pytest.raises(UserError, match=message):
            build(SweepConfig, yaml_path=write(tmp_path, text), flags={}, sets=None)


def test_a_sweep_is_the_product_of_lengths_models_grid_and_seeds():
    cfg = build(SweepConfig, yaml_path=None, sets=None, flags={
        "lengths": [5, 10], "models": ["rnn", "lstm"], "seeds": [0, 1, 2],
        "grid": parse_grid(["hidden=64,128", "lr=1e-3,3e-3"])})
    runs = cfg.runs()
    assert len(runs) == 2 * 2 * 3 * 4
    assert len({(r.length, r.model, r.seed, r.hidden, r.lr) for r in runs}) == len(runs)
    assert {r.epochs for r in runs} == {cfg.run.epochs}  # everything else is the shared run config


# --- what a run folder's config.yaml records ---------------------------------------------------------------


def test_a_runs_stored_config_records_its_kind_and_format():
    stored = run_config_dict(GanConfig())
    assert list(stored)[:2] == ["kind", "format"] and stored["kind"] == "gan" and stored["format"] == 1
    assert run_config_dict(PalindromeConfig())["kind"] == "palindrome"
    assert from_dict(GanConfig, stored, "config.yaml") == GanConfig()  # read back as the settings
    assert from_dict(GanConfig, to_dict(GanConfig()), "old/config.yaml") == GanConfig()  # folders from before


def test_a_stored_config_of_another_kind_or_a_newer_format_is_refused():
    with pytest.raises(UserError, match="config.yaml holds a gan run, not a palindrome run"):
        from_dict(PalindromeConfig, run_config_dict(GanConfig()), "config.yaml")
    with pytest.raises(UserError, match="has format 2; this lstmgan reads format 1 and older, upgrade lstmgan"):
        from_dict(PalindromeConfig, {**run_config_dict(PalindromeConfig()), "format": 2}, "config.yaml")


def test_the_study_has_an_interpolation_confidence_rule():
    assert StudyConfig().interpolation_min_confidence == 0.9
    with pytest.raises(UserError, match=r"interpolation_min_confidence must be in \(0, 1\], got 1.5"):
        build(StudyConfig, yaml_path=None, flags={"interpolation_min_confidence": 1.5}, sets=None)


# --- what a setting accepts, and what a config object is ---------------------------------------------------


def test_yaml_and_set_values_are_read_as_their_setting_means_them(tmp_path):
    # YAML 1.1 reads these as false, 2024, 1 and the string "1e-1"
    path = write(tmp_path, "cuda_graphs: off\nclassifier: 2024\nlr: 1\nbeta1: 1e-1\n")
    cfg = build(GanConfig, yaml_path=path, flags={}, sets=None)
    assert (cfg.cuda_graphs, cfg.classifier, cfg.lr, cfg.beta1) == ("off", "2024", 1.0, 0.1)
    assert isinstance(cfg.lr, float)  # stored as 1.0, so config.yaml does not change with how it was typed
    assert build(SweepConfig, yaml_path=None, flags={}, sets=["seeds=3"]).seeds == [3]  # one value is a list of one
    assert apply(TrackingConfig(), {"tags": ["a", "b"]}, "test").tags == ("a", "b")


def test_a_config_is_frozen_and_a_changed_copy_is_checked_again():
    cfg = PalindromeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert dataclasses.replace(cfg, epochs=3).epochs == 3
    with pytest.raises(ValueError, match="greater than or equal to 1"):  # code's mistake: pydantic's report
        dataclasses.replace(cfg, epochs=0)
    with pytest.raises(UserError, match="samples × \\(length \\+ 1\\)"):  # rules across settings hold as well
        dataclasses.replace(cfg, samples=10_000_000, length=1000)


def test_every_config_survives_its_stored_form_and_pickling():
    """Run folders store `to_dict`; submitit and the worker pool pickle configs."""
    for cfg in (PalindromeConfig(), GanConfig(), SweepConfig(grid={"hidden": [8]}), AblationConfig(), StudyConfig()):
        assert from_dict(type(cfg), to_dict(cfg), "config.yaml") == cfg
        assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_a_runs_config_yaml_keeps_its_keys_and_their_order():
    """Old run folders resume only if the stored config is written the same way: this is config.yaml of a
    default palindrome run, byte for byte (a setting added later, like forget_bias, takes its place in the
    order; folders written before it lack the key and match through its default)."""
    assert yaml.safe_dump(run_config_dict(PalindromeConfig()), sort_keys=False) == (
        "kind: palindrome\nformat: 1\nmodel: lstm\nlength: 10\nseed: 0\nhidden: 128\nencoding: scalar\n"
        "init: pytorch\ninit_std: 0.01\nforget_bias: 0.0\nsamples: 2048\nval_fraction: 0.2\nepochs: 100\n"
        "batch_size: 128\nlr: 0.001\nmax_grad_norm: 10.0\ndevice: auto\ndeterministic: false\n")


def test_a_stored_config_without_a_key_reads_as_what_that_folder_ran_with():
    """encoding became scalar by default (issue 17); a stored run without the key ran with one-hot input, and
    a key added later (forget_bias) reads as its default, the behaviour from before it existed."""
    stored = run_config_dict(PalindromeConfig(model="rnn"))
    del stored["encoding"], stored["forget_bias"]
    old = from_dict(PalindromeConfig, stored, "config.yaml")
    assert (old.encoding, old.forget_bias) == ("onehot", 0.0) and PalindromeConfig().encoding == "scalar"
    assert absent_defaults(PalindromeConfig)["encoding"] == "onehot"
    assert absent_defaults(GanConfig) == run_config_dict(GanConfig())
