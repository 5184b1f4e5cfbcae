"""Browser discovery: the order of the candidates, the one-line answer when there is none, launch flags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cli_env

from warmup import browser
from warmup.errors import UsageError, WarmupError


def fake_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_system_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A world without any Chromium: no system paths, an empty PATH, an empty Playwright folder."""
    monkeypatch.setattr(browser, "SYSTEM_HEADLESS_SHELL", str(tmp_path / "none" / "chromium-headless-shell"))
    monkeypatch.setattr(browser, "SYSTEM_CHROMIUM", str(tmp_path / "none" / "chromium"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "ms-playwright"))
    monkeypatch.delenv("WARMUP_BROWSER", raising=False)
    return tmp_path


def playwright_layout(base: Path) -> tuple[Path, Path]:
    revisions = browser._playwright_revisions()
    shell = fake_executable(
        base / f"chromium_headless_shell-{revisions['chromium-headless-shell']}"
        / "chrome-headless-shell-linux64" / "chrome-headless-shell"
    )  # fmt: skip
    full = fake_executable(base / f"chromium-{revisions['chromium']}" / "chrome-linux64" / "chrome")
    return shell, full


def test_the_order_explicit_then_env_then_playwright_then_system(no_system_browser: Path, monkeypatch) -> None:
    tmp = no_system_browser
    with pytest.raises(WarmupError) as none:
        browser.find_browser()
    assert "playwright install chromium" in str(none.value) and none.value.exit_code == 1

    system = fake_executable(tmp / "bin" / "chromium")
    monkeypatch.setenv("PATH", str(tmp / "bin"))
    assert browser.find_browser() == str(system)  # chromium on PATH

    shell, full = playwright_layout(tmp / "ms-playwright")
    assert browser.find_browser(headless=True) == str(shell)  # Playwright's own, headless shell first
    assert browser.find_browser(headless=False) == str(full)  # a full Chromium to show windows

    from_env = fake_executable(tmp / "env" / "chrome")
    monkeypatch.setenv("WARMUP_BROWSER", str(from_env))
    assert browser.find_browser() == str(from_env)

    explicit = fake_executable(tmp / "explicit" / "chrome")
    assert browser.find_browser(explicit) == str(explicit)


def test_system_chromium_prefers_the_headless_shell_for_headless_runs(no_system_browser: Path, monkeypatch) -> None:
    shell = fake_executable(no_system_browser / "usr" / "chromium-headless-shell")
    full = fake_executable(no_system_browser / "usr" / "chromium")
    monkeypatch.setattr(browser, "SYSTEM_HEADLESS_SHELL", str(shell))
    monkeypatch.setattr(browser, "SYSTEM_CHROMIUM", str(full))
    assert browser.find_browser(headless=True) == str(shell)
    assert browser.find_browser(headless=False) == str(full)


def test_a_bad_explicit_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        browser.find_browser(tmp_path / "nope")
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(UsageError, match="not an executable"):
        browser.find_browser(plain)


def test_module_main_prints_one_line_how_to_get_a_browser(no_system_browser: Path, capsys) -> None:
    assert browser.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "playwright install chromium" in err


def test_python_m_warmup_browser_prints_the_path(tmp_path: Path) -> None:
    exe = fake_executable(tmp_path / "chrome")
    result = subprocess.run(
        [sys.executable, "-m", "warmup.browser"], cwd=REPO, env=cli_env(WARMUP_BROWSER=str(exe)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, f"{exe}\n")


def test_launch_flags_keep_the_network_quiet_and_sandbox_only_off_for_root(monkeypatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    args = browser.launch_args()
    assert {"--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"} <= set(
        args
    )
    assert "--no-sandbox" not in args
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--no-sandbox" in browser.launch_args()
