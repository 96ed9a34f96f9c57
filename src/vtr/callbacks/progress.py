"""The rich progress bar, titled for step-budgeted runs."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepBudgetProgressBar(RichProgressBar):
    """Lightning titles the bar ``Epoch 7/-2`` when a run is budgeted in steps (``max_epochs``
    becomes -1); name the step budget instead, and keep ``Epoch 2/4`` for epoch budgets."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        description = f"Epoch {current_epoch}"
        if trainer.max_steps > 0:
            description += f" (of {trainer.max_steps} steps)"
        return f"{description:{len(self.validation_description)}}"
