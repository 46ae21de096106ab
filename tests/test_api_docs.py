"""Every curl command of docs/http-api.md runs as written against the live server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_support import ApiServer, client, serve_fleet, server_env
from gitfleet import make_repo

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "http-api.md"
DOC_ADDRESS = "127.0.0.1:8000"
DOC_TOKEN_FILE = "/etc/statehub/api-token"
TOKEN = "docs-t0ken-0123456789abcdefghijklmnop"


def curl_blocks() -> list[str]:
    """The ```sh blocks of docs/http-api.md whose command is curl."""
    text = API_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.M | re.S)
    return [block for block in blocks if block.lstrip().startswith("curl")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ApiServer]]:
    """An open server and one requiring a token, over a fleet holding 'state-hub'."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: the documented commands cannot be run")
    folder = tmp_path_factory.mktemp("docs")
    fleet = folder / "fleet"
    fleet.mkdir()
    make_repo(fleet, "state-hub")
    make_repo(fleet, "activity-core")
    (folder / "guarded").mkdir()
    (folder / "guarded" / "api-token").write_text(TOKEN + "\n", encoding="utf-8")
    open_server = serve_fleet(folder, fleet)
    guarded = serve_fleet(folder / "guarded", fleet, api='token_file = "api-token"')
    with open_server, guarded:
        with client(open_server.url) as http:
            http.post("/consistency/sweep/remote-all", json={})  # so that /repos/state-hub exists
        yield {"open": open_server, "guarded": guarded}


def test_docs_have_curl_commands_for_every_endpoint(servers: dict[str, ApiServer]) -> None:
    """docs/http-api.md shows a curl command for every path of the OpenAPI document."""
    with client(servers["open"].url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    commands = "\n".join(curl_blocks())
    for path in paths:
        stem = path.split("{")[0].rstrip("/") or path
        assert f"{DOC_ADDRESS}{stem}" in commands, f"no curl example for {path}"


@pytest.mark.parametrize("block", curl_blocks(), ids=lambda block: block.split("\n")[0][:60])
def test_documented_curl_command_works(
    servers: dict[str, ApiServer], tmp_path: Path, block: str
) -> None:
    """The command exits 0 and prints JSON (Prometheus text for /metrics)."""
    guarded = "Authorization: Bearer" in block
    server = servers["guarded" if guarded else "open"]
    command = block.replace(DOC_ADDRESS, f"127.0.0.1:{server.port}")
    if guarded:
        token_file = server.config.parent / "api-token"
        command = command.replace(DOC_TOKEN_FILE, str(token_file))
    env = {k: v for k, v in server_env().items() if "proxy" not in k.lower()}
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    if "/metrics" in command:
        families = {family.name for family in text_string_to_metric_families(done.stdout)}
        assert {"statehub_sweeps", "statehub_repos", "statehub_findings"} <= families
    else:
        assert isinstance(json.loads(done.stdout), dict | list)
