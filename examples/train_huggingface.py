"""The Hugging Face Trainer with unitrack: a tiny GPT-2 built from a config (no download).

    python examples/train_huggingface.py --steps 20

``UnitrackCallback`` logs the Trainer's metrics (``train/loss``, ``eval/loss``), its
``TrainingArguments`` and the model config as parameters, and every checkpoint the Trainer
saves into the run's registry (the best by ``eval_loss``).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from unitrack.integrations.huggingface import UnitrackCallback


class CountingSequences(torch.utils.data.Dataset):
    """Sequences that count up from a random start (mod the vocabulary): easy to learn, no download."""

    def __init__(self, count: int, length: int = 16, vocab: int = 64, seed: int = 0) -> None:
        starts = torch.randint(0, vocab, (count, 1), generator=torch.Generator().manual_seed(seed))
        self.rows = (starts + torch.arange(length)) % vocab

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[index], "labels": self.rows[index]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2))
    callback = UnitrackCallback("tiny-gpt2", args.config)
    every = max(1, args.steps // 4)
    with tempfile.TemporaryDirectory() as output_dir:  # the Trainer's own files; the registry keeps ours
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=output_dir,
                max_steps=args.steps,
                learning_rate=args.lr,
                per_device_train_batch_size=16,
                logging_steps=every,
                eval_strategy="steps",
                eval_steps=every,
                save_steps=every,
                metric_for_best_model="eval_loss",
                report_to="none",
                use_cpu=True,
                disable_tqdm=True,
            ),
            train_dataset=CountingSequences(256),
            eval_dataset=CountingSequences(64, seed=1),
            callbacks=[callback],
        )
        trainer.train()
    tracker = callback.tracker
    best = tracker.get_best_checkpoint()
    callback.finish()
    print(f"best checkpoint: step {best.step if best else None}; run {tracker.run_id} in {tracker.run_dir}")


if __name__ == "__main__":
    main()
