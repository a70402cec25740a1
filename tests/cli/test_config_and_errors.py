import json

import pytest

from .conftest import run_cli


def _config(capsys, *argv):
    code, out, err = run_cli(capsys, "train", "--print-config", "--json", *argv)
    assert code == 0, err
    return json.loads(out)["config"]


def test_defaults_quickstart_file_flags_precedence(tmp_path, capsys):
    cfg = _config(capsys)
    assert cfg["dataset"] == "synthetic" and cfg["mode"] == "metasd"
    assert (cfg["dim"], cfg["epochs"], cfg["batch_size"]) == (64, 6, 2000)  # quick start
    assert _config(capsys, "--dataset", "umls")["epochs"] == 100  # trainer default elsewhere
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("dataset: umls\ntrain:\n  epochs: 7\n  batch-size: 128\n"
                         "sparsity: 0.8\nstrategy: aligned\n")
    cfg = _config(capsys, "--config", yaml_file, "--epochs", "9")
    assert (cfg["dataset"], cfg["epochs"], cfg["batch_size"]) == ("umls", 9, 128)
    assert (cfg["sparsity"], cfg["strategy"]) == (0.8, "aligned")
    toml_file = tmp_path / "run.toml"
    toml_file.write_text('dataset = "kinship"\nmeta = false\n[trainer]\nlr = 0.05\n'
                         'patience = "none"\n')
    cfg = _config(capsys, "--config", toml_file, "--meta")
    assert (cfg["dataset"], cfg["meta"], cfg["lr"], cfg["patience"]) == (
        "kinship", True, 0.05, None)
    assert _config(capsys, "--no-report", "--patience", "3")["patience"] == 3


def _bad(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("epochs: [1\n")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("epoch = 3\n")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("epochs: many\n")
    not_a_run = tmp_path / "mine"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("keep me")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 40)
    return {
        "bad value flag": (["train", "--epochs", "abc"], "--epochs"),
        "unknown flag": (["train", "--bogus"], "--bogus"),
        "no command": ([], "required"),
        "unknown command": (["fly"], "fly"),
        "invalid value": (["train", "--sparsity", "1.5", "--print-config"], "sparsity"),
        "invalid choice": (["train", "--mode", "magic", "--print-config"], "mode"),
        "missing config": (["train", "--config", tmp_path / "none.yaml"], "does not exist"),
        "yaml syntax": (["train", "--config", bad_yaml], "bad.yaml:"),
        "unknown key": (["train", "--config", unknown], "did you mean 'epochs'"),
        "wrong type in file": (["train", "--config", wrong], "wrong.yaml: epochs"),
        "config suffix": (["train", "--config", tmp_path / "run.ini"], "does not exist"),
        "both flags": (["train", "--overwrite", "--resume"], "not allowed"),
        "unknown dataset": (["train", "--dataset", "nope", "--out", tmp_path / "x"],
                            "unknown dataset"),
        "foreign folder": (["train", "--out", not_a_run, "--overwrite"], "not a metasd-pyg"),
        "resume nothing": (["train", "--resume", "--out", tmp_path / "none"], "run folder"),
        "evaluate missing": (["evaluate", tmp_path / "none"], "does not exist"),
        "report missing": (["report", tmp_path / "none", "--out", tmp_path / "r.html"],
                           "does not exist"),
        "export not a run": (["export", not_a_run, "--out", tmp_path / "s.safetensors"],
                             "not a metasd-pyg run folder"),
        "predict missing": (["predict", tmp_path / "none.safetensors", "--head", "a",
                             "--relation", "b"], "does not exist"),
        "predict junk": (["predict", junk, "--head", "a", "--relation", "b"], "safetensors"),
        "predict no side": (["predict", junk, "--relation", "b"], "required"),
        "datasets info": (["datasets", "info", "nope"], "unknown dataset"),
        "verify missing": (["datasets", "verify", tmp_path / "none"], "does not exist"),
        "k": (["predict", junk, "--head", "a", "--relation", "b", "--k", "x"], "--k"),
        "memory limit": (["train", "--dataset", "synthetic:entities=300,triples=2000", "--out",
                          tmp_path / "x", "--memory-limit", "0.05", "--no-progress"],
                         "exceeds the memory limit"),
    }


CASES = ["bad value flag", "unknown flag", "no command", "unknown command", "invalid value",
         "invalid choice", "missing config", "yaml syntax", "unknown key", "wrong type in file",
         "config suffix", "both flags", "unknown dataset", "foreign folder", "resume nothing",
         "evaluate missing", "report missing", "export not a run", "predict missing",
         "predict junk", "predict no side", "datasets info", "verify missing", "k",
         "memory limit"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_and_nonzero_exit(case, tmp_path, capsys):
    argv, needle = _bad(tmp_path)[case]
    if case == "config suffix":
        (tmp_path / "run.ini").write_text("x=1")
        needle = "unknown format"
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert needle in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "x").exists()  # a failed run leaves no folder behind


def test_help_has_examples(capsys):
    for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["report", "--help"],
                 ["export", "--help"], ["predict", "--help"], ["datasets", "--help"]):
        code, out, _ = run_cli(capsys, *argv)
        assert code == 0 and "examples:" in out, argv
    code, out, _ = run_cli(capsys, "train", "--help")
    for flag in ("--strategy", "--sparsity", "--meta-path", "--dataset", "--data-root",
                 "--seed", "--device", "--overwrite", "--resume", "--config"):
        assert flag in out
