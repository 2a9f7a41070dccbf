"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, selenium with the
system driver): every page draws, compare shows the changed parameter, a note saved in the page
is in ``unitrack show --json``, the console stays clean, and nothing is loaded from elsewhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.ui_harness import chrome, console_errors, foreign_resources, make_runs, screenshot_pages, ui_server, wait_for
from unitrack.cli.app import app


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str], Any]]:
    root = tmp_path_factory.mktemp("ui-browser") / "store"
    ids = make_runs(root)
    with ui_server(root) as (url, _):
        driver = chrome()
        try:
            yield url, root, ids, driver
        finally:
            driver.quit()


def open_page(driver: Any, url: str, route: str, ready: str) -> None:
    driver.get(url + route)
    driver.refresh()
    wait_for(driver, f"return document.body.dataset.{ready}")


def canvas_ink(driver: Any) -> list[int]:
    """Per chart canvas on the page: how many pixels are drawn (not blank)."""
    return driver.execute_script(
        """return [...document.querySelectorAll('canvas')].map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; });"""
    )


def test_runs_page_lists_the_runs(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, ids, driver = dashboard
    open_page(driver, url, "#/", "runsReady")
    rows = wait_for(driver, "const r = [...document.querySelectorAll('.vrow input[data-id]')].map(i => i.dataset.id); return r.length >= 4 && r")
    assert set(rows) == set(ids.values())
    assert "4 run(s)" in driver.find_element("id", "count").text
    driver.find_element("id", "filter").send_keys("params.lr > 0.1\n")
    assert wait_for(driver, "const r = [...document.querySelectorAll('.vrow input[data-id]')].map(i => i.dataset.id); return r.length === 1 && r") == [ids["faster"]]
    assert console_errors(driver) == []
    assert foreign_resources(driver, url.rstrip("/")) == []


def test_run_page_draws_its_curves(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, ids, driver = dashboard
    open_page(driver, url, f"#/run/{ids['baseline']}", "curvesReady")
    # train/loss, train/lr, val/loss, val/acc, and the snapshots' weights/change_l2 and change_relative
    assert int(driver.execute_script("return document.body.dataset.curvesReady")) == 6
    groups = [h.text for h in driver.find_elements("css selector", "#curves h3")]
    assert groups == ["train", "val", "weights"]
    ink = canvas_ink(driver)
    assert len(ink) >= 6 and all(n > 100 for n in ink[:6])
    checked = wait_for(driver, "const t = document.getElementById('checkpoints').innerText; return t.includes('ok') && t")
    assert "DAMAGED" not in checked
    wait_for(driver, "return document.getElementById('environment').innerText.includes('python_implementation')")
    assert "178" in wait_for(driver, "const t = document.getElementById('model').innerText; return t.includes('parameters') && t")
    assert console_errors(driver) == []


def test_failed_run_shows_its_exception(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, root, ids, driver = dashboard
    shown = json.loads(CliRunner().invoke(app, ["show", ids["failed"], "--store", str(root), "--json"]).stdout)
    assert shown["error"]["type"] == "RuntimeError"
    open_page(driver, url, f"#/run/{ids['failed']}", "curvesReady")
    assert "failed" in driver.find_element("css selector", "h1").text
    text = driver.find_element("id", "exception").text
    assert "RuntimeError: the loss went NaN at step 1" in text and ("Traceback" in text or "raise RuntimeError" in text)
    assert console_errors(driver) == []


def test_overlay_draws_several_runs(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, ids, driver = dashboard
    open_page(driver, url, f"#/overlay?runs={ids['baseline']},{ids['faster']}&key=train/loss", "overlayDrawMs")
    assert int(driver.execute_script("return document.body.dataset.overlayPoints")) == 200
    assert canvas_ink(driver)[0] > 1000
    assert console_errors(driver) == []


def test_compare_shows_the_changed_parameter(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, ids, driver = dashboard
    open_page(driver, url, f"#/compare?a={ids['baseline']}&b={ids['faster']}", "compareReady")
    rows = [r.text for r in driver.find_elements("css selector", "#config-diff tr.changed")]
    assert any(r.startswith("lr 0.05 0.2") for r in rows), rows
    assert "learning rate" in driver.find_element("id", "explain").text
    assert console_errors(driver) == []


def test_weights_page_draws_heatmaps_and_the_delta_table(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, ids, driver = dashboard
    open_page(driver, url, f"#/weights/{ids['faster']}", "weightsReady")
    assert len(driver.find_elements("css selector", "canvas.heat")) >= 2 and all(n > 100 for n in canvas_ink(driver))
    assert "0.weight" in driver.find_element("id", "delta-table").text
    assert console_errors(driver) == []


def test_a_note_saved_in_the_page_is_in_show_json(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, root, ids, driver = dashboard
    open_page(driver, url, f"#/run/{ids['baseline']}", "curvesReady")
    box = driver.find_element("id", "note")
    box.clear()
    box.send_keys("baseline: lr 0.05, slow but steady")
    driver.find_element("id", "save-note").click()
    wait_for(driver, "return document.getElementById('note-state').innerText.startsWith('saved')")
    shown = CliRunner().invoke(app, ["show", ids["baseline"], "--store", str(root), "--json"])
    assert json.loads(shown.stdout)["info"]["note"] == "baseline: lr 0.05, slow but steady"
    assert console_errors(driver) == []


def test_every_page_screenshots_non_blank(dashboard: tuple[str, Path, dict[str, str], Any], tmp_path: Path) -> None:
    url, _, ids, driver = dashboard
    for shot in screenshot_pages(driver, url, ids, tmp_path):
        from PIL import Image

        colours = Image.open(shot).convert("L").getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 20, shot  # more than a blank page's few shades
    assert foreign_resources(driver, url.rstrip("/")) == []


def test_zoom_asks_again_down_to_the_raw_points_and_x_can_be_time(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    url, _, ids, driver = dashboard
    open_page(driver, url, f"#/overlay?runs={ids['long']}&key=loss", "overlayDrawMs")
    info = driver.find_element("css selector", "#chart .chart-legend.dim")
    assert "100,000 point(s) in view, bucketed" in info.text
    over = driver.find_element("css selector", "#chart .u-over")
    ActionChains(driver).move_to_element_with_offset(over, -over.size["width"] // 2 + 40, 0).click_and_hold().move_by_offset(6, 0).release().perform()
    text = wait_for(driver, "const t = document.querySelector('#chart .chart-legend.dim').innerText; return t.includes('(raw)') && t")
    assert "zoomed" in text
    driver.execute_script("document.querySelector('#chart .u-over').dispatchEvent(new MouseEvent('dblclick', {bubbles: true}))")
    wait_for(driver, "return document.querySelector('#chart .chart-legend.dim').innerText.includes('100,000 point(s)')")
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "x")).select_by_value("relative")
    wait_for(driver, "return document.getElementById('chart').dataset.xMode === 'relative'")
    assert 0 <= float(driver.execute_script("return document.getElementById('chart').dataset.xFirst")) < 5  # seconds since the run began
    assert console_errors(driver) == []


def test_smoothing_is_an_ema_with_debias(dashboard: tuple[str, Path, dict[str, str], Any]) -> None:
    url, _, _, driver = dashboard
    open_page(driver, url, "#/", "runsReady")
    smoothed = driver.execute_async_script(
        "const done = arguments[0]; import('/static/js/chart.js').then(m => done([m.ema([2, 2, 2], 0.9), m.ema([0, 10, null, 10], 0.5)]));"
    )
    assert smoothed[0] == pytest.approx([2, 2, 2])  # debiased: a constant stays itself from the first point
    assert smoothed[1][:2] == pytest.approx([0, 10 * 0.5 / 0.75]) and smoothed[1][2] is None
