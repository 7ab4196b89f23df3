"""The demo in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
driven by Selenium. Selenium Manager is never used (explicit driver and binary, SE_OFFLINE).

Outside CI a missing browser skips with a reason; with CI=true it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_app import EXAMPLES, IN_CI, build_test_model

from bench.app_server import start_app, stop_app

pytest.importorskip("gradio")  # the demo extra

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install -y chromium chromium-driver"
SCREENSHOT_ENV = "CPG_ZOO_SCREENSHOT_DIR"
TIMEOUT = 120  # seconds for the page and for the result (the CI machine may be busy)


def require_browser() -> None:
    """Fail in CI, skip elsewhere, when the browser, its driver or Selenium is missing."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"no browser for the demo test: missing {', '.join(missing)} ({INSTALL_HINT})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_test_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    process, url = start_app(tmp_path_factory.mktemp("browser_app"), "--model", str(model_dir))
    yield url
    stop_app(process)


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(TIMEOUT)
    yield browser
    browser.quit()


def save_screenshot(browser, tmp_path: Path, name: str) -> Path:
    """Screenshot to `tmp_path`, and to $CPG_ZOO_SCREENSHOT_DIR when set."""
    path = tmp_path / name
    assert browser.save_screenshot(str(path)), "screenshot failed"
    if os.environ.get(SCREENSHOT_ENV):
        target = Path(os.environ[SCREENSHOT_ENV])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_upload_shows_the_annotated_result(
    server: str, driver, model_dir: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = json.loads((model_dir / "config.json").read_text())
    driver.get(server)
    wait = WebDriverWait(driver, TIMEOUT)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-image input[type=file]"))
    wait.until(lambda d: "ready" in d.find_element(By.ID, "status").text)  # model loaded
    upload.send_keys(str(EXAMPLES[0]))  # the upload event runs the segmentation

    masks = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#overlay img.mask"))
    assert driver.find_element(By.CSS_SELECTOR, "#overlay img.base-image").is_displayed()
    info = wait.until(lambda d: d.find_element(By.ID, "info").text)
    assert "Inference:" in info and "CPU" in info
    cells = driver.find_elements(By.CSS_SELECTOR, "#shares [role=gridcell][data-col='1']")
    table_classes = [cell.text for cell in cells]  # the "class" column, largest share first
    legend = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#overlay button") if b.text]
    assert len(masks) == len(legend) > 0
    assert legend == table_classes  # one overlay layer per class present, same order
    # Each legend entry is coloured with its class's palette colour (from config.json).
    palette = dict(zip(config["classes"], config["palette"], strict=True))
    for button in driver.find_elements(By.CSS_SELECTOR, "#overlay button"):
        if button.text:
            colour = button.value_of_css_property("background-color")  # rgba(r, g, b, a)
            rgb = [int(float(v)) for v in colour[colour.index("(") + 1 : -1].split(",")[:3]]
            assert rgb == palette[button.text], (button.text, colour)
    status = driver.find_element(By.ID, "status").text
    assert "trained on SynthCity" in status  # the model's own description, on the page
    assert not driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")

    path = save_screenshot(driver, tmp_path, "demo.png")
    assert path.stat().st_size > 10_000

    # Moving the opacity slider redraws the overlay from the shown mask (no new inference).
    from selenium.webdriver.common.action_chains import ActionChains

    before = masks[0].get_attribute("src")
    slider = driver.find_element(By.CSS_SELECTOR, "input[type=range]")
    ActionChains(driver).click_and_hold(slider).move_by_offset(100, 0).release().perform()
    wait.until(
        lambda d: (
            d.find_element(By.CSS_SELECTOR, "#overlay img.mask").get_attribute("src") != before
        )
    )
    assert float(slider.get_attribute("value")) > 0.6
