"""serve's co-writing page in a real headless browser (Debian's chromium and chromedriver, driven by selenium).

Skipped, saying why, where either is missing; `make test-browser` installs them and runs these.
CHARRNN_SCREENSHOTS=FOLDER saves the pages as the manual shows them (make docs-images): serve-page.png and
export-page.png.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no headless browser here (chromium and chromedriver); make test-browser installs "
    "them (apt-get install chromium chromium-driver) and runs these tests")]


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


def screenshot(browser, name: str) -> None:
    """The page as it is now, into CHARRNN_SCREENSHOTS's folder where that is set."""
    folder = os.environ.get("CHARRNN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(folder) / name))


def wait_for(condition, timeout=30.0, what="the page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def open_page(browser, server, prime: str, settings: str = ""):
    """Load the page, set the settings (a script), type the prime; returns the editable element."""
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    wait_for(lambda: "lstm" in browser.find_element(By.ID, "model").text, what="the model's description from /v1/info")
    # Record every change to the suggestion with the page's state at that moment.
    browser.execute_script(settings + "window.seen = []; new MutationObserver(() => window.seen.push(["
                           "document.getElementById('ghost').textContent.length, document.body.dataset.state]))"
                           ".observe(document.getElementById('ghost'), {childList: true});")
    typed = browser.find_element(By.ID, "typed")
    typed.click()
    typed.send_keys(prime)
    return typed


def ghost_text(browser) -> str:
    return browser.execute_script("return document.getElementById('ghost').textContent")


def until_done(browser):
    wait_for(lambda: browser.execute_script("return document.body.dataset.state") == "done", what="the end of the text")


def hover_shows_five(browser, span):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(browser).move_to_element(span).perform()
    tip = browser.find_element(By.ID, "tip")
    wait_for(tip.is_displayed, what="the alternatives on hover")
    assert len(tip.find_elements(By.CSS_SELECTOR, "tr")) == 5 and "%" in tip.text and "top five" in tip.text


def test_type_see_the_continuation_stream_in_tinted_and_accept_it(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    typed = open_page(browser, server, "COUNTESS.\n", "document.getElementById('length').value = 3000;"
                      "document.getElementById('stop').value = ''; document.getElementById('seed').value = 3;")
    until_done(browser)
    final = len(ghost_text(browser))
    seen = browser.execute_script("return window.seen")
    assert any(0 < n < final and state == "streaming" for n, state in seen), "the text did not stream in"
    assert final > 100 and "seed 3" in browser.find_element(By.ID, "status").text
    assert not browser.find_element(By.ID, "kind").is_displayed()  # no labels, no menu of kinds
    tints = browser.execute_script("return Array.from(document.querySelectorAll('#ghost span'), s => s.style.background)")
    assert len(tints) == final and all(tints)  # every character tinted, by its probability: many tints
    assert len(set(tints)) > 10
    hover_shows_five(browser, next(s for s in browser.find_elements(By.CSS_SELECTOR, "#ghost span")[:40] if s.text.strip()))
    suggestion = ghost_text(browser)
    typed.send_keys(Keys.TAB)
    text = lambda: browser.execute_script("return document.getElementById('typed').textContent")  # noqa: E731
    want = "COUNTESS.\n" + suggestion
    # Text ending in a newline keeps one more in the editable element: the empty line the caret now stands on.
    wait_for(lambda: text() == want or (want.endswith("\n") and text() == want + "\n"),
             what="Tab to accept the suggestion (the prime is the text before the caret)")
    typed.send_keys(Keys.CONTROL, "z")
    wait_for(lambda: text().rstrip("\n") == "COUNTESS.", what="Ctrl+Z to take the accepted suggestion back")


def test_the_readme_screenshot(browser, base_server):
    from selenium.webdriver.common.by import By

    open_page(browser, base_server, "ROMEO.\nBut soft, what light", "document.getElementById('seed').value = 7;")
    until_done(browser)
    assert ghost_text(browser)
    ended = browser.execute_script("return document.getElementById('ghost').dataset.ended")
    assert ended in ("eos", "stop", "length") and ended in browser.find_element(By.ID, "status").text.replace(
        "the model ended the text", "eos").replace("reached the stop", "stop").replace("reached the length", "length")
    # The suggestion goes on from the caret, on the same line: no newline is left behind by the Enter typed earlier.
    assert browser.execute_script("return document.getElementById('typed').textContent") == "ROMEO.\nBut soft, what light"
    hover_shows_five(browser, browser.find_elements(By.CSS_SELECTOR, "#ghost span")[1])
    screenshot(browser, "serve-page.png")

    from selenium.webdriver.common.keys import Keys

    word = re.match(r"\s*\S*[ ]*", ghost_text(browser)).group(0)
    assert word.strip()
    browser.find_element(By.ID, "typed").send_keys(Keys.CONTROL, Keys.ARROW_RIGHT)
    wait_for(lambda: browser.execute_script("return document.getElementById('typed').textContent") ==
             "ROMEO.\nBut soft, what light" + word, what="Ctrl+Right to accept the next word")


def test_a_character_the_model_does_not_know_is_named(browser, base_server):
    from selenium.webdriver.common.by import By

    browser.get(base_server.url)
    typed = browser.find_element(By.ID, "typed")
    typed.click()
    typed.send_keys("caf\u00e9")
    status = browser.find_element(By.ID, "status")
    wait_for(lambda: "U+00E9" in status.text, what="the error naming the character")
    assert status.get_attribute("class") == "error"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """`charrnn export --web` of the bundled base model."""
    from inprocess import invoke

    d = tmp_path_factory.mktemp("site")
    r = invoke("export", "-c", "base", "--web", d / "site", "-q", cwd=d)
    assert r.returncode == 0, r.stderr
    return d / "site"


GREEDY = """const done = arguments[arguments.length - 1];
fetch('/v1/sample', {method: 'POST', body: JSON.stringify({prime: 'ROMEO.', length: 200, greedy: true})})
  .then((r) => r.text()).then((t) => done(t.trim().split('\\n').map(JSON.parse).filter((e) => e.type === 'text')
                                            .map((e) => e.text).join('')))
  .catch((e) => done('ERROR ' + e));"""


def test_the_exported_page_writes_from_a_file_with_the_network_off(browser, site):
    from types import SimpleNamespace

    from inprocess import invoke

    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    try:
        open_page(browser, SimpleNamespace(url=(site / "index.html").as_uri()), "ROMEO.\n",
                  "document.getElementById('seed').value = 1;")
        until_done(browser)
        assert len(ghost_text(browser)) > 20  # it wrote, tinted and all, with no server
        screenshot(browser, "export-page.png")
        browser.set_script_timeout(120)
        greedy = browser.execute_async_script(GREEDY)
        expected = invoke("sample", "-c", "base", "--greedy", "--prime", "ROMEO.", "--length", "200", "-q", cwd=site)
        assert "ROMEO." + greedy + "\n" == expected.stdout and len(greedy) >= 200
        sources = browser.execute_script("return [...document.scripts].filter((s) => s.src).map((s) => s.src)")
        assert sorted(Path(url.removeprefix("file://")).name for url in sources) == ["local.js", "model.js"]
        assert sorted(f.name for f in site.iterdir()) == ["index.html", "local.js", "model.js"]  # all it needs
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
