"""`statehub serve` reloads its configuration on SIGHUP, like the daemon (issue 14)."""

from __future__ import annotations

import signal
from pathlib import Path

from api_support import ApiServer, client
from gitfleet import make_repo, write, write_config
from waiting import wait_for


def _config(folder: Path, fleet: Path, port: int, token: Path, **sections: str) -> Path:
    api = f'port = {port}\ntoken_file = "{token}"'
    return write_config(folder, roots=[fleet], api=api, **sections)


def _reloaded(server: ApiServer, marker: str, seen: int) -> bool:
    return server.log_text().count(marker) > seen


def test_sighup_reaches_checks_budget_and_token(tmp_path: Path, fleet: Path) -> None:
    """After SIGHUP the next sweep uses the new checks and budget, and only the new token works."""
    write(make_repo(fleet, "dirty"), {"scratch.txt": "x"})
    port = 0  # the server picks its port
    token = tmp_path / "token"
    token.write_text("first-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
    config = _config(tmp_path, fleet, port, token)
    with ApiServer(config) as server, client(server.url, timeout=60) as http:
        first = http.post(
            "/consistency/sweep/remote-all",
            json={},
            headers={"Authorization": "Bearer first-token-0123456789abcdefghijklmnop"},
        )
        assert first.status_code == 200, first.text
        assert [e["repo"] for e in first.json()["detail"]["repos_processed"]] == ["dirty"]

        _config(tmp_path, fleet, port, token, checks='disable = ["C-15"]', sweep="max_seconds = 7")
        token.write_text("second-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _reloaded(server, "configuration reloaded", 0), timeout=10)

        old = http.get(
            "/repos", headers={"Authorization": "Bearer first-token-0123456789abcdefghijklmnop"}
        )
        assert old.status_code == 401
        second = http.post(
            "/consistency/sweep/remote-all",
            json={},
            headers={"Authorization": "Bearer second-token-0123456789abcdefghijklmnop"},
        )
        assert second.status_code == 200, second.text
        detail = second.json()["detail"]
        assert (detail["max_seconds"], detail["repos_processed"]) == (7, [])
        assert detail["skipped_clean"] == ["dirty"]
    assert "checks.disable: [] -> ['C-15']" in server.log_text()
    assert "second-token-0123456789abcdefghijklmnop" not in server.log_text()


def test_sighup_refuses_a_bad_file_and_a_restart_only_change(tmp_path: Path, fleet: Path) -> None:
    """A bad file, or a new port, is refused on one line and the old configuration kept."""
    make_repo(fleet, "alpha")
    port = 0  # the server picks its port
    token = tmp_path / "token"
    token.write_text("the-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
    config = _config(tmp_path, fleet, port, token, sweep="max_seconds = 9")
    auth = {"Authorization": "Bearer the-token-0123456789abcdefghijklmnop"}
    with ApiServer(config) as server, client(server.url, timeout=60) as http:
        assert server.process is not None
        config.write_text(config.read_text().replace("max_seconds = 9", "max_seconds = 0"))
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _reloaded(server, "reload refused", 0), timeout=10)
        _config(tmp_path, fleet, server.port, token, sweep="max_seconds = 5")  # 0 before
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _reloaded(server, "reload refused", 1), timeout=10)

        response = http.post("/consistency/sweep/remote-all", json={}, headers=auth)
        assert response.status_code == 200, response.text
        assert response.json()["detail"]["max_seconds"] == 9
    log = server.log_text()
    assert "sweep.max_seconds" in log
    assert "api.port changed, which takes a restart" in log
    assert "Traceback" not in log


def test_sighup_that_adds_a_token_takes_effect_and_removing_it_is_refused(
    tmp_path: Path, fleet: Path
) -> None:
    """A token added by a reload is required at once (API and page); unsetting it needs a
    restart and keeps the token."""
    make_repo(fleet, "alpha")
    port = 0  # the server picks its port
    config = write_config(tmp_path, roots=[fleet], api=f"port = {port}")
    token = tmp_path / "token"
    token.write_text("added-token-0123456789abcdefghijklmnop\n", encoding="utf-8")
    with ApiServer(config) as server, client(server.url, timeout=60) as http:
        assert server.process is not None
        assert http.get("/repos").status_code == 200
        _config(tmp_path, fleet, port, token)
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _reloaded(server, "configuration reloaded", 0), timeout=10)

        assert http.get("/repos").status_code == 401
        assert http.get("/status", follow_redirects=False).headers["location"] == "/login"
        auth = {"Authorization": "Bearer added-token-0123456789abcdefghijklmnop"}
        assert http.get("/repos", headers=auth).status_code == 200
        assert http.get("/healthz").status_code in (200, 503)  # open, as before

        write_config(tmp_path, roots=[fleet], api=f"port = {port}")
        server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: _reloaded(server, "reload refused", 0), timeout=10)
        assert http.get("/repos").status_code == 401
    log = server.log_text()
    assert "api token: set" in log
    assert "api.token_file (unset: that would open the API) changed, which takes a restart" in log
    assert "added-token-0123456789abcdefghijklmnop" not in log
