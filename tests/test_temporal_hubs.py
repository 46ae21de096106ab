"""Many hubs on one Temporal namespace (the suite's dev server): three hubs on this machine,
each its own `statehub init`, database, fleet and worker; their schedules never collide,
`temporal hubs` shows them all from Temporal, a copied definition is refused, a late run is
`missed`, and each hub's standby follows its own primary only."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from api_support import ApiServer, client, event_rows
from clirun import statehub
from daemon_support import DaemonProcess, runs
from gitfleet import make_repo
from statehub.settings import load_settings
from temporal_support import TemporalServer, status
from test_temporal import FAR_TRIGGER, run_now, start_worker, stop_worker


def init_hub(folder: Path, name: str, server: TemporalServer, *schedule: str) -> Path:
    """`statehub init --name NAME` of ``folder``/fleet, then a [temporal] section and
    ``schedule`` lines under [schedule] (standby, a trigger that never fires by itself)."""
    config = folder / "statehub.toml"
    done = statehub("init", str(folder / "fleet"), "--name", name, config=config)
    assert done.returncode == 0, done.stderr
    lines = config.read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if not line.startswith("mode = ")]
    at = lines.index("[schedule]") + 1
    lines[at:at] = ['mode = "standby"', f'trigger = "{FAR_TRIGGER}"', *schedule]
    lines += ["[temporal]", f'address = "{server.address}"']
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def hubs_json(config: Path) -> dict[str, dict[str, Any]]:
    """`statehub temporal hubs --json`, by hub name."""
    done = statehub("temporal", "hubs", "--json", config=config)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return {hub["hub"]: hub for hub in document["hubs"]}


def cluster_sweeps(database: Path) -> list[dict[str, Any]]:
    """The sweep events the hub's worker recorded (source activity-core)."""
    return [event for event in event_rows(database) if event["detail"]["source"] == "activity-core"]


def in_parallel(*calls: Any) -> list[Any]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


@pytest.mark.long(22)
def test_three_hubs_share_one_namespace_and_one_view(
    tmp_path: Path, temporal_server: TemporalServer
) -> None:
    """Three inits/syncs/workers: own schedules and runs; one view; a copied id refused; missed."""
    ident = uuid.uuid4().hex[:6]
    names = {key: f"hub-{key}-{ident}" for key in "abc"}
    folders = {key: tmp_path / key for key in "abc"}
    for key, folder in folders.items():
        make_repo(folder / "fleet", f"repo-{key}")
    broken = folders["b"] / "fleet" / "broken"  # hub b's runs fail on a C-00
    broken.mkdir()
    (broken / ".git").write_text("gitdir: /nonexistent/statehub-test\n", encoding="utf-8")
    # Hub c: a 3 s grace for its primary (quiet soon after its worker stops), an 8 s misfire
    # grace (its first run starts at once; its second waits for a worker well past that).
    extra = {"c": ("primary_grace_minutes = 0.05", "misfire_grace_seconds = 8")}
    configs = dict(
        zip(
            "abc",
            in_parallel(
                *(
                    lambda key=key: init_hub(
                        folders[key], names[key], temporal_server, *extra.get(key, ())
                    )
                    for key in "abc"
                )
            ),
            strict=True,
        )
    )
    settings = {key: load_settings(config) for key, config in configs.items()}
    assert len({one.schedule.id for one in settings.values()}) == 3
    schedule_ids = {key: one.temporal_schedule_id for key, one in settings.items()}
    assert len(set(schedule_ids.values())) == 3
    assert len({one.temporal_task_queue for one in settings.values()}) == 3

    synced = in_parallel(
        *(
            lambda key=key: statehub("temporal", "sync", "--json", config=configs[key])
            for key in "abc"
        )
    )
    assert [json.loads(done.stdout)["action"] for done in synced] == ["create"] * 3, synced
    described = temporal_server.describe_schedule(schedule_ids["a"])
    memo = described["schedule"]["action"]["startWorkflow"]["memo"]["fields"]
    assert "statehub" in memo

    with configs["a"].open("a", encoding="utf-8") as handle:  # hub a's page: the same view
        handle.write("[api]\nport = 0\n")
    page = ApiServer(configs["a"])
    workers: dict[str, DaemonProcess] = {}
    try:
        *started, _ = in_parallel(
            *(lambda k=k: start_worker(configs[k]) for k in "abc"), page.start
        )
        workers.update(zip("abc", started, strict=True))
        for key in "abc":
            temporal_server.trigger(schedule_ids[key])
        closed = {
            key: temporal_server.closed_workflows(schedule_ids[key], 1, timeout=60)[0]
            for key in "abc"
        }
        assert {key: status(run) for key, run in closed.items()} == {
            "a": "completed", "b": "failed", "c": "completed",
        }  # fmt: skip
        assert stop_worker(workers.pop("c")) == 0
        stopped_at = time.monotonic()

        # Each trigger swept only its own hub's fleet, and wrote only its own hub's runs.
        for key in "abc":
            database = folders[key] / "var" / "statehub.db"
            [event] = cluster_sweeps(database)
            detail = event["detail"]
            processed = [entry["repo"] for entry in detail["repos_processed"]]
            repos = {*processed, *detail["skipped_clean"]} - {"broken"}
            assert repos == {f"repo-{key}"}
            [row] = runs(database)
            assert row["run_id"] == closed[key]["execution"]["runId"]
            assert row["context"]["definition_name"]
        time.sleep(max(0.0, 3.2 - (time.monotonic() - stopped_at)))  # hub c's grace
        temporal_server.trigger(schedule_ids["c"])  # no worker: it waits, past its grace
        triggered_at = time.monotonic()

        # A fourth hub copying hub a's definition id, and one naming a's schedule.
        copier = tmp_path / "d"
        copier.mkdir()
        text = configs["a"].read_text(encoding="utf-8").replace(names["a"], f"hub-d-{ident}")
        copy, other = copier / "copy.toml", copier / "other.toml"
        copy.write_text(text, encoding="utf-8")
        own = text.replace(settings["a"].schedule.id, str(uuid.uuid4()))
        own = own.replace("[temporal]\n", f'[temporal]\nschedule_id = "{schedule_ids["a"]}"\n')
        other.write_text(own, encoding="utf-8")

        def page_html() -> str:
            with client(page.url) as http:
                return http.get("/").text

        # All at once: they read Temporal (and each hub its own database) independently.
        view, html, healthy, fallback, refused, taken, forced = in_parallel(
            lambda: hubs_json(configs["a"]),
            page_html,
            lambda: run_now(configs["a"]),
            lambda: run_now(configs["c"]),
            lambda: statehub("temporal", "sync", config=copy),
            lambda: statehub("temporal", "sync", config=other),
            lambda: statehub("temporal", "sync", "--force", "--dry-run", "--json", config=other),
        )
        assert {view[names[key]]["schedule_id"] for key in "abc"} == set(schedule_ids.values())
        a, b, c = (view[names[key]] for key in "abc")
        assert (a["last_outcome"], a["quiet"], a["last_swept_at"] is not None) == (
            "swept", False, True,
        )  # fmt: skip
        assert (b["last_outcome"], b["quiet"]) == ("failed", False)
        assert (c["last_outcome"], c["quiet"]) == ("running", True)
        assert c["runs"][1]["outcome"] == "swept" and c["last_swept_at"]
        assert a["definition_id"] == settings["a"].schedule.id
        assert a["trigger"] == FAR_TRIGGER and a["paused"] is False and a["next_fire"]

        assert f'<strong id="hub-name">{names["a"]}</strong>' in html
        section = html.split('<section id="hubs">')[1].split("</section>")[0]
        assert all(names[key] in section for key in "abc")
        assert section.count('"pill bad">quiet<') >= 1 and '"pill bad">failed<' in section

        # Standby per hub: c's daemon takes over, a's stays idle (its own primary swept).
        assert healthy["outcome"] == "primary_healthy"
        assert (fallback["outcome"], fallback["context_snapshot"]["source"]) == (
            "swept", "local-fallback",
        )  # fmt: skip

        # Refused: one line each, exit 78, nothing written; --force would take it over.
        assert refused.returncode == 78
        assert refused.stderr.count("\n") == 1
        assert f"is already scheduled by hub '{names['a']}'" in refused.stderr
        assert taken.returncode == 78
        assert f"belongs to hub '{names['a']}'" in taken.stderr
        assert json.loads(forced.stdout)["action"] == "update"

        # Hub c's worker comes back after the slot's grace: the run is missed, not swept.
        time.sleep(max(0.0, 8.5 - (time.monotonic() - triggered_at)))
        workers["c"] = start_worker(configs["c"])
        late = temporal_server.closed_workflows(schedule_ids["c"], 2, timeout=60)
        assert all(status(run) == "completed" for run in late)
    finally:
        in_parallel(page.stop, *(lambda w=w: stop_worker(w) for w in workers.values()))
    rows = runs(folders["c"] / "var" / "statehub.db")
    assert [row["outcome"] for row in rows] == ["swept", "swept", "missed"]
    assert rows[-1]["context"]["late_seconds"] > 8
    assert len(cluster_sweeps(folders["c"] / "var" / "statehub.db")) == 1  # missed: no sweep
    shown = statehub("temporal", "hubs", config=configs["c"]).stdout  # the same view, as text
    [line] = [line for line in shown.splitlines() if line.startswith(names["c"])]
    assert f"{names['c']}  {FAR_TRIGGER} in UTC, next " in line
    assert "QUIET" in shown and f"missed       {late[0]['execution']['workflowId']}" in shown
