from pathlib import Path

import pytest

from vtr.cli import main
from vtr.config import ConfigError, load_config, resolve_run_dir

EXPERIMENTS = sorted(Path(__file__).resolve().parents[1].glob("experiments/**/*.yaml"))


def test_defaults_are_the_paper_recipe():
    cfg = load_config()
    assert (cfg.model.video.width, cfg.model.video.depth, cfg.model.video.patch_size) == (768, 12, 16)
    assert cfg.model.text.name_or_path == "distilbert-base-uncased"
    assert cfg.model.embed_dim == 256 and cfg.model.temperature == 0.05


def test_overrides_are_typed():
    cfg = load_config(None, ["trainer.max_steps=7", "model.mvm.mask_ratio=0.25", "trainer.devices=8"])
    assert cfg.trainer.max_steps == 7 and cfg.model.mvm.mask_ratio == 0.25 and cfg.trainer.devices == 8


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.max_step=3", "trainer.max_step"),
        ("model.mvm.mask_ratio=lots", "model.mvm.mask_ratio"),
        ("model.mvm.mask_type=checkerboard", "model.mvm.mask_type"),
        ("model.mvm.mask_ratio=1.5", "model.mvm.mask_ratio"),
        ("data.input_res=96", "data.input_res"),
        ("data.worker_nice=20", "data.worker_nice"),
        ("init_from=/nowhere/model.ckpt", "init_from"),
    ],
)
def test_bad_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_missing_config_file_and_malformed_override():
    with pytest.raises(ConfigError, match="not found: nowhere.yaml"):
        load_config("nowhere.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["trainer.max_steps"])


def test_cli_reports_config_errors_before_any_work(capsys):
    assert main(["pretrain", "trainer.max_step=3"]) == 2
    assert "trainer.max_step" in capsys.readouterr().err


def test_cli_reports_a_missing_dataset_folder(tmp_path, capsys):
    assert main(["pretrain", "-c", "experiments/pretrain/demo.yaml", f"data.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "webvid") in err


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_experiment_config_validates(path):
    load_config(path)


def test_run_dir_is_keyed_by_slurm_job_id_without_timestamp(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    cfg = load_config(None, [f"output_dir={tmp_path}", "experiment=x"])
    assert resolve_run_dir(cfg) == tmp_path / "x" / "4242"
    monkeypatch.delenv("SLURM_JOB_ID")
    (tmp_path / "x" / "version_0").mkdir(parents=True)
    assert resolve_run_dir(cfg) == tmp_path / "x" / "version_1"


def test_a_truncated_init_from_checkpoint_is_a_config_error_naming_the_file(tmp_path):
    import torch

    path = tmp_path / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {"config": {"model": {}}}}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ConfigError, match=f"init_from.*cannot read checkpoint {path}"):
        load_config(None, [f"init_from={path}"])
