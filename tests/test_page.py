"""serve's co-writing page in a real headless browser (Debian's chromium and chromedriver, driven by selenium).

Skipped, saying why, where either is missing; `make test-browser` installs them and runs these.
CHARRNN_SCREENSHOT=PATH saves the page as the README shows it.
"""

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no headless browser here (chromium and chromedriver); make test-browser installs "
    "them (apt-get install chromium chromium-driver) and runs these tests")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,760",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def base_server():
    """The bundled base model (Shakespeare), which writes text worth a screenshot."""
    s = Server("base", "--threads", "1")
    yield s
    s.stop()


def wait_for(condition, timeout=30.0, what="the page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_type_see_the_continuation_stream_in_hover_and_accept(browser, base_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(base_server.url)
    wait_for(lambda: "lstm" in browser.find_element(By.ID, "model").text, what="the model's description from /v1/info")
    browser.execute_script("document.getElementById('length').value = 1500; document.getElementById('seed').value = 7;"
                           "document.getElementById('stop').value = '';")
    typed = browser.find_element(By.ID, "typed")
    typed.click()
    typed.send_keys("ROMEO.\nBut soft, what light")

    ghost_len = lambda: len(browser.execute_script("return document.getElementById('ghost').textContent"))  # noqa: E731
    first = wait_for(ghost_len, what="the continuation to appear")
    assert first < 1500, "the continuation arrived whole, not streamed"
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", what="the end")
    assert ghost_len() > first
    tints = browser.execute_script("return Array.from(document.querySelectorAll('#ghost span'), s => s.style.background)")
    assert len(tints) == ghost_len() and all(tints)  # every character tinted, by its probability: many tints
    assert len(set(tints)) > 10
    spans = browser.find_elements(By.CSS_SELECTOR, "#ghost span")
    assert "seed 7" in browser.find_element(By.ID, "status").text

    visible = next(s for s in spans[:40] if s.text.strip())
    ActionChains(browser).move_to_element(visible).perform()
    tip = browser.find_element(By.ID, "tip")
    wait_for(tip.is_displayed, what="the alternatives on hover")
    assert len(tip.find_elements(By.CSS_SELECTOR, "tr")) == 5 and "%" in tip.text
    shot = os.environ.get("CHARRNN_SCREENSHOT")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(shot)

    suggestion = browser.execute_script("return document.getElementById('ghost').textContent")
    typed.send_keys(Keys.TAB)
    wait_for(lambda: browser.execute_script("return document.getElementById('typed').innerText").endswith(suggestion),
             what="Tab to accept the suggestion")


def test_a_character_the_model_does_not_know_is_named(browser, base_server):
    from selenium.webdriver.common.by import By

    browser.get(base_server.url)
    typed = browser.find_element(By.ID, "typed")
    typed.click()
    typed.send_keys("caf\u00e9")
    status = browser.find_element(By.ID, "status")
    wait_for(lambda: "U+00E9" in status.text, what="the error naming the character")
    assert status.get_attribute("class") == "error"
