"""Configuration: seed-003 YAML as written, list form, extends, environment, errors, hash."""

from __future__ import annotations

from pathlib import Path

import pytest

import unitrack as ut
from unitrack.config import Config, config_hash, load_config
from unitrack.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

SEED_BASIC = """\
description: "Transformer fine-tuning experiment"
tags: ["nlp", "transformer", "classification"]

tracking:
  use_wandb: true
  use_tensorboard: true
  use_mlflow: false
  wandb_project: "deep-learning-project"

checkpoint_dir: "checkpoints"
max_checkpoints: 10
"""

SEED_ADVANCED = """\
tracking:
  use_wandb: true
  wandb_project: "production-models"
  wandb_entity: "my-team"
  
  use_tensorboard: true
  tensorboard_log_dir: "logs/tensorboard"
  
  use_mlflow: true
  mlflow_tracking_uri: "sqlite:///mlflow.db"

checkpointing:
  checkpoint_dir: "checkpoints"
  max_checkpoints: 20
  save_frequency: 100
  compression: "gzip"

monitoring:
  log_gpu_usage: true
  log_memory_usage: true
  create_plots: true
"""  # noqa: W293 (the seed as written, with its whitespace-only lines)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_seed_basic_configuration_loads_as_written(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "basic.yaml", SEED_BASIC))
    assert cfg.description == "Transformer fine-tuning experiment"
    assert list(cfg.tags) == ["nlp", "transformer", "classification"]
    assert cfg.tracking.backends == ["local", "wandb", "tensorboard"]
    assert (cfg.tracking.use_wandb, cfg.tracking.use_tensorboard, cfg.tracking.use_mlflow) == (True, True, False)
    assert cfg.tracking.wandb_project == "deep-learning-project"
    assert cfg.checkpointing.checkpoint_dir == "checkpoints"
    assert cfg.checkpointing.max_checkpoints == 10


def test_seed_advanced_configuration_loads_as_written(tmp_path: Path) -> None:
    cfg = load_config(str(write(tmp_path / "advanced.yaml", SEED_ADVANCED)))
    assert cfg.tracking.backends == ["local", "mlflow", "wandb", "tensorboard"]
    assert cfg.tracking.wandb_entity == "my-team"
    assert cfg.tracking.mlflow_tracking_uri == "sqlite:///mlflow.db"
    assert cfg.tracking.tensorboard_log_dir == "logs/tensorboard"
    assert cfg.checkpointing.max_checkpoints == 20
    assert cfg.checkpointing.save_frequency == 100
    assert cfg.checkpointing.compression == "gzip"
    assert cfg.monitoring.create_plots is True


def test_list_form_and_switches_mean_the_same(tmp_path: Path) -> None:
    listed = load_config({"tracking": {"backends": ["tensorboard", "local", "mlflow"]}})
    switched = load_config({"tracking": {"use_mlflow": True, "use_tensorboard": True}})
    assert listed.tracking.backends == switched.tracking.backends == ["local", "mlflow", "tensorboard"]
    assert config_hash(listed) == config_hash(switched)


def test_local_is_always_on() -> None:
    assert load_config(None).tracking.backends == ["local"]
    assert load_config({"tracking": {"backends": ["mlflow"]}}).tracking.backends == ["local", "mlflow"]


def test_contradictory_switches_are_an_error() -> None:
    with pytest.raises(ConfigError, match="use_mlflow is false but backends lists 'mlflow'"):
        load_config({"tracking": {"backends": ["mlflow"], "use_mlflow": False}})


def test_every_shipped_config_loads() -> None:
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        assert isinstance(load_config(path), Config), path


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yaml", "description: x\ntracking:\n  use_mlflw: true\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"{path}:3" in message
    assert "unknown key 'tracking.use_mlflw'" in message
    assert "did you mean 'tracking.use_mlflow'" in message


def test_unknown_top_level_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml:2: unknown key 'epochz'"):
        load_config(write(tmp_path / "x.yaml", "description: d\nepochz: 3\n"))


def test_wrong_type_names_key_line_and_value(tmp_path: Path) -> None:
    path = write(tmp_path / "types.yaml", "monitoring:\n  interval: fast\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}:2" in str(error.value)
    assert "monitoring.interval" in str(error.value)
    assert "'fast'" in str(error.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", "tracking:\n  use_mlflow: true\n  backends: [local\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+:\d+: cannot parse YAML"):
        load_config(path)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.yaml", "tracking:\n  use_mlflow: true\n  use_mlflow: false\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml:3: duplicate key 'tracking.use_mlflow'"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_extends_inherits_and_overrides(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "description: base\ntracking:\n  use_mlflow: true\n  wandb_project: p\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\ntracking:\n  wandb_project: q\n")
    cfg = load_config(child)
    assert cfg.description == "base"
    assert cfg.tracking.use_mlflow is True
    assert cfg.tracking.wandb_project == "q"


def test_extends_errors_name_the_base_file(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "monitoring:\n  intervall: 3\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\n")
    with pytest.raises(ConfigError, match=r"base\.yaml:2: unknown key 'monitoring.intervall'"):
        load_config(child)


def test_extends_cycle_and_missing_base(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", "extends: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing\.yaml .*extended by"):
        load_config(tmp_path / "c.yaml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "c.yaml", "tracking:\n  use_mlflow: false\nmonitoring:\n  interval: 5\n")
    monkeypatch.setenv("UNITRACK__TRACKING__USE_MLFLOW", "true")
    monkeypatch.setenv("UNITRACK__MONITORING__INTERVAL", "0.5")
    cfg = load_config(path)
    assert cfg.tracking.use_mlflow is True and cfg.tracking.backends == ["local", "mlflow"]
    assert cfg.monitoring.interval == 0.5


def test_environment_override_with_unknown_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITRACK__TRACKING__USE_MLFLW", "true")
    with pytest.raises(ConfigError, match="environment variable UNITRACK__TRACKING__USE_MLFLW: unknown key"):
        load_config(None)


def test_explicit_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNITRACK__MONITORING__INTERVAL", "3")
    cfg = load_config({"monitoring": {"interval": 2}}, overrides={"monitoring.interval": 1, "tracking.use_wandb": True})
    assert cfg.monitoring.interval == 1
    assert cfg.tracking.use_wandb is True


def test_store_dir_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNITRACK_DIR")
    assert load_config(None).store_dir == ".unitrack"
    monkeypatch.setenv("UNITRACK_DIR", "/data/runs")
    assert load_config(None).store_dir == "/data/runs"
    assert load_config({"store_dir": "elsewhere"}).store_dir == "elsewhere"


def test_hash_ignores_key_order_and_store_but_not_values() -> None:
    a = load_config({"tags": {"x": "1", "y": "2"}, "monitoring": {"interval": 3, "log_gpu_usage": False}})
    b = load_config({"monitoring": {"log_gpu_usage": False, "interval": 3}, "tags": {"y": "2", "x": "1"}})
    c = load_config({"tags": {"x": "1", "y": "2"}, "monitoring": {"interval": 4, "log_gpu_usage": False}})
    moved = load_config({**a.model_dump(), "store_dir": "/elsewhere"})
    assert config_hash(a) == config_hash(b) == config_hash(moved)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 16


def test_top_level_and_section_checkpoint_keys_conflict() -> None:
    with pytest.raises(ConfigError, match=r"max_checkpoints.*both"):
        load_config({"max_checkpoints": 3, "checkpointing": {"max_checkpoints": 4}})


def test_config_object_and_public_names() -> None:
    cfg = ut.load_config({"description": "d"})
    assert ut.load_config(cfg) is cfg
    assert isinstance(cfg, ut.Config)
    with pytest.raises(ConfigError):
        ut.load_config(42)  # type: ignore[arg-type]


def test_redacted_config_hides_credentials_in_uris() -> None:
    cfg = load_config({"tracking": {"mlflow_tracking_uri": "postgresql://bob:hunter2@db:5432/mlflow"}})
    assert "hunter2" not in str(cfg.redacted())
    assert "bob:" in cfg.redacted()["tracking"]["mlflow_tracking_uri"]


def test_analysis_settings_without_a_file_are_load_configs_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare / explain read the analysis section without pydantic unless there is something to validate."""
    from unitrack.analysis_settings import AnalysisSettings, analysis_settings

    assert analysis_settings() == AnalysisSettings(**load_config(None).analysis.model_dump()) == AnalysisSettings()
    assert analysis_settings(write(tmp_path / "c.yaml", "analysis:\n  peer_runs: 3\n")).peer_runs == 3
    monkeypatch.setenv("UNITRACK__ANALYSIS__PROVIDER", "rules")
    assert analysis_settings().provider == "rules"
    monkeypatch.setenv("UNITRACK__ANALYSIS__PEER_RUNS", "-1")
    with pytest.raises(ConfigError, match="peer_runs"):
        analysis_settings()
