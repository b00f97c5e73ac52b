"""What a person sees, checked in a real browser: Debian's headless Chromium driven by Selenium.

``DagsterUIChecks`` walks the Dagster UI (lineage of the design-card assets, a materialization launched by
clicking, the sensor and schedule pages, a plot in an asset's metadata); ``mlflow_compare_check`` opens MLflow's
run comparison. Each check returns a ``UICheck`` with a screenshot; nothing here imports Dagster.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

RUN_STATUSES = ("Queued", "Starting", "Started", "Success", "Failure", "Canceled", "Canceling")


@dataclass
class UICheck:
    name: str
    passed: bool
    detail: str
    screenshot: str


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) from Debian's ``chromium`` and ``chromium-driver`` packages, or None."""
    browser = os.environ.get("OXY_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("OXY_CHROMEDRIVER") or shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def browser(width: int = 1600, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise FileNotFoundError("chromium and chromedriver not found (apt-get install -y chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = paths[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(paths[1]), options=opts)


class Page:
    """Small waits over one driver: text on the page, clickable buttons, screenshots."""

    def __init__(self, driver, shots: str | Path, timeout_s: float = 60.0):
        self.d, self.shots, self.timeout_s = driver, Path(shots), timeout_s
        self.shots.mkdir(parents=True, exist_ok=True)

    def open(self, url: str) -> None:
        self.d.get(url)

    def text(self) -> str:
        from selenium.common.exceptions import WebDriverException

        try:
            return self.d.find_element("tag name", "body").text
        except WebDriverException:
            return ""

    def wait_text(self, *needles: str, timeout_s: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            body = self.text()
            if all(n in body for n in needles):
                return True
            time.sleep(0.5)
        return False

    def click_button(self, label: str, timeout_s: float = 20.0) -> bool:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            WebDriverWait(self.d, timeout_s).until(ec.element_to_be_clickable(
                ("xpath", f"//button[normalize-space()='{label}']"))).click()
            return True
        except TimeoutException:
            return False

    def shot(self, name: str) -> str:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return str(path)


def section(body: str, start: str, end: str) -> list[str]:
    """The lines of ``body`` between the line ``start`` and the line ``end``."""
    lines = body.splitlines()
    if start not in lines:
        return []
    i = lines.index(start) + 1
    j = lines.index(end, i) if end in lines[i:] else len(lines)
    return lines[i:j]


class DagsterUIChecks:
    """The Dagster UI at ``base_url``; ``lineage`` maps each design-card asset to its upstream asset names."""

    def __init__(self, page: Page, base_url: str, location: str = "jobs.definitions"):
        self.p, self.base, self.location = page, base_url.rstrip("/"), location

    def dismiss_popups(self) -> None:
        self.p.open(f"{self.base}/asset-groups")
        if self.p.wait_text("Skip", timeout_s=15):
            self.p.click_button("Skip")

    def asset_graph(self, groups: list[str]) -> UICheck:
        self.p.open(f"{self.base}/asset-groups")
        ok = self.p.wait_text("Global asset lineage", *groups)
        time.sleep(2)
        return UICheck("asset_graph_groups", ok, f"groups {groups}", self.p.shot("dagster_asset_graph"))

    def lineage(self, lineage: dict[str, list[str]]) -> UICheck:
        wrong = {}
        for asset, parents in lineage.items():
            self.p.open(f"{self.base}/assets/{asset}")
            self.p.wait_text("Upstream assets", "Downstream assets")
            shown = section(self.p.text(), "Upstream assets", "Downstream assets")
            if sorted(shown) != sorted(parents):
                wrong[asset] = {"expected": sorted(parents), "shown": shown}
        self.p.open(f"{self.base}/assets/{list(lineage)[-1]}?view=lineage&lineageScope=upstream&lineageDepth=12")
        self.p.wait_text("Upstream", timeout_s=20)
        time.sleep(3)
        return UICheck("design_card_lineage", not wrong, json.dumps(wrong) if wrong else f"{len(lineage)} assets",
                       self.p.shot("dagster_lineage"))

    def _status_of(self, short_id: str) -> str:
        """The status the Runs page shows in the row of run ``short_id`` ('' while it is not listed)."""
        rows = self.p.text().splitlines()
        if short_id not in rows:
            return ""
        i = rows.index(short_id)
        return next((s for s in rows[i:i + 10] if s in RUN_STATUSES), "?")

    def materialize_by_click(self, asset: str, timeout_s: float = 600.0) -> UICheck:
        """Click the asset page's Materialize button; follow the launched run on the Runs page to its end."""
        self.p.open(f"{self.base}/assets/{asset}")
        self.p.wait_text(asset, "Materialize")
        launched = None
        for _ in range(3):  # the button can be drawn before its handler is attached: click again if nothing came
            time.sleep(3)
            if self.p.click_button("Materialize") and self.p.wait_text("Launched run", timeout_s=15):
                launched = re.search(r"Launched run (\w+)", self.p.text())
                break
        status = "not launched"
        if launched:
            short_id = launched.group(1)
            deadline = time.monotonic() + timeout_s
            self.p.open(f"{self.base}/runs")
            while time.monotonic() < deadline:
                self.p.wait_text("Launched by", timeout_s=30)
                status = self._status_of(short_id) or "not listed"
                if status in ("Success", "Failure", "Canceled"):
                    break
                time.sleep(3)
                self.p.d.refresh()
        shot = self.p.shot("dagster_runs_after_click")
        return UICheck("materialize_by_click", status == "Success",
                       f"run {launched.group(1) if launched else '-'}: {status}", shot)

    def metadata_plot(self, asset: str, entry: str) -> UICheck:
        self.p.open(f"{self.base}/assets/{asset}")
        self.p.wait_text(entry, "[Show Markdown]")
        links = self.p.d.find_elements("xpath", f"//*[normalize-space()='{entry}']/following::a"
                                                "[normalize-space()='[Show Markdown]'][1]")
        if links:
            links[0].click()
        time.sleep(2)
        imgs = [i for i in self.p.d.find_elements("tag name", "img")
                if (i.get_attribute("src") or "").startswith("data:image/png;base64,")]
        ok = bool(imgs) and imgs[0].size["width"] > 100
        return UICheck("metadata_plot", ok, f"{len(imgs)} inline PNG(s) after opening '{entry}'",
                       self.p.shot("dagster_metadata_plot"))

    def automation(self, kind: str, name: str, must_show: list[str]) -> UICheck:
        self.p.open(f"{self.base}/locations/{self.location}/{kind}s/{name}")
        ok = self.p.wait_text(name, *must_show)
        return UICheck(f"{kind}_page", ok, f"{name}: {must_show}", self.p.shot(f"dagster_{kind}"))


def mlflow_compare_check(page: Page, base_url: str, experiment_id: str, runs: dict[str, str],
                         metrics: list[str]) -> UICheck:
    """MLflow's compare-runs page for ``runs`` (name -> id) shows every run name and every metric."""
    q = urllib.parse.urlencode({"runs": json.dumps(list(runs.values())), "experiments": json.dumps([experiment_id])})
    page.open(f"{base_url.rstrip('/')}/#/compare-runs?{q}")
    ok = page.wait_text(f"Comparing {len(runs)} Runs", *runs, *metrics)
    time.sleep(1)
    return UICheck("mlflow_compare_runs", ok, f"{list(runs)}", page.shot("mlflow_compare_sid_versions"))
