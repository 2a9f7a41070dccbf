"""The dashboard's activation statistics (beside the weight heatmaps) and sweep importance pages,
in a real headless Chromium, from real runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import quiet_config
from tests.ui_harness import chrome, console_errors, foreign_resources, ui_server, wait_for


def make_runs(store: Path) -> dict[str, str]:
    """A run whose second ReLU is dead (activation statistics), and a 6-run sweep where only lr matters."""
    import torch
    from torch import nn

    from unitrack import ExperimentTracker

    ids = {}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        model[2].bias.fill_(-100.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with ExperimentTracker("acts", quiet_config(store_dir=str(store))) as tracker:
        tracker.watch(model, optimizer=optimizer, snapshot_every=4, activations_every=2)
        for step in range(8):
            loss = model(torch.randn(32, 8)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tracker.log_metrics({"train/loss": loss.item()}, step=step)
    ids["acts"] = tracker.run_id
    for index, (lr, width) in enumerate([(0.01, 8), (0.03, 16), (0.1, 8), (0.3, 16), (0.01, 16), (0.3, 8)]):
        with ExperimentTracker("sweep", quiet_config(store_dir=str(store))) as tracker:
            tracker.log_hyperparameters({"lr": lr, "width": width, "seed": index})
            for step in range(5):
                tracker.log_metrics({"val/loss": 1.0 / (1 + 10 * lr * (step + 1)) + 0.001 * index}, step=step)
        ids[f"sweep{index}"] = tracker.run_id
    return ids


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Any, Path]]:
    folder = tmp_path_factory.mktemp("ui-extra")
    ids = make_runs(folder / "store")
    with ui_server(folder / "store") as (url, _):
        driver = chrome()
        try:
            yield url, ids, driver, folder
        finally:
            driver.quit()


def test_the_weights_page_shows_activation_statistics_and_names_the_dead_layer(dashboard: tuple[str, dict[str, str], Any, Path]) -> None:
    url, ids, driver, folder = dashboard
    driver.get(f"{url}#/weights/{ids['acts']}")
    driver.refresh()
    wait_for(driver, "return document.body.dataset.weightsReady")
    table = driver.find_element("id", "activations-table").text
    assert "zero_fraction" in table and "saturation_fraction" in table
    assert "layer 3: 100 % of units dead from step 0" in driver.find_element("id", "unhealthy").text
    drawn = driver.execute_script("return document.querySelectorAll('#activation-maps canvas').length")
    assert drawn == 1  # dead units; no bounded activation, so no saturation map
    assert console_errors(driver) == [] and foreign_resources(driver, url.rstrip("/")) == []
    driver.save_screenshot(str(folder / "weights-activations.png"))


def test_the_sweep_page_ranks_the_learning_rate_first(dashboard: tuple[str, dict[str, str], Any, Path]) -> None:
    url, ids, driver, folder = dashboard
    driver.get(f"{url}#/run/{ids['sweep0']}")
    driver.refresh()
    link = wait_for(driver, "return [...document.querySelectorAll('a')].find(a => a.getAttribute('href') === '#/sweep/sweep')")
    link.click()
    wait_for(driver, "return document.body.dataset.sweepReady")
    rows = driver.find_elements("css selector", "#importance tr")
    assert rows[1].text.startswith("lr ")  # the header, then the most important param
    page = driver.find_element("id", "view").text
    assert "val/loss" in page and "method: fANOVA-style" in page and "The metric against the top params" in page
    assert console_errors(driver) == []
    driver.save_screenshot(str(folder / "sweep.png"))
