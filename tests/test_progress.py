"""The progress bar's title for step- and epoch-budgeted runs."""

from types import SimpleNamespace

from vtr.callbacks.progress import StepBudgetProgressBar


def bar_for(max_epochs: int, max_steps: int) -> StepBudgetProgressBar:
    bar = StepBudgetProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    return bar


def test_step_budget_is_named_instead_of_a_negative_epoch_count() -> None:
    assert bar_for(-1, 450)._get_train_description(7).strip() == "Epoch 7 (of 450 steps)"


def test_epoch_budget_keeps_lightnings_title() -> None:
    assert bar_for(5, -1)._get_train_description(2).strip() == "Epoch 2/4"


def test_unbounded_run_shows_the_epoch_only() -> None:
    assert bar_for(-1, -1)._get_train_description(3).strip() == "Epoch 3"
