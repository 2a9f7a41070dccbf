"""A real (tiny) Hugging Face Trainer run, recorded by UnitrackCallback (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import QUIET, metric_points
from tests.integrations.tensorboard_reader import tensorboard_scalars, with_tensorboard
from unitrack.readers import read_run
from unitrack.store.runs import RunStore

transformers = pytest.importorskip("transformers")

from unitrack.integrations.huggingface import UnitrackCallback, trainer_metrics  # noqa: E402


class TokenDataset(torch.utils.data.Dataset):
    """Synthetic token ids: the model learns to copy a short repeating pattern."""

    def __init__(self, count: int, length: int = 8, vocab: int = 32) -> None:
        generator = torch.Generator().manual_seed(0)
        self.rows = torch.randint(0, vocab, (count, length), generator=generator)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[index], "labels": self.rows[index]}


def tiny_trainer(tmp_path: Path, callback: UnitrackCallback, **arguments: Any) -> Any:
    config = transformers.GPT2Config(vocab_size=32, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=4,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=5e-3,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        **arguments,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=TokenDataset(16), eval_dataset=TokenDataset(8), callbacks=[callback]
    )


def test_trainer_metrics_and_arguments_land_in_one_run(tmp_path: Path, store_dir: Path) -> None:
    callback = UnitrackCallback("hf-test", with_tensorboard(QUIET, tmp_path / "tb"), checkpoints=False)
    tiny_trainer(tmp_path, callback, save_strategy="no").train()
    run_dir = callback.tracker.run_dir
    callback.finish()

    assert RunStore(store_dir).run_ids() == [callback.tracker.run_id]
    params = json.loads((run_dir / "params.json").read_text())
    assert params["args/learning_rate"] == 5e-3 and params["args/max_steps"] == 4
    assert params["model_config/n_embd"] == 16
    assert [step for step, _ in metric_points(run_dir, "train/loss")] == [1, 2, 3, 4]
    assert [step for step, _ in metric_points(run_dir, "eval/loss")] == [2, 4]
    record = read_run(callback.tracker.run_id, RunStore(store_dir)).record
    assert record["status"] == "completed"
    assert (run_dir / "artifacts" / "model" / "architecture.txt").read_text().startswith("GPT2LMHeadModel")
    mirrored = tensorboard_scalars(tmp_path / "tb")
    assert [step for step, _ in mirrored["eval/loss"]] == [2, 4]
    assert [step for step, _ in mirrored["train/loss"]] == [1, 2, 3, 4]


def test_log_names_follow_the_split() -> None:
    logs = {"loss": 1.5, "eval_loss": 1.2, "test_acc": 0.5, "epoch": 1.0, "note": "x", "flag": True}
    assert trainer_metrics(logs) == {"train/loss": 1.5, "eval/loss": 1.2, "test/acc": 0.5, "train/epoch": 1.0}


def test_saved_checkpoints_enter_the_registry_with_the_best_marked(tmp_path: Path, store_dir: Path) -> None:
    callback = UnitrackCallback("hf-test", QUIET)
    trainer = tiny_trainer(tmp_path, callback, save_strategy="steps", save_steps=2, metric_for_best_model="eval_loss")
    trainer.train()
    tracker = callback.tracker

    kept = tracker.list_checkpoints()
    assert [c.step for c in kept] == [2, 4]
    assert all("eval/loss" in c.metrics for c in kept)
    best = tracker.get_best_checkpoint()
    assert best is not None and best.step == trainer.state.best_global_step
    restored = transformers.GPT2LMHeadModel(trainer.model.config)
    assert tracker.load_checkpoint("last", restored)[1] == 4
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(restored.state_dict()[name], tensor), name
    callback.finish()
